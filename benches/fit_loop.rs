//! The training loop's own cost: one `fit` epoch on MNIST-shaped data (60 000 × 784 → 256 →
//! 10, f32, synthetic, shuffled, SGD) against the same steps called directly on batches
//! gathered beforehand in the same order. The difference is the loop: the shuffle, copying
//! each batch's rows, the per-step bookkeeping and the report (no validation). Target: ≤ 3%.
//!
//! ```text
//! cargo bench --bench fit_loop              # about two minutes
//! cargo bench --bench fit_loop -- --test    # smoke test: one epoch of each
//! ```

use std::hint::black_box;
use std::ops::ControlFlow;

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use two_layer_net::ndarray::{Array1, Array2, Axis};
use two_layer_net::rand::seq::SliceRandom;
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{Fit, Init, Progress, Sgd, SoftmaxCrossEntropy, Trainer, TwoLayerNet};

const N: usize = 60_000;
const D: usize = 784;
const H: usize = 256;
const K: usize = 10;

fn fit_loop(c: &mut Criterion) {
    let x = Array2::from_shape_fn((N, D), |(i, j)| ((i * 31 + j * 7) % 255) as f32 / 255.0);
    let labels = Array1::from_shape_fn(N, |i| (i * 7) % K);
    let net0 = TwoLayerNet::<f32>::with_init(D, H, K, Init::He, &mut StdRng::seed_from_u64(0)).unwrap();
    for batch in [32, 256] {
        let mut group = c.benchmark_group(format!("fit_loop/{N}x{D}x{H}x{K}/batch={batch}"));
        group.sampling_mode(SamplingMode::Flat).sample_size(10).throughput(Throughput::Elements(N as u64));
        let fit = Fit { epochs: 1, batch_size: batch, shuffle: true, seed: 1, progress: Progress::Off };

        group.bench_function("fit epoch", |b| {
            let mut net = net0.clone();
            b.iter(|| {
                let mut trainer = Trainer::new(fit.clone());
                let step = |_: two_layer_net::EpochEnd<'_, f32, _, _>| ControlFlow::Continue(());
                black_box(
                    trainer
                        .fit(
                            &mut net,
                            x.view(),
                            labels.view(),
                            None,
                            &SoftmaxCrossEntropy,
                            &mut Sgd::new(1e-3),
                            step,
                        )
                        .unwrap(),
                );
            });
        });

        // The same steps on batches gathered beforehand (an epoch's shuffled order).
        let mut order: Vec<usize> = (0..N).collect();
        order.shuffle(&mut StdRng::seed_from_u64(1));
        let batches: Vec<(Array2<f32>, Array1<usize>)> =
            order.chunks(batch).map(|idx| (x.select(Axis(0), idx), labels.select(Axis(0), idx))).collect();
        group.bench_function("steps alone", |b| {
            let mut net = net0.clone();
            b.iter(|| {
                for (xb, yb) in &batches {
                    black_box(net.train_step(xb.view(), yb.view(), &SoftmaxCrossEntropy, 1e-3).unwrap());
                }
            });
        });
        group.finish();
    }
}

/// What runs, then the loop's benchmarks.
fn with_blas_info(c: &mut Criterion) {
    eprintln!("benches/fit_loop: BLAS {}", two_layer_net::blas_info());
    fit_loop(c);
}

criterion_group!(benches, with_blas_info);
criterion_main!(benches);
