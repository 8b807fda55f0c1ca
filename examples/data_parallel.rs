//! Data-parallel training over MPI: every rank trains the same network on its slice of each
//! global batch, one allreduce per step (see `two_layer_net::parallel`).
//!
//! By default, the CS231n spiral, larger (3 classes × 1000 points), learned with Adam and
//! mini-batches of 256; every rank prints its throughput and the final training accuracy,
//! which is the same on every rank because the parameters are (the example exits with code 1
//! if the ranks' parameters differ or the accuracy is below 95%).
//!
//! With `--timing`, it instead times steps of a larger network on random data (`--dims`,
//! default 784,256,10, MNIST-sized) at each global batch size of `--batches`, and prints the
//! time per step split into local compute, allreduce and update. Before the steps it times
//! `MPI_Allreduce` (sum, f64) alone: on the step's own buffer (the parameters, the loss and
//! row count, one flag per rank) and on each size of `--sweep`, enough calls for about
//! 0.2 s each (at least `--steps`), so that a latency α and a bandwidth β can be fitted to
//! the ring model `t = 2(P−1)·α + 2(P−1)/P · bytes/β` (`tools/scale_model`). The allreduce
//! times and the steps' "all ranks" times are the slowest rank's mean per call or step.
//!
//! `--json FILE` appends one JSON object per measurement to FILE (rank 0 writes), so that runs
//! at several P collect in one file:
//! `{"kind":"allreduce","P":2,"scalars":203534,"bytes":1628272,"calls":…,"us":…,"oversubscribed":false}`
//! and `{"kind":"step","P":2,"D":784,"H":256,"K":10,"dtype":"f64","batch":1024,"local_rows":512,
//! "scalars":203534,"steps":50,"us_step":…,"us_compute":…,"us_allreduce":…,"us_update":…,
//! "oversubscribed":false}`, where `us_step` is the slowest rank's wall time per step and the
//! phases are rank 0's (it has the most rows, `local_rows`). `oversubscribed` is true when
//! OpenMPI put more ranks on a node than it has cores (it then sets `OMPI_MCA_mpi_oversubscribe=1`
//! in the ranks; other MPIs are not detected): the ranks time-share cores, so the times are
//! pessimistic.
//!
//! ```sh
//! cargo build --release --features mpi --example data_parallel
//! OPENBLAS_NUM_THREADS=1 mpirun -n 2 target/release/examples/data_parallel
//! OPENBLAS_NUM_THREADS=1 mpirun -n 2 target/release/examples/data_parallel --timing --batches 64,256,1024
//! OPENBLAS_NUM_THREADS=1 mpirun -n 2 target/release/examples/data_parallel --timing --json docs/scaleout.jsonl
//! # as root, OpenMPI also wants --allow-run-as-root; more ranks than cores, --oversubscribe
//! ```

use std::error::Error;
use std::fs::OpenOptions;
use std::io::Write;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use two_layer_net::ndarray::{Array1, Array2, s};
use two_layer_net::parallel::mpi::collective::{CommunicatorCollectives, SystemOperation};
use two_layer_net::parallel::mpi::topology::{Communicator, SimpleCommunicator};
use two_layer_net::parallel::{DataParallel, mpi};
use two_layer_net::{Adam, Init, L2, Sgd, SoftmaxCrossEntropy, TwoLayerNet, accuracy, datasets};

/// The training accuracy below which the spiral run fails.
const MIN_ACCURACY: f64 = 0.95;
/// With --timing: about how long each allreduce size is timed, in seconds.
const ALLREDUCE_SECONDS: f64 = 0.2;

/// Data-parallel training of a two-layer network over MPI ranks.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Spiral points per class.
    #[arg(long, default_value = "1000")]
    per_class: NonZeroUsize,
    /// Spiral classes (arms).
    #[arg(long, default_value = "3")]
    classes: NonZeroUsize,
    /// Hidden units.
    #[arg(long, default_value = "100")]
    hidden: NonZeroUsize,
    /// Global batch: rows per step over all ranks together (each rank takes about 1/P).
    #[arg(long, default_value = "256")]
    batch: NonZeroUsize,
    /// Passes over the data.
    #[arg(long, default_value = "40")]
    epochs: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// L2 strength `reg` (penalty 0.5·reg·(ΣW1² + ΣW2²)).
    #[arg(long, default_value_t = 1e-4)]
    reg: f64,
    /// Seed of the data, the initial weights (rank 0's are broadcast) and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Time steps on random data instead of training the spiral.
    #[arg(long)]
    timing: bool,
    /// With --timing: D,H,K of the network.
    #[arg(long, value_delimiter = ',', default_value = "784,256,10")]
    dims: Vec<usize>,
    /// With --timing: the global batch sizes to time.
    #[arg(long, value_delimiter = ',', default_value = "64,256,1024,4096")]
    batches: Vec<usize>,
    /// With --timing: steps timed per batch size (after 5 warm-up steps), and the least
    /// number of calls timed per allreduce size.
    #[arg(long, default_value = "50")]
    steps: NonZeroUsize,
    /// With --timing: the allreduce sizes to time alone, in f64 scalars (besides the step's).
    #[arg(long, value_delimiter = ',', default_value = "1,16,256,4096,65536,1048576")]
    sweep: Vec<NonZeroUsize>,
    /// With --timing: append the measurements to this file as JSON lines (rank 0 writes).
    #[arg(long)]
    json: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(universe) = mpi::initialize() else {
        eprintln!("MPI was already initialized");
        return ExitCode::FAILURE;
    };
    let world = universe.world();
    let result = if args.timing { timing(&args, &world) } else { spiral(&args, &world) };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rank {}: {e}", world.rank());
            ExitCode::FAILURE
        }
    }
}

/// Prints `line(rank)` on every rank, in rank order (best effort: mpirun merges the outputs).
fn in_rank_order(world: &SimpleCommunicator, line: impl Fn() -> String) {
    for r in 0..world.size() {
        if r == world.rank() {
            println!("{}", line());
        }
        world.barrier();
    }
}

/// Trains the spiral; `Ok(false)` if the ranks disagree or the accuracy is too low.
fn spiral(args: &Args, world: &SimpleCommunicator) -> Result<bool, Box<dyn Error>> {
    let mut rng = StdRng::seed_from_u64(args.seed);
    // The same data on every rank: the same seed.
    let (x, labels) = datasets::spiral::<f64, _>(args.per_class.get(), args.classes.get(), &mut rng);
    let (n, k) = (x.nrows(), args.classes.get());
    // Each rank draws its own weights; DataParallel::new replaces them by rank 0's.
    let mut init_rng = StdRng::seed_from_u64(args.seed.wrapping_add(1 + world.rank() as u64));
    let net = TwoLayerNet::<f64>::with_init(2, args.hidden.get(), k, Init::He, &mut init_rng)?;
    let mut dp = DataParallel::new(net, world.duplicate())?;
    let (rank, size) = (dp.rank(), dp.size());
    let batch = args.batch.get().min(n);
    if batch < size {
        return Err(format!("a global batch of {batch} rows leaves some of the {size} ranks nothing").into());
    }
    if rank == 0 {
        println!(
            "{size} rank(s), {n} points in {k} classes, hidden {}, global batch {batch} \
             (~{} rows per rank), {} epochs",
            args.hidden,
            batch.div_ceil(size),
            args.epochs
        );
    }

    let loss = L2::new(SoftmaxCrossEntropy, args.reg);
    let mut opt = Adam::new(args.lr);
    let mut order: Vec<usize> = (0..n).collect();
    let mut shuffle_rng = StdRng::seed_from_u64(args.seed.wrapping_add(1000));
    // This rank's rows of a batch, gathered into buffers sized once.
    let most = dp.local_range(batch).len();
    let mut xb = Array2::zeros((most, 2));
    let mut lb = Array1::zeros(most);
    let (mut local_rows, mut steps, mut last_loss) = (0usize, 0usize, f64::NAN);
    let start = Instant::now();
    for epoch in 0..args.epochs {
        order.shuffle(&mut shuffle_rng);
        let mut total = 0.0;
        for idx in order.chunks(batch).filter(|idx| idx.len() >= size) {
            let mine = &idx[dp.local_range(idx.len())];
            for (j, &i) in mine.iter().enumerate() {
                xb.row_mut(j).assign(&x.row(i));
                lb[j] = labels[i];
            }
            let m = mine.len();
            let l = dp.train_step_with(xb.slice(s![..m, ..]), lb.slice(s![..m]), &loss, &mut opt)?;
            total += l * idx.len() as f64;
            local_rows += m;
            steps += 1;
            last_loss = l;
        }
        if rank == 0 && (epoch + 1) % 10 == 0 {
            println!("epoch {:>3}: mean loss {:.4}", epoch + 1, total / n as f64);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    let t = dp.timings();
    let divergence = dp.param_divergence();
    // Every rank evaluates all the data with its own copy of the parameters.
    let acc = accuracy(dp.net_mut(), x.view(), labels.view())?;
    in_rank_order(world, || {
        format!(
            "rank {rank}/{size}: {local_rows} rows in {steps} steps, {:.0} samples/s on this rank, \
             {:.1} µs/step (compute {:.1}, allreduce {:.1}, update {:.1}); final loss {last_loss:.6}, \
             training accuracy {:.2}%",
            local_rows as f64 / secs,
            1e6 * secs / steps as f64,
            per_step_us(t.compute, t.steps),
            per_step_us(t.allreduce, t.steps),
            per_step_us(t.update, t.steps),
            100.0 * acc
        )
    });
    // The accuracy must be the same on every rank: compare the extremes.
    let (mut lo, mut hi) = (0.0, 0.0);
    world.all_reduce_into(&acc, &mut hi, SystemOperation::max());
    world.all_reduce_into(&-acc, &mut lo, SystemOperation::max());
    let agree = divergence == 0.0 && hi == -lo;
    // Rows trained over all ranks, per second of the slowest rank.
    let (mut all_rows, mut slowest) = (0u64, 0.0);
    world.all_reduce_into(&(local_rows as u64), &mut all_rows, SystemOperation::sum());
    world.all_reduce_into(&secs, &mut slowest, SystemOperation::max());
    if rank == 0 {
        println!(
            "all ranks: {:.0} samples/s; parameters {}; training accuracy {:.2}% on every rank",
            all_rows as f64 / slowest,
            if divergence == 0.0 {
                "identical on every rank".to_string()
            } else {
                format!("DIFFER by {divergence:e}")
            },
            100.0 * acc
        );
    }
    Ok(agree && acc >= MIN_ACCURACY)
}

/// Mean microseconds per step of a phase.
fn per_step_us(d: std::time::Duration, steps: u64) -> f64 {
    1e6 * d.as_secs_f64() / steps.max(1) as f64
}

/// Whether OpenMPI put more ranks on this rank's node than it has cores (`mpirun
/// --oversubscribe`): it then sets `OMPI_MCA_mpi_oversubscribe=1` in the ranks. Collective:
/// true on every rank if it is on any.
fn oversubscribed(world: &SimpleCommunicator) -> bool {
    let here = std::env::var("OMPI_MCA_mpi_oversubscribe").is_ok_and(|v| v == "1");
    let mut any = false;
    world.all_reduce_into(&here, &mut any, SystemOperation::logical_or());
    any
}

/// Mean seconds per `MPI_Allreduce` (sum) of `len` f64s on the slowest rank, and the number of
/// calls timed: after 5 warm-up calls, enough for about [`ALLREDUCE_SECONDS`] (at least
/// `min_calls`), the same number on every rank. Collective.
fn time_allreduce(world: &SimpleCommunicator, len: usize, min_calls: usize) -> (f64, usize) {
    let send = vec![1.0f64; len];
    let mut recv = vec![0.0f64; len];
    let mut calls = |n: usize| {
        world.barrier();
        let start = Instant::now();
        for _ in 0..n {
            world.all_reduce_into(&send[..], &mut recv[..], SystemOperation::sum());
        }
        let (mine, mut slowest) = (start.elapsed().as_secs_f64() / n as f64, 0.0);
        world.all_reduce_into(&mine, &mut slowest, SystemOperation::max());
        slowest
    };
    let warm = calls(5);
    let n = ((ALLREDUCE_SECONDS / warm) as usize).max(min_calls);
    (calls(n), n)
}

/// Times steps on random data at each global batch size.
fn timing(args: &Args, world: &SimpleCommunicator) -> Result<bool, Box<dyn Error>> {
    let [d, h, k] = args.dims[..] else {
        return Err(format!("--dims wants D,H,K, got {:?}", args.dims).into());
    };
    let biggest = args.batches.iter().copied().max().unwrap_or(1);
    let mut rng = StdRng::seed_from_u64(args.seed);
    let x = Array2::from_shape_fn((biggest, d), |_| rng.random_range(-1.0..1.0));
    let labels = Array1::from_shape_fn(biggest, |_| rng.random_range(0..k));
    let net = TwoLayerNet::<f64>::with_init(d, h, k, Init::He, &mut rng)?;
    let mut baseline = (world.size() == 1).then(|| net.clone());
    let mut dp = DataParallel::new(net, world.duplicate())?;
    let (rank, size) = (dp.rank(), dp.size());
    let params = dp.net().params().len();
    // The step's allreduce buffer: the gradient, the loss and row count, one flag per rank.
    let scalars = params + 2 + size;
    let oversubscribed = oversubscribed(world);
    // Rank 0's JSON lines, written at the end: a file that cannot be written then fails rank 0
    // alone, after every collective, so that no rank waits for it.
    let mut records: Vec<serde_json::Value> = Vec::new();
    if rank == 0 {
        println!(
            "{size} rank(s), D,H,K = {d},{h},{k}: {params} parameters, \
             allreduce of {:.1} KiB per step (f64), \
             OPENBLAS_NUM_THREADS={}",
            (scalars * 8) as f64 / 1024.0,
            std::env::var("OPENBLAS_NUM_THREADS").unwrap_or_else(|_| "unset".into())
        );
        if oversubscribed {
            println!(
                "oversubscribed: more ranks than cores on a node, the ranks time-share cores \
                 (times are pessimistic, the allreduce latency most)"
            );
        }
    }
    let loss = SoftmaxCrossEntropy;
    let steps = args.steps.get();

    // The collective alone, without the imbalance of a step: on a buffer of the step's size,
    // then on each size of the sweep.
    let mut sizes: Vec<usize> = args.sweep.iter().map(|n| n.get()).chain([scalars]).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for len in sizes {
        let (secs, calls) = time_allreduce(world, len, steps);
        if rank == 0 {
            if len == scalars {
                println!("allreduce alone: {:.1} µs per call ({len} scalars)", 1e6 * secs);
            } else {
                println!(
                    "allreduce sweep: {:>10.1} µs per call ({len:>8} scalars, {calls} calls)",
                    1e6 * secs
                );
            }
            records.push(serde_json::json!({
                "kind": "allreduce", "P": size, "scalars": len, "bytes": len * 8, "calls": calls,
                "us": 1e6 * secs, "oversubscribed": oversubscribed,
            }));
        }
    }
    for &batch in &args.batches {
        if batch < size {
            continue;
        }
        let mine = dp.local_range(batch);
        let (xb, lb) = (x.slice(s![mine.clone(), ..]), labels.slice(s![mine.clone()]));
        let mut opt = Sgd::new(1e-3);
        for _ in 0..5 {
            dp.train_step_with(xb, lb, &loss, &mut opt)?;
        }
        world.barrier();
        dp.reset_timings();
        let start = Instant::now();
        for _ in 0..steps {
            dp.train_step_with(xb, lb, &loss, &mut opt)?;
        }
        let wall = start.elapsed().as_secs_f64() / steps as f64;
        let mut slowest = 0.0;
        world.all_reduce_into(&wall, &mut slowest, SystemOperation::max());
        let t = dp.timings();
        in_rank_order(world, || {
            format!(
                "batch {batch:>5}: rank {rank}/{size} {:>4} rows, {:>8.1} µs/step \
                 (compute {:.1}, allreduce {:.1}, \
                 update {:.1}), {:.0} samples/s on this rank",
                mine.len(),
                1e6 * wall,
                per_step_us(t.compute, t.steps),
                per_step_us(t.allreduce, t.steps),
                per_step_us(t.update, t.steps),
                mine.len() as f64 / wall
            )
        });
        if rank == 0 {
            println!(
                "batch {batch:>5}: all ranks {:>8.1} µs/step, {:.0} samples/s",
                1e6 * slowest,
                batch as f64 / slowest
            );
            records.push(serde_json::json!({
                "kind": "step", "P": size, "D": d, "H": h, "K": k, "dtype": "f64", "batch": batch,
                "local_rows": mine.len(), "scalars": scalars, "steps": steps, "us_step": 1e6 * slowest,
                "us_compute": per_step_us(t.compute, t.steps),
                "us_allreduce": per_step_us(t.allreduce, t.steps),
                "us_update": per_step_us(t.update, t.steps), "oversubscribed": oversubscribed,
            }));
        }
        if let Some(net) = baseline.as_mut() {
            // One process without the wrapper: the fused SGD step on the whole batch.
            let (xb, lb) = (x.slice(s![..batch, ..]), labels.slice(s![..batch]));
            let mut opt = Sgd::new(1e-3);
            for _ in 0..5 {
                net.train_step_with(xb, lb, &loss, &mut opt)?;
            }
            let start = Instant::now();
            for _ in 0..steps {
                net.train_step_with(xb, lb, &loss, &mut opt)?;
            }
            let wall = start.elapsed().as_secs_f64() / steps as f64;
            println!(
                "batch {batch:>5}: plain TwoLayerNet::train_step_with (fused SGD) {:>8.1} µs/step",
                1e6 * wall
            );
        }
    }
    if let (Some(path), 0) = (&args.json, rank) {
        let append = || -> std::io::Result<()> {
            let mut file = OpenOptions::new().create(true).append(true).open(path)?;
            records.iter().try_for_each(|line| writeln!(file, "{line}"))
        };
        append().map_err(|e| format!("cannot append to {}: {e}", path.display()))?;
        println!("appended {} JSON lines to {}", records.len(), path.display());
    }
    Ok(true)
}
