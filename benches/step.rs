//! Criterion benchmarks of the network's hot paths, at the shapes of the peers harness
//! (`shared/peers`).
//!
//! Four groups, each over the same shapes, ids `GROUP/DTYPE/DxHxK/N=n`:
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
//! Shapes: tiny 3x4x2 at N = 1, 2, 8, 64, 1024, 16384; MNIST-sized 784x256x10 at N = 1, 32,
//! 256, 2048; wide 1024x4096x1024 at N = 64, 512, 2048 (f32 only: ≈ 86 GFLOP per step at
//! N = 2048). Every shape runs in f32 and f64 unless noted. Data: X, y ~ N(0, 1) and a
//! He-initialized network from a fixed seed, built once per benchmark, outside the timing.
//! Throughput is N samples per iteration, so the report shows samples/s too.
//!
//! OpenBLAS runs with its default thread count (`OPENBLAS_NUM_THREADS`, else one per core),
//! printed on stderr at the start.
//!
//! ```text
//! cargo bench --bench step                              # everything, ≈ 10 minutes on 2 cores
//! cargo bench --bench step -- gemm_only                 # one group
//! cargo bench --bench step -- 'step/f32/784x256x10/'    # one shape family
//! cargo bench --bench step -- --test                    # smoke test: each benchmark once
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use two_layer_net::{Mse, Scalar, num_threads, openblas_config};

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

/// Registers one benchmark of a group at one shape (its id already chosen).
type Bench = fn(&mut BenchmarkGroup<'_, WallTime>, BenchmarkId, Shape);

/// Benchmarks `name` at every shape, `bench_f32` / `bench_f64` per dtype. `flops(s)` is the
/// work of one iteration; it picks the sampling, so that the whole run takes about 8 minutes
/// on 2 cores: 50 samples in 3 s below 0.1 GFLOP, 20 samples in 4 s below 10 GFLOP, and 10
/// flat samples (one iteration each at ≈ 1 s) in 12 s above.
fn run_group(c: &mut Criterion, name: &str, flops: fn(Shape) -> f64, bench_f32: Bench, bench_f64: Bench) {
    let mut g = c.benchmark_group(name);
    for fam in &FAMILIES {
        for &n in fam.ns {
            let s = Shape { n, d: fam.d, h: fam.h, k: fam.k };
            let (samples, warm_up, measure, mode) = match flops(s) {
                f if f < 1e8 => (50, 0.5, 3.0, SamplingMode::Auto),
                f if f < 1e10 => (20, 1.0, 4.0, SamplingMode::Auto),
                _ => (10, 1.0, 12.0, SamplingMode::Flat),
            };
            g.sample_size(samples)
                .warm_up_time(Duration::from_secs_f64(warm_up))
                .measurement_time(Duration::from_secs_f64(measure))
                .sampling_mode(mode)
                .throughput(Throughput::Elements(n as u64));
            let id =
                |dtype: &str| BenchmarkId::new(format!("{dtype}/{}x{}x{}", s.d, s.h, s.k), format!("N={n}"));
            bench_f32(&mut g, id("f32"), s);
            if fam.f64 {
                bench_f64(&mut g, id("f64"), s);
            }
        }
    }
    g.finish();
}

/// Floating-point operations of the five GEMMs of a step: `2N·(2·D·H + 3·H·K)`.
fn step_flops(s: Shape) -> f64 {
    2.0 * s.n as f64 * (2 * s.d * s.h + 3 * s.h * s.k) as f64
}

/// Floating-point operations of the two GEMMs of a forward pass: `2N·(D·H + H·K)`.
fn forward_flops(s: Shape) -> f64 {
    2.0 * s.n as f64 * (s.d * s.h + s.h * s.k) as f64
}

/// Times `net.train_step(x, y, &Mse, 1e-3)`.
fn step<F: Scalar>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) {
    // Built on first use, so that a filtered-out benchmark builds nothing.
    let mut state = None;
    g.bench_function(id, |b| {
        let (net, x, y) = state.get_or_insert_with(|| problem::<F>(s));
        let lr = F::cast(1e-3);
        b.iter(|| net.train_step(x.view(), y.view(), &Mse, lr).expect("finite loss"));
    });
}

/// Times `net.forward(x)`.
fn forward<F: Scalar>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) {
    let mut state = None;
    g.bench_function(id, |b| {
        let (net, x, _) = state.get_or_insert_with(|| problem::<F>(s));
        b.iter(|| {
            black_box(net.forward(x.view()).expect("valid batch"));
        });
    });
}

/// Times the five GEMMs of a step, [`Gemms::run`].
fn gemm_only<F: Cblas>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) {
    let mut state = None;
    g.bench_function(id, |b| {
        let gemms = state.get_or_insert_with(|| Gemms::<F>::new(s));
        b.iter(|| gemms.run());
    });
}

/// Times the two GEMMs of a forward pass, [`Gemms::run_forward`]: the floor of `forward`.
fn forward_gemm_only<F: Cblas>(g: &mut BenchmarkGroup<'_, WallTime>, id: BenchmarkId, s: Shape) {
    let mut state = None;
    g.bench_function(id, |b| {
        let gemms = state.get_or_insert_with(|| Gemms::<F>::new(s));
        b.iter(|| gemms.run_forward());
    });
}

fn main() {
    eprintln!("benches/step: {}, {} threads", openblas_config(), num_threads());
    let mut c = Criterion::default().configure_from_args();
    run_group(&mut c, "step", step_flops, step::<f32>, step::<f64>);
    run_group(&mut c, "gemm_only", step_flops, gemm_only::<f32>, gemm_only::<f64>);
    run_group(&mut c, "forward", forward_flops, forward::<f32>, forward::<f64>);
    run_group(&mut c, "forward_gemm_only", forward_flops, forward_gemm_only::<f32>, forward_gemm_only::<f64>);
    c.final_summary();
}
