//! Times one SGD training step (`TwoLayerNet::train_step`) the way the peers harness
//! (`shared/peers`) times every implementation, and prints its JSON line.
//!
//! ```text
//! cargo build --release --example step_timing
//! target/release/examples/step_timing --impl project --dtype {f32,f64} --n N --d D --h H --k K \
//!     [--steps S] [--repeats R] [--threads T] [--seed SEED] [--verbose]
//! ```
//!
//! The problem is the harness's: X (N×D) and y (N×K) ~ N(0, 1), fixed for every step;
//! W1 ~ N(0, 1)·√(2/D), W2 ~ N(0, 1)·√(2/H), b1 = b2 = 0; all drawn in f64 from one
//! SplitMix64/Box–Muller stream seeded with `--seed` (order X, y, W1, W2), then cast `as f32`
//! for f32. The network is built with `TwoLayerNet::from_params` and trained with MSE, ReLU and
//! plain SGD at lr = 1e-3, one `train_step` per step, as a user's training loop would.
//!
//! What is timed: a loop of `train_step` calls (forward, loss, backward, update, and the
//! check of each call's `Result`), nothing else. After one first step, warm-up batches of
//! 1, 2, 4, … steps run until one batch takes ≥ 80 ms or the warm-up ≥ 0.4 s; the last batch
//! gives the per-step estimate that sets S (default: a repeat of about 0.3 s). Then R repeats
//! (default 7) of S steps are each timed as a whole, and one line goes to stdout:
//!
//! ```text
//! {"impl":"project","dtype":"f32","N":64,"D":3,"H":4,"K":2,"threads":2,"steps":123456,"repeats":7,
//!  "ns_per_step_median":2431.0,"ns_per_step_min":2398.2,"version":"two-layer-net 0.1.0 (OpenBLAS 0.3.21 Haswell)"}
//! ```
//!
//! `--impl` is accepted and ignored (the line always says `project`); `--threads T` (default 2)
//! sets the OpenBLAS thread count. Bad arguments or a failed step: a message on stderr, exit 2.

use std::hint::black_box;
use std::process::ExitCode;
use std::time::Instant;

use two_layer_net::ndarray::{Array1, Array2, ArrayView2};
use two_layer_net::{Mse, Scalar, TwoLayerNet, openblas_config, set_num_threads};

const USAGE: &str = "usage: step_timing --impl NAME --dtype {f32,f64} --n N --d D --h H --k K \
                     [--steps S] [--repeats R] [--threads T] [--seed SEED] [--verbose]";

/// The learning rate of every step.
const LR: f64 = 1e-3;

/// The command line, validated.
struct Args {
    f64: bool,
    n: usize,
    d: usize,
    h: usize,
    k: usize,
    steps: Option<u64>,
    repeats: usize,
    threads: usize,
    seed: u64,
    verbose: bool,
}

fn parse_args(argv: &[String]) -> Result<Args, String> {
    fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
        v.parse().map_err(|_| format!("bad value {v:?} for {flag}"))
    }
    let (mut dtype, mut n, mut d, mut h, mut k) = (None, None, None, None, None);
    let (mut steps, mut repeats, mut threads, mut seed, mut verbose) = (None, 7, 2, 0, false);
    let mut it = argv.iter();
    while let Some(flag) = it.next() {
        let flag = flag.as_str();
        if flag == "--verbose" {
            verbose = true;
            continue;
        }
        let v = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag {
            "--impl" => {}
            "--dtype" => {
                dtype = Some(match v.as_str() {
                    "f32" => false,
                    "f64" => true,
                    _ => return Err(format!("unknown dtype {v:?} (want f32 or f64)")),
                })
            }
            "--n" => n = Some(num(flag, v)?),
            "--d" => d = Some(num(flag, v)?),
            "--h" => h = Some(num(flag, v)?),
            "--k" => k = Some(num(flag, v)?),
            "--steps" => steps = Some(num(flag, v)?),
            "--repeats" => repeats = num(flag, v)?,
            "--threads" => threads = num(flag, v)?,
            "--seed" => seed = num(flag, v)?,
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    let f64 = dtype.ok_or("--dtype is required")?;
    let (Some(n), Some(d), Some(h), Some(k)) = (n, d, h, k) else {
        return Err("--n --d --h --k are required".into());
    };
    if [n, d, h, k, repeats, threads].contains(&0) || steps == Some(0) {
        return Err("--n --d --h --k --steps --repeats --threads must be positive".into());
    }
    Ok(Args { f64, n, d, h, k, steps, repeats, threads, seed, verbose })
}

/// The harness's generator (`shared/peers/rust/src/rng.rs`): SplitMix64, and Box–Muller with
/// one normal per pair of uniforms, so every implementation starts from identical numbers.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal.
    fn normal(&mut self) -> f64 {
        let u1 = self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A `rows × cols` matrix of N(0, 1)·`scale`, drawn row-major in f64, then cast to `F`.
    fn normal_matrix<F: Scalar>(&mut self, rows: usize, cols: usize, scale: f64) -> Array2<F> {
        let v = (0..rows * cols).map(|_| F::cast(self.normal() * scale)).collect();
        Array2::from_shape_vec((rows, cols), v).expect("rows·cols elements")
    }
}

/// Runs `steps` training steps; returns their wall time in seconds and the last loss.
fn run_steps<F: Scalar>(
    net: &mut TwoLayerNet<F>,
    x: ArrayView2<'_, F>,
    y: ArrayView2<'_, F>,
    steps: u64,
) -> Result<(f64, F), two_layer_net::Error> {
    let lr = F::cast(LR);
    let t0 = Instant::now();
    let mut loss = F::zero();
    for _ in 0..steps {
        loss = black_box(net.train_step(x, y, &Mse, lr)?);
    }
    Ok((t0.elapsed().as_secs_f64(), loss))
}

/// Median and minimum nanoseconds per step over the timed repeats.
struct Timing {
    steps: u64,
    median: f64,
    min: f64,
}

fn time_step<F: Scalar>(a: &Args) -> Result<Timing, String> {
    let mut rng = Rng(a.seed);
    let x = rng.normal_matrix::<F>(a.n, a.d, 1.0);
    let y = rng.normal_matrix::<F>(a.n, a.k, 1.0);
    let w1 = rng.normal_matrix::<F>(a.d, a.h, (2.0 / a.d as f64).sqrt());
    let w2 = rng.normal_matrix::<F>(a.h, a.k, (2.0 / a.h as f64).sqrt());
    let (b1, b2) = (Array1::<F>::zeros(a.h), Array1::<F>::zeros(a.k));
    let mut net = TwoLayerNet::<F>::from_params(w1.view(), b1.view(), w2.view(), b2.view())
        .map_err(|e| format!("building the network: {e}"))?;
    let mut run = |steps| run_steps(&mut net, x.view(), y.view(), steps).map_err(|e| format!("step: {e}"));

    // Warm-up, doubling as calibration: the last batch gives the per-step estimate.
    let (t_first, first_loss) = run(1)?;
    let (mut warm, mut batch) = (t_first, 1u64);
    let per_step = loop {
        let (t, _) = run(batch)?;
        warm += t;
        if t >= 0.08 || warm >= 0.4 {
            break t / batch as f64;
        }
        batch *= 2;
    };
    let steps = a.steps.unwrap_or_else(|| ((0.3 / per_step).round() as u64).clamp(1, 1 << 40));

    let mut ns = Vec::with_capacity(a.repeats);
    let mut last_loss = first_loss;
    for _ in 0..a.repeats {
        let (t, loss) = run(steps)?;
        ns.push(t * 1e9 / steps as f64);
        last_loss = loss;
    }
    ns.sort_by(f64::total_cmp);
    let r = ns.len();
    let median = if r % 2 == 1 { ns[r / 2] } else { 0.5 * (ns[r / 2 - 1] + ns[r / 2]) };
    if a.verbose {
        eprintln!(
            "step_timing: {} first step {:.3} ms, warm-up {warm:.3} s, sorted ns/step {:?}, loss first {:e} last {:e}",
            F::NAME,
            t_first * 1e3,
            ns.iter().map(|v| v.round()).collect::<Vec<_>>(),
            first_loss.as_f64(),
            last_loss.as_f64(),
        );
    }
    Ok(Timing { steps, median, min: ns[0] })
}

/// `"OpenBLAS 0.3.21 Haswell"` from OpenBLAS's configuration string
/// (`"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Haswell MAX_THREADS=64"`): the version, and the
/// core name, which OpenBLAS writes last before the thread limit. The harness builds the
/// same string from `openblas_get_config` and `openblas_get_corename`.
fn openblas_short(config: &str) -> String {
    let words: Vec<&str> = config.split_whitespace().collect();
    let version = words.iter().take(2).copied().collect::<Vec<_>>().join(" ");
    let core =
        words.iter().skip(2).rev().find(|w| !w.starts_with("MAX_THREADS=") && **w != "SINGLE_THREADED");
    match core {
        Some(core) => format!("{version} {core}"),
        None => version,
    }
}

/// `s` as a JSON string literal.
fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.iter().any(|a| a == "--help" || a == "-h") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let a = match parse_args(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("step_timing: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    set_num_threads(a.threads);
    // What runs, on stderr: stdout is the harness's one JSON line.
    eprintln!("step_timing: BLAS {}", two_layer_net::blas_info());
    let timing = if a.f64 { time_step::<f64>(&a) } else { time_step::<f32>(&a) };
    let t = match timing {
        Ok(t) => t,
        Err(e) => {
            eprintln!("step_timing: {e}");
            return ExitCode::from(2);
        }
    };
    let version =
        format!("two-layer-net {} ({})", env!("CARGO_PKG_VERSION"), openblas_short(&openblas_config()));
    println!(
        "{{\"impl\":\"project\",\"dtype\":\"{}\",\"N\":{},\"D\":{},\"H\":{},\"K\":{},\"threads\":{},\"steps\":{},\"repeats\":{},\"ns_per_step_median\":{:.1},\"ns_per_step_min\":{:.1},\"version\":{}}}",
        if a.f64 { "f64" } else { "f32" },
        a.n,
        a.d,
        a.h,
        a.k,
        a.threads,
        t.steps,
        a.repeats,
        t.median,
        t.min,
        json_str(&version),
    );
    ExitCode::SUCCESS
}
