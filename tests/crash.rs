//! Crash safety of saving, in the suite: a child process saving in a loop is killed with
//! SIGKILL at random points, again and again, and after every kill `load` must return one of
//! the two complete versions the child alternates between — never an error, never a mix — and
//! the temporary files of killed saves must not accumulate (each save removes those of dead
//! writers first, so at most the last killed save's file is there at any time, and none after
//! a clean save).
//!
//! Both kinds of file: a parameter checkpoint (`save`/`load`) and a `TrainingState` (a network
//! and Adam's state). Then write faults: a save cut short by a file-size limit at one size
//! after another must return an error and leave the old file complete.
//!
//! `harness = false`: without arguments this binary is the parent; it re-runs itself as
//! `crash child KIND DIR` or `crash write-fault KIND DIR` and closes with
//! `crash: N passed, N failed`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use two_layer_net::ndarray::Array2;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::rand::{RngExt, SeedableRng};
use two_layer_net::{Adam, Init, Mse, Optimizer, Relu, TrainingState, TwoLayerNet, load, save};

/// Kills per kind of file.
const KILLS: usize = 200;
/// Large enough that a save (write and fsync) takes a while, small enough that a child starts
/// fast: 128→256→10, f64 (a 290 kB checkpoint).
const D: usize = 128;
const H: usize = 256;
const K: usize = 10;
const FILE: &str = "model.safetensors";

/// The versions a child alternates between: a network and an Adam state after `seed` steps
/// (`version(1)` and `version(2)` differ in every part).
fn version(seed: u64) -> (TwoLayerNet<f64>, Adam<f64>) {
    let mut net = TwoLayerNet::with_init(D, H, K, Init::He, &mut StdRng::seed_from_u64(seed)).unwrap();
    let mut adam = Adam::new(1e-3);
    let x = Array2::from_shape_fn((4, D), |(i, j)| ((i * D + j) as f64 * 0.01).sin());
    let y = Array2::from_shape_fn((4, K), |(i, j)| (i + j) as f64 * 0.1);
    for _ in 0..seed {
        net.train_step_with(x.view(), y.view(), &Mse, &mut adam).unwrap();
    }
    (net, adam)
}

fn save_version(kind: &str, (net, adam): &(TwoLayerNet<f64>, Adam<f64>), path: &Path) {
    match kind {
        "checkpoint" => save(net, path).expect("save"),
        _ => {
            let mut state = TrainingState::new();
            state.set_net("net", net).unwrap();
            state.set_optimizer("opt", adam).unwrap();
            state.save(path).expect("save the training state");
        }
    }
}

/// Which version the file at `path` holds, or why it is neither.
fn which(kind: &str, path: &Path, versions: &[(TwoLayerNet<f64>, Adam<f64>); 2]) -> Result<usize, String> {
    let (net, state) = match kind {
        "checkpoint" => (load::<f64, Relu>(path).map_err(|e| format!("load: {e}"))?, None),
        _ => {
            let state = TrainingState::<f64>::load(path).map_err(|e| format!("load: {e}"))?;
            let mut net = versions[0].0.clone();
            state.restore_net("net", &mut net).map_err(|e| format!("restore_net: {e}"))?;
            let mut adam = Adam::new(1e-3);
            state.restore_optimizer("opt", &mut adam).map_err(|e| format!("restore_optimizer: {e}"))?;
            (net, Some(adam.state()))
        }
    };
    let found = versions
        .iter()
        .position(|(n, a)| n.params() == net.params() && state.as_ref().is_none_or(|s| *s == a.state()));
    found.ok_or_else(|| "a complete file of neither version (a mix)".to_string())
}

/// The sizes of the temporary files of `FILE` in `dir` (`.model.safetensors.tmp-*`).
fn temporaries(dir: &Path) -> Vec<u64> {
    let prefix = format!(".{FILE}.tmp-");
    let entries = std::fs::read_dir(dir).expect("read the directory").flatten();
    entries
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .collect()
}

/// The child: saves version 1 and version 0 in turn, forever (until killed).
fn child(kind: &str, dir: &Path) {
    let versions = [version(1), version(2)];
    let path = dir.join(FILE);
    println!("ready");
    for i in 1.. {
        save_version(kind, &versions[i % 2], &path);
    }
}

/// Kills `KILLS` saving children of `kind` and checks what each left.
fn case(kind: &str, exe: &Path, rng: &mut StdRng) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("two-layer-net-crash-{kind}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(FILE);
    let versions = [version(1), version(2)];

    // How long one save takes here: the kills are spread over a few of them.
    let t0 = Instant::now();
    for i in 0..6 {
        save_version(kind, &versions[i % 2], &path);
    }
    let save_time = t0.elapsed() / 6;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    std::fs::write(dir.join("plain"), &bytes).map_err(|e| e.to_string())?;
    std::fs::File::open(dir.join("plain")).and_then(|f| f.sync_all()).map_err(|e| e.to_string())?;
    let write_time = t0.elapsed();

    // Half of the kills at a uniform time over a few saves (building the bytes, removing stale
    // files, creating, renaming); half aimed at the data write: once a temporary file appears,
    // after a random spin of up to twice the time a write took.
    let full = std::fs::metadata(&path).map_err(|e| e.to_string())?.len();
    let (mut seen, mut max_temps) = ([0usize; 2], 0);
    let (mut partial, mut complete) = (0, 0);
    for kill in 0..KILLS {
        let mut child = Command::new(exe)
            .args(["child", kind])
            .arg(&dir)
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn: {e}"))?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).map_err(|e| e.to_string())?;
        if line.trim() != "ready" {
            let _ = child.kill();
            return Err(format!("child said {line:?}"));
        }
        if kill % 2 == 0 {
            std::thread::sleep(save_time.mul_f64(rng.random_range(0.0..3.0)));
        } else {
            let deadline = Instant::now() + Duration::from_secs(5);
            while temporaries(&dir).is_empty() && Instant::now() < deadline {}
            let spin = Instant::now() + write_time.mul_f64(rng.random_range(0.0..2.0));
            while Instant::now() < spin {}
        }
        child.kill().map_err(|e| format!("kill: {e}"))?; // SIGKILL on Unix
        let status = child.wait().map_err(|e| e.to_string())?;
        if status.success() {
            return Err(format!("kill {kill}: the child exited by itself ({status})"));
        }
        let temps = temporaries(&dir);
        max_temps = max_temps.max(temps.len());
        partial += temps.iter().filter(|&&len| len < full).count();
        complete += temps.iter().filter(|&&len| len == full).count();
        match which(kind, &path, &versions) {
            Ok(v) => seen[v] += 1,
            Err(why) => return Err(format!("after kill {kill}: {why}")),
        }
    }
    // Only the last killed save's file may be left at any time, and a clean save removes it.
    if max_temps > 1 {
        return Err(format!("{max_temps} temporary files at once: they accumulate"));
    }
    save_version(kind, &versions[0], &path);
    if !temporaries(&dir).is_empty() {
        return Err(format!("{} temporary files after a clean save", temporaries(&dir).len()));
    }
    // The kills must have landed in saves, of both versions, for the test to mean anything.
    if seen.contains(&0) || partial + complete < KILLS / 4 {
        return Err(format!("kills missed the saves: versions {seen:?}, {partial} + {complete} in a write"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "{KILLS} kills ({partial} during the data write, {complete} between write and rename; a save \
         takes {save_time:.1?}, its write {write_time:.1?}): the old or the new complete file every \
         time (versions {seen:?}), at most {max_temps} temporary file, none after a clean save"
    ))
}

/// The write-fault child: saves version 2 over the file, under a file-size limit the parent
/// set; prints `ok` or `refused: {error}`.
fn write_fault_child(kind: &str, dir: &Path) {
    match std::panic::catch_unwind(|| try_save(kind, &version(2), &dir.join(FILE))) {
        Ok(Ok(())) => println!("ok"),
        Ok(Err(e)) => println!("refused: {e}"),
        Err(_) => println!("panicked"),
    }
}

fn try_save(
    kind: &str,
    (net, adam): &(TwoLayerNet<f64>, Adam<f64>),
    path: &Path,
) -> Result<(), two_layer_net::CheckpointError> {
    match kind {
        "checkpoint" => save(net, path),
        _ => {
            let mut state = TrainingState::new();
            state.set_net("net", net)?;
            state.set_optimizer("opt", adam)?;
            state.save(path)
        }
    }
}

/// Write faults: saves over a good file (version 1) in a child whose file-size limit
/// (`ulimit -f`, SIGXFSZ ignored, so a write past it fails with EFBIG) cuts the write at one
/// size after another, from nothing to past the whole file. Each save must either succeed
/// (the limit is above the file) or return an error, and leave the old file complete and no
/// temporary file; never a panic.
fn write_faults(kind: &str, exe: &Path) -> Result<String, String> {
    let dir = std::env::temp_dir().join(format!("two-layer-net-wfault-{kind}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let path = dir.join(FILE);
    let versions = [version(1), version(2)];
    save_version(kind, &versions[0], &path);
    let kib = std::fs::metadata(&path).map_err(|e| e.to_string())?.len().div_ceil(1024);
    let mut limits: Vec<u64> = (0..).map(|i| (1u64 << i) - 1).take_while(|&l| l < kib).collect();
    limits.extend((1..=24).map(|i| kib * i / 24).chain([kib - 1, kib, kib + 1]));
    limits.sort_unstable();
    limits.dedup();
    let (mut refused, mut succeeded) = (0, 0);
    for limit in &limits {
        save_version(kind, &versions[0], &path);
        let script = format!("trap '' XFSZ; ulimit -f {limit}; exec \"$0\" write-fault {kind} \"$1\"");
        let out = Command::new("bash")
            .args(["-c", &script])
            .arg(exe)
            .arg(&dir)
            .output()
            .map_err(|e| format!("bash: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout).trim().to_string();
        let expected = if said == "ok" {
            succeeded += 1;
            1
        } else if said.starts_with("refused: ") {
            refused += 1;
            0
        } else {
            return Err(format!("limit {limit} KiB: the child said {said:?} ({})", out.status));
        };
        match which(kind, &path, &versions) {
            Ok(v) if v == expected => {}
            other => {
                return Err(format!(
                    "limit {limit} KiB ({said}): the file holds {other:?}, expected version {expected}"
                ));
            }
        }
        if !temporaries(&dir).is_empty() {
            return Err(format!("limit {limit} KiB: a failed save left a temporary file"));
        }
    }
    if refused == 0 || succeeded == 0 {
        return Err(format!("the limits did not cut the write: {refused} refused, {succeeded} succeeded"));
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!(
        "{} write faults ({refused} saves refused with an error, {succeeded} under limits above the {kib} KiB file): \
         the old file complete after every refusal, no temporary file left",
        limits.len()
    ))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("child") => return child(&args[2], &PathBuf::from(&args[3])),
        Some("write-fault") => return write_fault_child(&args[2], &PathBuf::from(&args[3])),
        _ => {}
    }
    let exe = std::env::current_exe().expect("the test binary");
    // Other points each run; the seed is printed to replay a run's delays.
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    println!("crash: kill delays from seed {seed}");
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut passed, mut failed) = (0, 0);
    for kind in ["checkpoint", "training-state"] {
        for (name, outcome) in
            [("kills", case(kind, &exe, &mut rng)), ("write faults", write_faults(kind, &exe))]
        {
            match outcome {
                Ok(what) => {
                    passed += 1;
                    println!("crash {kind} {name} ... ok: {what}");
                }
                Err(why) => {
                    failed += 1;
                    println!("crash {kind} {name} ... FAILED: {why}");
                }
            }
        }
    }
    println!("crash: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
