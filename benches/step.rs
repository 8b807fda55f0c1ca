//! Criterion benchmarks of the network's hot paths, at the shapes of the peers harness
//! (`shared/peers`), each beside its GEMM-only floor.
//!
//! Four groups over the same shapes, ids `GROUP/DTYPE/DxHxK/N=n`:
//!
//! - `step`: one full training step, `net.train_step(x, y, &Mse, 1e-3)`: forward, MSE loss and
//!   its gradient, backward fused with the SGD update. The batch is fixed; the parameters move
//!   on from one iteration to the next, as in training.
//! - `gemm_only`: only the five GEMMs of a step (X·W1, H1·W2, dŷ·W2ᵀ, H1ᵀ·dŷ, Xᵀ·dY1), each one
//!   `cblas_?gemm` call with α = 1, β = 0 on buffers allocated once, as the harness's
//!   `gemm-bound`: the floor any CBLAS-based step can reach at that shape. `step / gemm_only`
//!   is the cost of everything else (bias, ReLU, loss, reductions, updates, checks).
//! - `forward`: inference, `net.forward(x)`.
//! - `forward_gemm_only`: the two GEMMs of a forward pass (X·W1, H1·W2) alone, its floor.
//!
//! The run goes shape by shape: at each shape and dtype, `step`, `gemm_only`, `forward` and
//! `forward_gemm_only` run back to back, so that a path and its floor see the same machine
//! (on a shared host, the same code measured minutes apart can differ by ±30%). After
//! Criterion's summary, two tables on stdout give, for every shape measured in this run, the
//! medians of `step` and `gemm_only` and their ratio against the target of issue #16 (✓/✗,
//! shown, not enforced; "—" where the issue sets none), then the same for `forward` and
//! `forward_gemm_only`, without targets. The medians are Criterion's own, read back from
//! `<criterion home>/GROUP/DTYPE_DxHxK/N=n/new/estimates.json` when this run wrote them (not
//! under `--test`, `--discard-baseline` or `--load-baseline`); the middle value of
//! Criterion's `time: [..]` line is the slope or the mean instead, which a few slow samples
//! on a shared host can move far from the median.
//!
//! Shapes: tiny 3x4x2 at N = 1, 2, 8, 64, 1024, 16384; MNIST-sized 784x256x10 at N = 1, 32,
//! 256, 2048; wide 1024x4096x1024 at N = 64, 512, 2048 (f32 only: ≈ 86 GFLOP per step at
//! N = 2048). Every shape runs in f32 and f64 unless noted; the peers harness's shapes are
//! f64 2x3x4x2, f32 64/1024/16384x3x4x2, f32 1/32/256/2048x784x256x10 and f32
//! 64/512/2048x1024x4096x1024 (NxDxHxK). Data: X, y ~ N(0, 1) and a He-initialized network
//! from a fixed seed, built once per benchmark, outside the timing. Throughput is N samples
//! per iteration, so the report shows samples/s too.
//!
//! OpenBLAS runs with its default thread count (`OPENBLAS_NUM_THREADS`, else one per core),
//! printed on stderr at the start.
//!
//! The filter is a regex on the id:
//!
//! ```text
//! cargo bench --bench step                                  # everything, ≈ 10 minutes on 2 cores
//! cargo bench --bench step -- '^(step|gemm_only)/'          # steps and their floors only
//! cargo bench --bench step -- '^gemm_only/'                 # one group
//! cargo bench --bench step -- '/f32/784x256x10/'            # one shape family, all four groups
//! cargo bench --bench step -- '^(step|gemm_only)/f64/3x4x2/N=2$'  # one shape: step and floor
//! cargo bench --bench step -- '/3x4x2/N=(64|16384)$'        # two batch sizes, both dtypes
//! cargo bench --bench step -- --test                        # smoke test: each benchmark once
//! ```

use std::env;
use std::fs;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use two_layer_net::{Mse, Scalar};

mod common;
use common::{Cblas, Gemms, Shape, problem};

/// A layer family: D, H, K, the batch sizes, and whether f64 runs too.
struct Family {
    d: usize,
    h: usize,
    k: usize,
    ns: &'static [usize],
    f64: bool,
}

const FAMILIES: [Family; 3] = [
    Family { d: 3, h: 4, k: 2, ns: &[1, 2, 8, 64, 1024, 16384], f64: true },
    Family { d: 784, h: 256, k: 10, ns: &[1, 32, 256, 2048], f64: true },
    Family { d: 1024, h: 4096, k: 1024, ns: &[64, 512, 2048], f64: false },
];

/// Registers one benchmark of a group at one shape (its id already chosen); returns whether it
/// ran (matched the filter and was not only listed).
type Bench = fn(&mut BenchmarkGroup<'_, WallTime>, BenchmarkId, Shape) -> bool;

/// A path and its floor: their groups, the work of one iteration, and the benchmarks per dtype.
struct Pair {
    groups: [&'static str; 2],
    flops: fn(Shape) -> f64,
    f32: [Bench; 2],
    f64: [Bench; 2],
}

/// `step` beside `gemm_only` (the first, with the issue's targets), `forward` beside
/// `forward_gemm_only`.
const PAIRS: [Pair; 2] = [
    Pair {
        groups: ["step", "gemm_only"],
        flops: step_flops,
        f32: [step::<f32>, gemm_only::<f32>],
        f64: [step::<f64>, gemm_only::<f64>],
    },
    Pair {
        groups: ["forward", "forward_gemm_only"],
        flops: forward_flops,
        f32: [forward::<f32>, forward_gemm_only::<f32>],
        f64: [forward::<f64>, forward_gemm_only::<f64>],
    },
];

/// Sets the sampling of a benchmark of `flops` per iteration, so that the whole run takes
/// about 10 minutes on 2 cores: 50 samples in 3 s below 0.1 GFLOP, 20 samples in 4 s below
/// 10 GFLOP, and 10 flat samples (one iteration each at ≈ 1 s) in 12 s above.
fn sampling(g: &mut BenchmarkGroup<'_, WallTime>, flops: f64, n: usize) {
    let (samples, warm_up, measure, mode) = match flops {
        f if f < 1e8 => (50, 0.5, 3.0, SamplingMode::Auto),
        f if f < 1e10 => (20, 1.0, 4.0, SamplingMode::Auto),
        _ => (10, 1.0, 12.0, SamplingMode::Flat),
    };
    g.sample_size(samples)
        .warm_up_time(Duration::from_secs_f64(warm_up))
        .measurement_time(Duration::from_secs_f64(measure))
        .sampling_mode(mode)
        .throughput(Throughput::Elements(n as u64));
}

/// Floating-point operations of the five GEMMs of a step: `2N·(2·D·H + 3·H·K)`.
fn step_flops(s: Shape) -> f64 {
    2.0 * s.n as f64 * (2 * s.d * s.h + 3 * s.h * s.k) as f64
}

/// Floating-point operations of the two GEMMs of a forward pass: `2N·(D·H + H·K)`.
fn forward_flops(s: Shape) -> f64 {
    2.0 * s.n as f64 * (s.d * s.h + s.h * s.k) as f64
}

// Each benchmark builds its problem on first use, so that a filtered-out benchmark builds
// nothing; a built problem is how it tells that it ran.

/// Times `net.train_step(x, y, &Mse, 1e-3)`.
fn step<F: Scalar>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) -> bool {
    let mut state = None;
    g.bench_function(id, |b| {
        let (net, x, y) = state.get_or_insert_with(|| problem::<F>(s));
        let lr = F::cast(1e-3);
        b.iter(|| net.train_step(x.view(), y.view(), &Mse, lr).expect("finite loss"));
    });
    state.is_some()
}

/// Times `net.forward(x)`.
fn forward<F: Scalar>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) -> bool {
    let mut state = None;
    g.bench_function(id, |b| {
        let (net, x, _) = state.get_or_insert_with(|| problem::<F>(s));
        b.iter(|| {
            black_box(net.forward(x.view()).expect("valid batch"));
        });
    });
    state.is_some()
}

/// Times the five GEMMs of a step, [`Gemms::run`].
fn gemm_only<F: Cblas>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) -> bool {
    let mut state = None;
    g.bench_function(id, |b| {
        let gemms = state.get_or_insert_with(|| Gemms::<F>::new(s));
        b.iter(|| gemms.run());
    });
    state.is_some()
}

/// Times the two GEMMs of a forward pass, [`Gemms::run_forward`]: the floor of `forward`.
fn forward_gemm_only<F: Cblas>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) -> bool {
    let mut state = None;
    g.bench_function(id, |b| {
        let gemms = state.get_or_insert_with(|| Gemms::<F>::new(s));
        b.iter(|| gemms.run_forward());
    });
    state.is_some()
}

fn main() {
    eprintln!("benches/step: BLAS {}", two_layer_net::blas_info());
    let home = criterion_home();
    let mut c = Criterion::default().configure_from_args();
    let mut rows = Vec::new();
    for fam in &FAMILIES {
        for &n in fam.ns {
            let s = Shape { n, d: fam.d, h: fam.h, k: fam.k };
            let dtypes: &[&str] = if fam.f64 { &["f32", "f64"] } else { &["f32"] };
            for &dtype in dtypes {
                for (pair, p) in PAIRS.iter().enumerate() {
                    let benches = if dtype == "f32" { p.f32 } else { p.f64 };
                    let flops = (p.flops)(s);
                    let [subject, floor] =
                        [0, 1].map(|i| bench(&mut c, &home, p.groups[i], dtype, s, flops, benches[i]));
                    rows.push(Row { pair, dtype, s, subject, floor });
                }
            }
        }
    }
    c.final_summary();
    print_ratios(&rows);
}

/// The issue's targets for `step / gemm_only` (#16), at the peers harness's shapes and dtypes:
/// `(dtype, [D, H, K], Ns, the largest ratio)`. Other shapes have none.
const TARGETS: [(&str, [usize; 3], &[usize], f64); 5] = [
    ("f64", [3, 4, 2], &[2], 1.5),
    ("f32", [3, 4, 2], &[64], 1.5),
    ("f32", [3, 4, 2], &[1024, 16384], 1.25),
    ("f32", [784, 256, 10], &[32, 256, 2048], 1.05),
    ("f32", [1024, 4096, 1024], &[512], 1.05),
];

/// The target ratio of `step / gemm_only` at `dtype`, `s`, if the issue sets one.
fn target(dtype: &str, s: Shape) -> Option<f64> {
    TARGETS
        .iter()
        .find(|(t, dhk, ns, _)| *t == dtype && *dhk == [s.d, s.h, s.k] && ns.contains(&s.n))
        .map(|t| t.3)
}

/// A path and its floor at one shape and dtype, as registered in this process.
struct Row {
    /// Index in [`PAIRS`].
    pair: usize,
    dtype: &'static str,
    s: Shape,
    subject: Registered,
    floor: Registered,
}

/// One benchmark registered in this process: the `estimates.json` Criterion writes for it, that
/// file's modification time before the benchmark ran, and whether the benchmark ran (matched
/// the filter, in any mode but `--list`).
struct Registered {
    estimates: PathBuf,
    before: Option<SystemTime>,
    ran: bool,
}

impl Registered {
    /// The median time of one iteration, in ns, that Criterion measured and saved in this
    /// process; `None` when it saved nothing here (`--test`, `--profile-time`,
    /// `--discard-baseline`, `--load-baseline`, cargo-criterion) or the benchmark did not run,
    /// so that an earlier run's file is never read as this run's.
    fn median_ns(&self) -> Option<f64> {
        let modified = modified(&self.estimates)?;
        if !self.ran || Some(modified) == self.before {
            return None;
        }
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&self.estimates).ok()?).ok()?;
        json["median"]["point_estimate"].as_f64()
    }
}

/// When `path` was last written, if it exists.
fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Registers one benchmark, `group/dtype/DxHxK/N=n`, in a group of its own (Criterion ids are
/// `group/function/value`; a group holds no state but its sampling, so opening `step` once per
/// shape gives the same ids as one `step` group over every shape).
fn bench(
    c: &mut Criterion,
    home: &Path,
    group: &str,
    dtype: &str,
    s: Shape,
    flops: f64,
    f: Bench,
) -> Registered {
    let function = format!("{dtype}/{}x{}x{}", s.d, s.h, s.k);
    let value = format!("N={}", s.n);
    let estimates = home
        .join(group)
        .join(filename_safe(&function))
        .join(filename_safe(&value))
        .join("new/estimates.json");
    let before = modified(&estimates);
    let mut g = c.benchmark_group(group);
    sampling(&mut g, flops, s.n);
    let ran = f(&mut g, BenchmarkId::new(function, value), s);
    g.finish();
    Registered { estimates, before, ran }
}

/// A directory name as Criterion 0.8 makes it from an id's part (`report::make_filename_safe`;
/// the ids here are short ASCII, never truncated).
fn filename_safe(part: &str) -> String {
    let safe = part.replace(['?', '"', '/', '\\', '*', '<', '>', ':', '|', '^'], "_");
    if cfg!(windows) { safe.to_lowercase() } else { safe }
}

/// Where Criterion saves its results, found as Criterion 0.8 finds it: `$CRITERION_HOME`, else
/// `criterion/` in the target directory (`$CARGO_TARGET_DIR`, else `cargo metadata`'s), else
/// `target/criterion`.
fn criterion_home() -> PathBuf {
    if let Some(home) = env::var_os("CRITERION_HOME") {
        return home.into();
    }
    let metadata = || {
        let out = Command::new(env::var_os("CARGO")?)
            .args(["metadata", "--format-version", "1", "--no-deps"])
            .stderr(Stdio::null())
            .output()
            .ok()?;
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        json["target_directory"].as_str().map(PathBuf::from)
    };
    env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(metadata)
        .unwrap_or_else(|| "target".into())
        .join("criterion")
}

/// Prints, for each pair, a table of the shapes with a median measured in this process: the
/// two medians, their ratio and, for `step`, the issue's target. Nothing when no benchmark ran
/// (`--list`, a filter matching none); one line when some ran but none was measured (`--test`).
fn print_ratios(rows: &[Row]) {
    let ran = rows.iter().any(|r| r.subject.ran || r.floor.ran);
    let mut measured = false;
    for (pair, p) in PAIRS.iter().enumerate() {
        let lines: Vec<_> = rows
            .iter()
            .filter(|r| r.pair == pair)
            .map(|r| (r, r.subject.median_ns(), r.floor.median_ns()))
            .filter(|(_, a, b)| a.is_some() || b.is_some())
            .collect();
        if lines.is_empty() {
            continue;
        }
        measured = true;
        let [subject, floor] = p.groups;
        println!("{subject} / {floor}: Criterion medians of this run");
        let targets = pair == 0;
        let (w1, w2) = (subject.len().max(11), floor.len().max(11));
        let head = format!("{:<24} {subject:>w1$} {floor:>w2$} {:>9}", "dtype/DxHxK/N", "ratio");
        println!("{head}{}", if targets { "  target" } else { "" });
        let or_dash = |v: Option<String>| v.unwrap_or_else(|| "—".into());
        for (r, a, b) in lines {
            let ratio = a.zip(b).map(|(a, b)| a / b);
            let line = format!(
                "{:<24} {:>w1$} {:>w2$} {:>9}",
                format!("{}/{}x{}x{}/N={}", r.dtype, r.s.d, r.s.h, r.s.k, r.s.n),
                or_dash(a.map(time)),
                or_dash(b.map(time)),
                or_dash(ratio.map(|q| format!("{q:.3}"))),
            );
            if !targets {
                println!("{line}");
                continue;
            }
            let mark = match (target(r.dtype, r.s), ratio) {
                (None, _) => "—".to_string(),
                (Some(t), None) => format!("≤ {t:.2}"),
                (Some(t), Some(q)) => format!("≤ {t:.2} {}", if q <= t { '✓' } else { '✗' }),
            };
            println!("{line}  {mark}");
        }
        println!();
    }
    if ran && !measured {
        println!("benches/step: no medians saved in this run (--test?), no step/floor table");
    }
}

/// `ns` in ns, µs, ms or s, four significant digits.
fn time(ns: f64) -> String {
    let (v, unit) = match ns {
        ns if ns < 1e3 => (ns, "ns"),
        ns if ns < 1e6 => (ns / 1e3, "µs"),
        ns if ns < 1e9 => (ns / 1e6, "ms"),
        ns => (ns / 1e9, "s"),
    };
    let decimals = 3 - (v >= 10.0) as usize - (v >= 100.0) as usize;
    format!("{v:.decimals$} {unit}")
}
