//! Inference from one shared `&TwoLayerNet` on two threads, each with its own `Scratch`,
//! against one thread, at 784→256→10 with batches of 32 (f32): the target is ≥ 1.8× the
//! one-thread throughput with OpenBLAS at one thread. A third case runs the two threads with
//! OpenBLAS at two threads, to show what its process-wide pool does under user threads.
//!
//! Each iteration forwards `CALLS` batches per thread; the one-thread case forwards as many
//! batches in all, so every case's throughput (rows/s) compares directly.
//!
//! ```text
//! cargo bench --bench shared_inference
//! cargo bench --bench shared_inference -- --test   # smoke test
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use two_layer_net::ndarray::Array2;
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{Init, Scratch, TwoLayerNet, set_num_threads};

const D: usize = 784;
const H: usize = 256;
const K: usize = 10;
const N: usize = 32;
/// Batches each thread forwards per iteration: enough (≈ 12 ms) that starting the threads
/// and the one that finishes last do not weigh on a sample.
const CALLS: u64 = 64;

/// `threads` threads, each forwarding `calls` batches per iteration through `net`; the wall
/// time of `iters` iterations.
fn run(net: &TwoLayerNet<f32>, x: &Array2<f32>, threads: usize, calls: u64, iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut scratch = Scratch::new();
                for _ in 0..iters * calls {
                    black_box(net.forward_with(x.view(), &mut scratch).unwrap());
                }
            });
        }
    });
    start.elapsed()
}

fn shared_inference(c: &mut Criterion) {
    eprintln!("benches/shared_inference: BLAS {}", two_layer_net::blas_info());
    let net = TwoLayerNet::<f32>::with_init(D, H, K, Init::He, &mut StdRng::seed_from_u64(0)).unwrap();
    let x = Array2::from_shape_fn((N, D), |(i, j)| ((i * 31 + j * 7) % 17) as f32 / 17.0 - 0.5);
    let mut group = c.benchmark_group(format!("shared_inference/{D}x{H}x{K}/N={N}"));
    group.sampling_mode(SamplingMode::Flat).sample_size(20);
    group.throughput(Throughput::Elements(2 * CALLS * N as u64));
    for (name, threads, calls, openblas) in [
        ("1 thread", 1, 2 * CALLS, 1),
        ("2 threads", 2, CALLS, 1),
        ("2 threads, OpenBLAS 2 threads", 2, CALLS, 2),
    ] {
        group.bench_function(name, |b| {
            set_num_threads(openblas);
            b.iter_custom(|iters| run(&net, &x, threads, calls, iters));
        });
    }
    group.finish();
    set_num_threads(1);
}

criterion_group!(benches, shared_inference);
criterion_main!(benches);
