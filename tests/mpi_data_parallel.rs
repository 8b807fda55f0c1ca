//! Data-parallel training over MPI reproduces single-process training, on every rank.
//!
//! A test binary without libtest (`harness = false`), in two roles:
//!
//! - **under MPI** (launched by `mpirun`, which sets `OMPI_COMM_WORLD_SIZE`, `PMI_SIZE` or
//!   `PMIX_RANK`): every rank trains a [`DataParallel`] network on its shard of each global
//!   batch while also training a plain [`TwoLayerNet`] on the whole global batch, and checks
//!   that after every step the two agree to 1e-12 (f64), and that every rank holds bit for bit
//!   the parameters of rank 0. It also checks the error paths: a bad label, an empty shard or a
//!   NaN on one rank makes every rank return an error, none hangs, and no parameter moves.
//!   The ranks sum their failures, so every rank exits non-zero if any check failed anywhere.
//! - **otherwise** (`cargo test --features mpi`): re-launches itself under `mpirun -n 2` and
//!   `mpirun -n 3 --oversubscribe` (OpenMPI; MPICH's `mpiexec` oversubscribes by itself),
//!   with `OPENBLAS_NUM_THREADS=1` and, as root, OpenMPI's run-as-root switches, and closes
//!   with `mpi: P passed, F failed`. `MPIRUN` overrides the launcher found on `PATH`,
//!   `MPI_TEST_TIMEOUT_SECS` (default 300) bounds each run.
//!
//! Then two more scenarios, each a few `mpirun`s:
//!
//! - **a rank that dies** (`-n 3`): rank 1 leaves at step 5 — SIGKILL, `exit(3)`, a panic or
//!   a hang — and `mpirun` must end with a failure within 30 s (the collectives' timeout is
//!   3 s here); no rank trains on.
//! - **checkpoint and restart** (`-n 2` and `-n 3`): rank 0 saves a `TrainingState` every 3
//!   steps; a run whose rank 1 is killed at step 8 is restarted in fresh processes, every rank
//!   loading that file, and must end bitwise equal (parameters and Adam's state) to a run that
//!   was never interrupted.
//!
//! Run one configuration by hand:
//!
//! ```sh
//! cargo test --features mpi --test mpi_data_parallel --no-run   # prints the binary's path
//! OPENBLAS_NUM_THREADS=1 mpirun -n 3 --oversubscribe target/debug/deps/mpi_data_parallel-…
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};
use two_layer_net::ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, s};
use two_layer_net::parallel::mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use two_layer_net::parallel::mpi::datatype::Equivalence;
use two_layer_net::parallel::mpi::topology::{Communicator, SimpleCommunicator};
use two_layer_net::parallel::{DataParallel, ParallelError, mpi, shard};
use two_layer_net::{
    Activation, Adam, Error, L2, Loss, Momentum, Mse, Optimizer, Scalar, Sgd, SoftmaxCrossEntropy, Tanh,
    TrainingState, TwoLayerNet, datasets,
};

/// Parameters of data-parallel and single-process training may differ by this much (f64).
const TOL: f64 = 1e-12;

/// Set by the launcher to the `-n` it asked for: a worker that finds another world size (an
/// `mpirun` of another MPI than the one linked starts every process as a world of 1) fails
/// instead of passing with nothing exchanged.
const EXPECTED_RANKS: &str = "TWO_LAYER_NET_MPI_TEST_RANKS";

/// Set by the launcher for the other scenarios: `fault:KIND` (a rank dies mid-training) and
/// `restart:PHASE` (checkpoint and restart); unset, the worker runs the checks of the suite.
const SCENARIO: &str = "TWO_LAYER_NET_MPI_SCENARIO";
/// The directory of the restart scenario's files.
const DIR: &str = "TWO_LAYER_NET_MPI_DIR";
/// The ways a rank leaves mid-training: SIGKILL, `exit(3)` without `MPI_Finalize`, a panic,
/// and hanging. Not here: a rank that returns normally (`MPI_Finalize`) while the others wait
/// in a step. The others then abort after the timeout as in the other cases, but OpenMPI
/// 4.1.4's `mpirun` sometimes segfaults (2 of 6 runs by hand) or hangs (1 CI run, > 30 s) on
/// that mix of a finalized and aborted ranks: a bound the crate cannot keep.
const FAULTS: [&str; 4] = ["kill", "exit", "panic", "hang"];
/// The collectives' timeout in the fault scenario: the bound on how long the others wait.
const FAULT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `mpirun` may take to end after a fault before the test calls it a hang.
const FAULT_BOUND: Duration = Duration::from_secs(30);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--list") {
        // What a test lister (nextest) asks of a harness-less binary: one test, not ignored.
        if !args.iter().any(|a| a == "--ignored") {
            println!("mpi: test");
        }
        return ExitCode::SUCCESS;
    }
    // `cargo test --features mpi NAME` passes NAME on: like libtest, run only if it matches.
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if !filters.is_empty() && !filters.iter().any(|f| "mpi".contains(f.as_str())) {
        println!("mpi: filtered out");
        return ExitCode::SUCCESS;
    }
    if under_mpi() { worker() } else { launcher() }
}

/// Whether an MPI launcher started this process (OpenMPI, MPICH/Hydra, or PMIx).
fn under_mpi() -> bool {
    ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK"].iter().any(|v| std::env::var_os(v).is_some())
}

// ---------------------------------------------------------------------------------------------
// Launcher: run this binary under mpirun with 2 and 3 ranks.
// ---------------------------------------------------------------------------------------------

fn launcher() -> ExitCode {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => {
            eprintln!("mpi: cannot find this test binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(mpirun) = find_mpirun() else {
        eprintln!("mpi: no `mpirun` or `mpiexec` on PATH (set MPIRUN); install OpenMPI or MPICH");
        println!("mpi: 0 passed, 1 failed");
        return ExitCode::FAILURE;
    };
    let version = Command::new(&mpirun).arg("--version").output().map(|o| o.stdout).unwrap_or_default();
    let open_mpi = {
        let v = String::from_utf8_lossy(&version);
        v.contains("Open MPI") || v.contains("OpenRTE")
    };
    let timeout = std::env::var("MPI_TEST_TIMEOUT_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(300);
    let (mut passed, mut failed) = (0, 0);
    for (ranks, oversubscribe) in [(2, false), (3, true)] {
        let mut cmd = Command::new(&mpirun);
        cmd.arg("-n").arg(ranks.to_string());
        if oversubscribe && open_mpi {
            cmd.arg("--oversubscribe");
        }
        cmd.arg(&exe).env(EXPECTED_RANKS, ranks.to_string());
        if std::env::var_os("OPENBLAS_NUM_THREADS").is_none() {
            cmd.env("OPENBLAS_NUM_THREADS", "1");
        }
        if open_mpi && is_root() {
            cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        }
        println!("mpi: {cmd:?}");
        let start = Instant::now();
        let outcome = run_with_timeout(cmd, Duration::from_secs(timeout));
        let secs = start.elapsed().as_secs_f64();
        match outcome {
            Ok(()) => {
                passed += 1;
                println!("mpi: -n {ranks} ... ok ({secs:.1} s)");
            }
            Err(why) => {
                failed += 1;
                println!("mpi: -n {ranks} ... FAILED: {why} ({secs:.1} s)");
            }
        }
    }
    let launch = Launch { mpirun: &mpirun, exe: &exe, open_mpi };
    for fault in FAULTS {
        let name = format!("-n 3, rank 1 leaves at step 5 ({fault})");
        tally(&name, fault_case(&launch, fault), &mut passed, &mut failed);
    }
    for ranks in [2, 3] {
        let name = format!("-n {ranks}, killed mid-training and restarted from its checkpoint");
        tally(&name, restart_case(&launch, ranks), &mut passed, &mut failed);
    }
    println!("mpi: {passed} passed, {failed} failed");
    if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

fn tally(name: &str, outcome: Result<String, String>, passed: &mut usize, failed: &mut usize) {
    match outcome {
        Ok(what) => {
            *passed += 1;
            println!("mpi: {name} ... ok: {what}");
        }
        Err(why) => {
            *failed += 1;
            println!("mpi: {name} ... FAILED: {why}");
        }
    }
}

/// How to start this binary under MPI.
struct Launch<'a> {
    mpirun: &'a PathBuf,
    exe: &'a PathBuf,
    open_mpi: bool,
}

impl Launch<'_> {
    /// `mpirun -n ranks` of this binary in `scenario`, its output into `log`; the exit status
    /// (or a failure to start) and how long it ran, or `Err` after `limit` (then stopped).
    fn run(
        &self,
        ranks: usize,
        scenario: &str,
        dir: &Path,
        log: &Path,
        limit: Duration,
    ) -> Result<(ExitStatus, Duration), String> {
        let mut cmd = Command::new(self.mpirun);
        cmd.arg("-n").arg(ranks.to_string());
        if self.open_mpi {
            cmd.arg("--oversubscribe");
        }
        let out = File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        cmd.arg(self.exe).env(EXPECTED_RANKS, ranks.to_string()).env(SCENARIO, scenario).env(DIR, dir);
        cmd.env("OPENBLAS_NUM_THREADS", "1").stdout(out).stderr(err);
        if self.open_mpi && is_root() {
            cmd.env("OMPI_ALLOW_RUN_AS_ROOT", "1").env("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1");
        }
        let start = Instant::now();
        let status = wait_with_timeout(&mut cmd, limit)?;
        Ok((status, start.elapsed()))
    }
}

/// A fresh directory for one scenario's files.
fn scenario_dir(name: &str) -> Result<PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("two-layer-net-mpi-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Rank 1 of 3 leaves mid-training as `fault` says: `mpirun` must end, with a failure, within
/// `FAULT_BOUND`, and where the others' timeout ended it, their message names the rank that
/// waited and the step.
fn fault_case(launch: &Launch<'_>, fault: &str) -> Result<String, String> {
    let dir = scenario_dir(fault)?;
    let log = dir.join("log");
    let (status, took) = launch.run(3, &format!("fault:{fault}"), &dir, &log, FAULT_BOUND)?;
    let out = std::fs::read_to_string(&log).unwrap_or_default();
    // Each waiting rank says so (their lines may interleave in the shared log).
    let timed_out = out.matches("no answer from every rank").count();
    if status.success() {
        return Err(format!("mpirun succeeded after a rank left ({took:.1?}):\n{out}"));
    }
    if out.contains("trained past the fault") {
        return Err(format!("a rank trained on past the fault:\n{out}"));
    }
    if fault == "hang" && timed_out == 0 {
        return Err(format!("no rank reported the timeout:\n{out}"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    let how = match timed_out {
        0 => "by mpirun, which saw the rank go".to_string(),
        n => format!("by the collectives' timeout ({FAULT_TIMEOUT:?}; {n} waiting rank(s) reported it)"),
    };
    Ok(format!("mpirun ended in {took:.1?} ({status}), {how}"))
}

/// Checkpoint and restart at `ranks` ranks: an uninterrupted run; a run whose rank 1 is
/// killed at step `KILL_AT` (rank 0 checkpoints every `EVERY` steps); a run of fresh processes
/// that every rank restarts from that checkpoint. The restarted run must end with the
/// uninterrupted run's parameters and optimizer state, bit for bit.
fn restart_case(launch: &Launch<'_>, ranks: usize) -> Result<String, String> {
    let dir = scenario_dir(&format!("restart{ranks}"))?;
    let limit = Duration::from_secs(120);
    let mut from = String::new();
    for phase in ["full", "killed", "resumed"] {
        if phase == "resumed" {
            // The step the restart starts from: the killed run's last checkpoint.
            let state = TrainingState::<f64>::load(dir.join("checkpoint.safetensors"));
            let state = state.map_err(|e| format!("the killed run's checkpoint: {e}"))?;
            from = state.loop_state().get("step").cloned().unwrap_or_default();
        }
        let log = dir.join(format!("{phase}.log"));
        let (status, took) = launch.run(ranks, &format!("restart:{phase}"), &dir, &log, limit)?;
        let out = std::fs::read_to_string(&log).unwrap_or_default();
        if status.success() != (phase != "killed") {
            return Err(format!("{phase} run: {status} after {took:.1?}:\n{out}"));
        }
    }
    let load = |name: &str| {
        let state = TrainingState::<f64>::load(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        let mut net = restart_net();
        state.restore_net("net", &mut net).map_err(|e| format!("{name}: {e}"))?;
        let mut adam = Adam::new(RESTART_LR);
        state.restore_optimizer("opt", &mut adam).map_err(|e| format!("{name}: {e}"))?;
        let step = state.loop_state().get("step").cloned().unwrap_or_default();
        Ok::<_, String>((net, adam.state(), step))
    };
    let (full, full_opt, full_step) = load("full.safetensors")?;
    let (resumed, resumed_opt, resumed_step) = load("resumed.safetensors")?;
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    let opt_bits = |s: &two_layer_net::OptimizerState<f64>| {
        s.slots
            .iter()
            .map(|slot| (slot.step, slot.buffers.iter().map(|b| bits(b)).collect::<Vec<_>>()))
            .collect::<Vec<_>>()
    };
    if full_step != RESTART_STEPS.to_string() || resumed_step != full_step {
        return Err(format!("steps: uninterrupted {full_step}, restarted {resumed_step}"));
    }
    if bits(full.params().as_slice()) != bits(resumed.params().as_slice()) {
        let diff = max_diff(full.params().as_slice(), resumed.params().as_slice());
        return Err(format!("restarted from step {from}: parameters differ (max |diff| {diff:e})"));
    }
    if opt_bits(&full_opt) != opt_bits(&resumed_opt) {
        return Err(format!("restarted from step {from}: the optimizer states differ"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "killed at step {RESTART_KILL_AT}, restarted from the checkpoint of step {from}: after {RESTART_STEPS} steps \
         parameters and Adam state bitwise equal to the uninterrupted run"
    ))
}

/// `$MPIRUN`, else `mpirun` or `mpiexec` from `PATH`.
fn find_mpirun() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MPIRUN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH")?;
    ["mpirun", "mpiexec"]
        .iter()
        .flat_map(|name| std::env::split_paths(&path).map(move |dir| dir.join(name)))
        .find(|p| p.is_file())
}

/// Whether this process runs as root (OpenMPI refuses root without its two switches).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

/// Runs `cmd` (output inherited); `Err` on a non-zero exit, a failure to start, or a run
/// longer than `timeout` (a deadlock).
fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Result<(), String> {
    let status = wait_with_timeout(&mut cmd, timeout)?;
    if status.success() { Ok(()) } else { Err(format!("exited with {status}")) }
}

/// Starts `cmd` and waits for it: its exit status, or `Err` if it cannot start or runs longer
/// than `timeout` (a deadlock), after which the launcher is stopped.
fn wait_with_timeout(cmd: &mut Command, timeout: Duration) -> Result<ExitStatus, String> {
    let mut child = cmd.spawn().map_err(|e| format!("cannot start {:?}: {e}", cmd.get_program()))?;
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
            Ok(None) => {
                // SIGTERM first: mpirun forwards it to the ranks; SIGKILL would orphan them.
                let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
                let grace = Instant::now() + Duration::from_secs(5);
                while Instant::now() < grace && matches!(child.try_wait(), Ok(None)) {
                    std::thread::sleep(Duration::from_millis(50));
                }
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "timed out after {} s (a rank waiting in a collective?)",
                    timeout.as_secs()
                ));
            }
            Err(e) => return Err(format!("cannot wait for mpirun: {e}")),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Worker: one rank of the MPI job.
// ---------------------------------------------------------------------------------------------

/// Failed checks of this rank, as messages.
#[derive(Default)]
struct Checks {
    run: usize,
    failures: Vec<String>,
}

impl Checks {
    fn check(&mut self, ok: bool, what: impl FnOnce() -> String) {
        self.run += 1;
        if !ok {
            self.failures.push(what());
        }
    }
}

fn worker() -> ExitCode {
    let Some(universe) = mpi::initialize() else {
        eprintln!("mpi: MPI was already initialized");
        return ExitCode::FAILURE;
    };
    let world = universe.world();
    match std::env::var(SCENARIO).as_deref() {
        Ok(s) if s.starts_with("fault:") => return fault(&world, &s["fault:".len()..]),
        Ok(s) if s.starts_with("restart:") => return restart(&world, &s["restart:".len()..]),
        _ => {}
    }
    let (rank, size) = (world.rank(), world.size());
    let mut c = Checks::default();
    if let Ok(expected) = std::env::var(EXPECTED_RANKS) {
        c.check(expected == size.to_string(), || {
            format!("asked for {expected} ranks, MPI reports {size}: an mpirun of another MPI?")
        });
    }

    classifier_matches_single_process(&world, &mut c, "sgd", || Sgd::new(0.5));
    classifier_matches_single_process(&world, &mut c, "momentum", || Momentum::nesterov(0.1, 0.9));
    classifier_matches_single_process(&world, &mut c, "adam", || Adam::new(1e-2));
    regression_matches_single_process(&world, &mut c);
    f32_ranks_agree(&world, &mut c);
    bad_input_on_one_rank_fails_every_rank(&world, &mut c);
    nan_on_one_rank_fails_every_rank(&world, &mut c);
    shapes_must_agree(&world, &mut c);

    // Every rank learns how many checks failed anywhere, so all exit alike.
    let mine = c.failures.len() as u64;
    let mut total = 0u64;
    world.all_reduce_into(&mine, &mut total, SystemOperation::sum());
    for f in &c.failures {
        eprintln!("mpi rank {rank}/{size}: FAILED {f}");
    }
    if rank == 0 {
        let verdict = if total == 0 { "all agree" } else { "FAILED" };
        println!(
            "mpi -n {size}: {} checks on each rank, {total} failure(s) over all ranks: {verdict}",
            c.run
        );
    }
    if total == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// The global batches of a run: a seeded shuffle of `0..n`, cut into batches of the given
/// sizes (cycling), so every rank sees the same sequence.
fn global_batches(n: usize, sizes: &[usize], steps: usize, seed: u64) -> Vec<Vec<usize>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    (0..steps)
        .map(|t| {
            let b = sizes[t % sizes.len()];
            let start = (t * 13) % (n - b + 1);
            order[start..start + b].to_vec()
        })
        .collect()
}

fn rows<F: Scalar>(x: ArrayView2<'_, F>, idx: &[usize]) -> Array2<F> {
    x.select(Axis(0), idx)
}

/// `max |a − b|` (infinite if either holds a NaN).
fn max_diff<F: Scalar>(a: &[F], b: &[F]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&a, &b)| (a - b).abs().as_f64())
        .fold(0.0, |m, d| if d.is_nan() { f64::INFINITY } else { m.max(d) })
}

/// Whether this rank's parameters are bit for bit rank 0's: an independent check (broadcast
/// of rank 0's buffer and a bitwise compare) beside the crate's `param_divergence`.
fn same_as_rank0<F: Scalar + Equivalence>(world: &SimpleCommunicator, params: &[F]) -> bool {
    let mut theta0 = params.to_vec();
    world.process_at_rank(0).broadcast_into(&mut theta0[..]);
    theta0.iter().zip(params).all(|(a, b)| a.as_f64().to_bits() == b.as_f64().to_bits())
}

/// Trains `steps` data-parallel steps and, beside them, the same steps in one process on the
/// whole global batch; checks losses after every step and parameters at the end.
#[allow(clippy::too_many_arguments)]
fn train_and_compare<A, L, O, T>(
    world: &SimpleCommunicator,
    c: &mut Checks,
    name: &str,
    mut dp: DataParallel<f64, SimpleCommunicator, A>,
    mut reference: TwoLayerNet<f64, A>,
    x: ArrayView2<'_, f64>,
    targets: &T,
    batches: &[Vec<usize>],
    loss: &L,
    make_opt: impl Fn() -> O,
) where
    A: Activation,
    L: Loss<f64>,
    O: Optimizer<f64>,
    T: TargetRows<L>,
{
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let (mut opt_dp, mut opt_ref) = (make_opt(), make_opt());
    c.check(dp.net().params() == reference.params(), || {
        format!("{name}: rank 0's initial parameters were not broadcast")
    });
    for (step, idx) in batches.iter().enumerate() {
        let xb = rows(x, idx);
        let tb = targets.rows(idx);
        let mine = shard(idx.len(), rank, size);
        let l_ref = reference.train_step_with(xb.view(), T::view(&tb, 0..idx.len()), loss, &mut opt_ref);
        let l_dp = dp.train_step_with(xb.slice(s![mine.clone(), ..]), T::view(&tb, mine), loss, &mut opt_dp);
        match (l_ref, l_dp) {
            (Ok(a), Ok(b)) => c.check((a - b).abs() <= TOL * a.abs().max(1.0), || {
                format!("{name}, step {step}: global loss {b} vs single-process {a}")
            }),
            (a, b) => {
                c.check(false, || format!("{name}, step {step}: single-process {a:?}, data-parallel {b:?}"))
            }
        }
    }
    let diff = max_diff(dp.net().params().as_slice(), reference.params().as_slice());
    c.check(diff <= TOL, || {
        format!("{name}: after {} steps |θ_dp − θ_single| = {diff:e} > {TOL:e}", batches.len())
    });
    let divergence = dp.param_divergence();
    c.check(divergence == 0.0, || format!("{name}: param_divergence {divergence:e}, expected 0"));
    c.check(same_as_rank0(world, dp.net().params().as_slice()), || {
        format!("{name}: parameters differ from rank 0's")
    });
}

/// Cutting targets (labels or a matrix) by rows, for the two kinds of loss.
trait TargetRows<L: Loss<f64>> {
    type Owned;
    fn rows(&self, idx: &[usize]) -> Self::Owned;
    fn view(owned: &Self::Owned, rows: std::ops::Range<usize>) -> L::Target<'_>;
}

impl<L: for<'a> Loss<f64, Target<'a> = ArrayView1<'a, usize>>> TargetRows<L> for Array1<usize> {
    type Owned = Array1<usize>;
    fn rows(&self, idx: &[usize]) -> Array1<usize> {
        self.select(Axis(0), idx)
    }
    fn view(owned: &Array1<usize>, rows: std::ops::Range<usize>) -> ArrayView1<'_, usize> {
        owned.slice(s![rows])
    }
}

impl<L: for<'a> Loss<f64, Target<'a> = ArrayView2<'a, f64>>> TargetRows<L> for Array2<f64> {
    type Owned = Array2<f64>;
    fn rows(&self, idx: &[usize]) -> Array2<f64> {
        self.select(Axis(0), idx)
    }
    fn view(owned: &Array2<f64>, rows: std::ops::Range<usize>) -> ArrayView2<'_, f64> {
        owned.slice(s![rows, ..])
    }
}

/// The 3-class spiral, softmax cross-entropy + L2, with batches that split unevenly over 2
/// and 3 ranks (31, 32, 17, 40 rows).
fn classifier_matches_single_process<O: Optimizer<f64>>(
    world: &SimpleCommunicator,
    c: &mut Checks,
    name: &str,
    make_opt: impl Fn() -> O,
) {
    let rank = world.rank() as u64;
    let (x, labels) = datasets::spiral::<f64, _>(40, 3, &mut StdRng::seed_from_u64(7));
    let reference = TwoLayerNet::<f64>::new(2, 16, 3, &mut StdRng::seed_from_u64(100)).unwrap();
    // Each rank starts elsewhere: only the broadcast makes them equal.
    let own = TwoLayerNet::<f64>::new(2, 16, 3, &mut StdRng::seed_from_u64(100 + rank)).unwrap();
    let dp = DataParallel::new(own, world.duplicate()).unwrap();
    let batches = global_batches(x.nrows(), &[31, 32, 17, 40], 12, 3);
    let loss = L2::new(SoftmaxCrossEntropy, 1e-3);
    let name = format!("spiral/{name}");
    train_and_compare(world, c, &name, dp, reference, x.view(), &labels, &batches, &loss, make_opt);
}

/// 1-D regression with MSE and a tanh hidden layer, plain SGD, no penalty.
fn regression_matches_single_process(world: &SimpleCommunicator, c: &mut Checks) {
    let rank = world.rank() as u64;
    let (x, y) = datasets::wave::<f64, _>(60, 0.1, &mut StdRng::seed_from_u64(8));
    let reference =
        TwoLayerNet::<f64>::new(1, 8, 1, &mut StdRng::seed_from_u64(50)).unwrap().with_activation(Tanh);
    let own = TwoLayerNet::<f64>::new(1, 8, 1, &mut StdRng::seed_from_u64(50 + rank))
        .unwrap()
        .with_activation(Tanh);
    let dp = DataParallel::new(own, world.duplicate()).unwrap();
    let batches = global_batches(x.nrows(), &[7, 60, 11], 9, 4);
    train_and_compare(world, c, "wave/mse", dp, reference, x.view(), &y, &batches, &Mse, || Sgd::new(0.05));
}

/// In f32 the ranks still hold bit-identical parameters, close to single-process training.
fn f32_ranks_agree(world: &SimpleCommunicator, c: &mut Checks) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    let (x, labels) = datasets::spiral::<f32, _>(30, 3, &mut StdRng::seed_from_u64(9));
    let mut reference = TwoLayerNet::<f32>::new(2, 12, 3, &mut StdRng::seed_from_u64(1)).unwrap();
    let own = TwoLayerNet::<f32>::new(2, 12, 3, &mut StdRng::seed_from_u64(1 + rank as u64)).unwrap();
    let mut dp = DataParallel::new(own, world.duplicate()).unwrap();
    let loss = L2::new(SoftmaxCrossEntropy, 1e-3);
    let (mut opt_dp, mut opt_ref) = (Adam::new(1e-2f32), Adam::new(1e-2f32));
    for idx in global_batches(x.nrows(), &[29, 30], 6, 5) {
        let (xb, lb) = (rows(x.view(), &idx), labels.select(Axis(0), &idx));
        let mine = shard(idx.len(), rank, size);
        reference.train_step_with(xb.view(), lb.view(), &loss, &mut opt_ref).unwrap();
        let r = dp.train_step_with(xb.slice(s![mine.clone(), ..]), lb.slice(s![mine]), &loss, &mut opt_dp);
        c.check(r.is_ok(), || format!("f32: step failed: {r:?}"));
    }
    let diff = max_diff(dp.net().params().as_slice(), reference.params().as_slice());
    c.check(diff <= 1e-4, || format!("f32: |θ_dp − θ_single| = {diff:e} > 1e-4"));
    let divergence = dp.param_divergence();
    c.check(divergence == 0.0, || format!("f32: param_divergence {divergence:e}, expected 0"));
    c.check(same_as_rank0(world, dp.net().params().as_slice()), || {
        "f32: parameters differ from rank 0's".into()
    });
}

/// Checks that a failed step returned `expected` on `failing` (naming it) and `OtherRanks`
/// naming `failing` elsewhere, and left the parameters as they were, equal on every rank.
#[allow(clippy::too_many_arguments)]
fn expect_failed_step<A: Activation>(
    world: &SimpleCommunicator,
    c: &mut Checks,
    name: &str,
    failing: usize,
    result: Result<f64, ParallelError>,
    expected: impl Fn(&Error) -> bool,
    before: &[f64],
    dp: &DataParallel<f64, SimpleCommunicator, A>,
) {
    let rank = world.rank() as usize;
    match &result {
        Err(ParallelError::Step { rank: r, source }) if rank == failing && *r == rank && expected(source) => {
            let msg = result.as_ref().unwrap_err().to_string();
            c.check(msg.contains(&format!("rank {rank}")), || {
                format!("{name}: {msg:?} does not name the rank")
            })
        }
        Err(ParallelError::OtherRanks { ranks }) if rank != failing && ranks == &[failing] => {
            let msg = result.as_ref().unwrap_err().to_string();
            c.check(msg.contains(&format!("rank {failing}")), || {
                format!("{name}: {msg:?} does not name rank {failing}")
            })
        }
        other => c.check(false, || format!("{name}: unexpected result {other:?}")),
    }
    c.check(dp.net().params().as_slice() == before, || {
        format!("{name}: a failed step changed the parameters")
    });
    c.check(same_as_rank0(world, dp.net().params().as_slice()), || {
        format!("{name}: the parameters differ from rank 0's after the failed step")
    });
}

/// A label out of range on the last rank, then an empty shard on the last rank: every rank
/// returns an error, nobody hangs, no parameter changes, and training goes on afterwards.
fn bad_input_on_one_rank_fails_every_rank(world: &SimpleCommunicator, c: &mut Checks) {
    let size = world.size() as usize;
    let (x, mut labels) = datasets::spiral::<f64, _>(10, 3, &mut StdRng::seed_from_u64(11));
    let net = TwoLayerNet::<f64>::new(2, 6, 3, &mut StdRng::seed_from_u64(12)).unwrap();
    let mut dp = DataParallel::new(net, world.duplicate()).unwrap();
    let (loss, mut opt) = (SoftmaxCrossEntropy, Adam::new(1e-2));
    let before = dp.net().params().as_slice().to_vec();

    let n = x.nrows();
    labels[n - 1] = 3; // the last row is in the last rank's shard
    let mine = dp.local_range(n);
    let r = dp.train_step_with(x.slice(s![mine.clone(), ..]), labels.slice(s![mine]), &loss, &mut opt);
    let invalid = |e: &Error| matches!(e, Error::InvalidLabel { label: 3, .. });
    expect_failed_step(world, c, "bad label", size - 1, r, invalid, &before, &dp);

    // A global batch of P − 1 rows leaves the last rank an empty shard.
    let mine = dp.local_range(size - 1);
    let r = dp.train_step_with(x.slice(s![mine.clone(), ..]), labels.slice(s![mine]), &loss, &mut opt);
    let empty = |e: &Error| matches!(e, Error::Empty { .. });
    expect_failed_step(world, c, "empty shard", size - 1, r, empty, &before, &dp);

    // The failures left the optimizer and the ranks in step: a good step now still matches.
    labels[n - 1] = 0;
    let mine = dp.local_range(n);
    let r = dp.train_step_with(x.slice(s![mine.clone(), ..]), labels.slice(s![mine]), &loss, &mut opt);
    c.check(r.is_ok(), || format!("step after failures: {r:?}"));
    let mut reference = TwoLayerNet::<f64>::new(2, 6, 3, &mut StdRng::seed_from_u64(12)).unwrap();
    let lr = reference.train_step_with(x.view(), labels.view(), &loss, &mut Adam::new(1e-2)).unwrap();
    c.check(r.is_ok_and(|l| (l - lr).abs() <= TOL), || "step after failures: loss differs".into());
    let diff = max_diff(dp.net().params().as_slice(), reference.params().as_slice());
    c.check(diff <= TOL, || format!("step after failures: |θ_dp − θ_single| = {diff:e}"));
}

/// A NaN input on rank 1 is caught by rank 1's own forward phase (`Y1` is not finite): rank 1
/// returns that error, every other rank `OtherRanks` naming rank 1, and no rank changes its
/// parameters. Then a loss that overflows on rank 1 (finite input): named alike.
fn nan_on_one_rank_fails_every_rank(world: &SimpleCommunicator, c: &mut Checks) {
    let (mut x, mut y) = datasets::wave::<f64, _>(12, 0.1, &mut StdRng::seed_from_u64(13));
    let net = TwoLayerNet::<f64>::new(1, 4, 1, &mut StdRng::seed_from_u64(14)).unwrap();
    let mut dp = DataParallel::new(net, world.duplicate()).unwrap();
    let before = dp.net().params().as_slice().to_vec();
    let mine = dp.local_range(x.nrows());
    let first_of_rank1 = shard(x.nrows(), 1, world.size() as usize).start;
    x[[first_of_rank1, 0]] = f64::NAN;
    let r = dp.train_step_with(
        x.slice(s![mine.clone(), ..]),
        y.slice(s![mine.clone(), ..]),
        &Mse,
        &mut Sgd::new(0.1),
    );
    let non_finite = |e: &Error| matches!(e, Error::NonFinite { what: "y1" });
    expect_failed_step(world, c, "NaN on rank 1", 1, r, non_finite, &before, &dp);

    // A target of 1e300 on rank 1: its loss (1e600 / n) is already infinite in f64.
    x[[first_of_rank1, 0]] = 0.5;
    y[[first_of_rank1, 0]] = 1e300;
    let r =
        dp.train_step_with(x.slice(s![mine.clone(), ..]), y.slice(s![mine, ..]), &Mse, &mut Sgd::new(0.1));
    let loss = |e: &Error| matches!(e, Error::NonFinite { what: "loss" });
    expect_failed_step(world, c, "infinite loss on rank 1", 1, r, loss, &before, &dp);
}

/// Networks of different shapes on different ranks: `new` fails on every rank.
fn shapes_must_agree(world: &SimpleCommunicator, c: &mut Checks) {
    let (rank, size) = (world.rank() as usize, world.size() as usize);
    c.check(size >= 2, || format!("shapes_must_agree needs 2 ranks or more, has {size}"));
    let h = if rank == size - 1 { 5 } else { 4 };
    let net = TwoLayerNet::<f64>::new(2, h, 3, &mut StdRng::seed_from_u64(15)).unwrap();
    let r = DataParallel::new(net, world.duplicate()).map(|_| ());
    let expected = ParallelError::Layout { min: [2, 4, 3], max: [2, 5, 3] };
    c.check(r.as_ref().err() == Some(&expected), || format!("layout mismatch: {r:?}"));
}

// ---------------------------------------------------------------------------------------------
// Worker scenarios: a rank that dies, checkpoint and restart.
// ---------------------------------------------------------------------------------------------

/// Sends SIGKILL to this process (what the OOM killer or a failing node does).
fn kill_self() -> ! {
    let _ = Command::new("kill").arg("-KILL").arg(std::process::id().to_string()).status();
    loop {
        std::thread::sleep(Duration::from_secs(1));
    }
}

/// Trains on every rank; rank 1 leaves at step 5 as `fault` says. No rank may get past it.
fn fault(world: &SimpleCommunicator, fault: &str) -> ExitCode {
    let rank = world.rank();
    let (x, labels) = datasets::spiral::<f64, _>(50, 3, &mut StdRng::seed_from_u64(31));
    let net = TwoLayerNet::<f64>::new(2, 16, 3, &mut StdRng::seed_from_u64(32)).unwrap();
    let mut dp = DataParallel::new(net, world.duplicate()).unwrap().with_timeout(FAULT_TIMEOUT);
    let mut opt = Sgd::new(0.1);
    let mine = dp.local_range(x.nrows());
    for step in 0..200 {
        if step == 5 && rank == 1 {
            match fault {
                "kill" => kill_self(),
                "exit" => std::process::exit(3),
                "panic" => panic!("rank 1 panics at step 5"),
                _ => loop {
                    std::thread::sleep(Duration::from_secs(1));
                },
            }
        }
        let r = dp.train_step_with(
            x.slice(s![mine.clone(), ..]),
            labels.slice(s![mine.clone()]),
            &SoftmaxCrossEntropy,
            &mut opt,
        );
        if let Err(e) = r {
            eprintln!("rank {rank}: step {step} failed: {e}");
            return ExitCode::FAILURE;
        }
    }
    eprintln!("rank {rank}: trained past the fault");
    ExitCode::FAILURE
}

/// Steps of the restart scenario's run, the checkpoint interval, and the step at which rank 1
/// is killed in the `killed` phase.
const RESTART_STEPS: usize = 12;
const RESTART_EVERY: usize = 3;
const RESTART_KILL_AT: usize = 8;
const RESTART_LR: f64 = 1e-2;

fn restart_net() -> TwoLayerNet<f64> {
    TwoLayerNet::<f64>::new(2, 16, 3, &mut StdRng::seed_from_u64(42)).unwrap()
}

/// One phase of checkpoint and restart: `full` (uninterrupted), `killed` (rank 1 killed at
/// step `RESTART_KILL_AT`), `resumed` (every rank loads rank 0's last checkpoint and goes on).
/// Rank 0 writes `checkpoint.safetensors` every `RESTART_EVERY` steps and `{phase}.safetensors`
/// at the end.
fn restart(world: &SimpleCommunicator, phase: &str) -> ExitCode {
    let rank = world.rank();
    let dir = PathBuf::from(std::env::var_os(DIR).expect("the launcher sets the directory"));
    let (x, labels) = datasets::spiral::<f64, _>(40, 3, &mut StdRng::seed_from_u64(41));
    let batches = global_batches(x.nrows(), &[30, 24, 17], RESTART_STEPS, 43);
    let (mut net, mut opt, mut start) = (restart_net(), Adam::new(RESTART_LR), 0);
    if phase == "resumed" {
        let state =
            TrainingState::<f64>::load(dir.join("checkpoint.safetensors")).expect("load the checkpoint");
        state.restore_net("net", &mut net).expect("restore the net");
        state.restore_optimizer("opt", &mut opt).expect("restore the optimizer");
        start = state.loop_state()["step"].parse().expect("the step");
    }
    let mut dp = DataParallel::new(net, world.duplicate()).unwrap().with_timeout(Duration::from_secs(30));
    let save = |dp: &DataParallel<f64, SimpleCommunicator>, opt: &Adam<f64>, step: usize, name: &str| {
        let mut state = TrainingState::new();
        state.set_net("net", dp.net()).unwrap();
        state.set_optimizer("opt", opt).unwrap();
        state.loop_state_mut().insert("step".into(), step.to_string());
        state.save(dir.join(name)).expect("save");
    };
    for (step, idx) in batches.iter().enumerate().skip(start) {
        if phase == "killed" && step == RESTART_KILL_AT && rank == 1 {
            kill_self();
        }
        let (xb, lb) = (rows(x.view(), idx), labels.select(Axis(0), idx));
        let mine = dp.local_range(idx.len());
        let r = dp.train_step_with(
            xb.slice(s![mine.clone(), ..]),
            lb.slice(s![mine]),
            &SoftmaxCrossEntropy,
            &mut opt,
        );
        if let Err(e) = r {
            eprintln!("rank {rank}: step {step} failed: {e}");
            return ExitCode::FAILURE;
        }
        if rank == 0 && (step + 1) % RESTART_EVERY == 0 {
            save(&dp, &opt, step + 1, "checkpoint.safetensors");
        }
    }
    if rank == 0 {
        save(&dp, &opt, RESTART_STEPS, &format!("{phase}.safetensors"));
    }
    ExitCode::SUCCESS
}
