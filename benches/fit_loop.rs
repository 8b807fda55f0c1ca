//! The training loop's own cost: one `fit` epoch on MNIST-shaped data (60 000 × 784 → 256 →
//! 10, f32, synthetic, shuffled, SGD) against the same steps called directly on batches
//! gathered beforehand in the same order. The difference is the loop: the shuffle, copying
//! each batch's rows, the per-step bookkeeping and the report (no validation). Target: ≤ 3%.
//!
//! Criterion's two groups run one after the other, and on a shared machine their intervals
//! overlapped; so a closing table times the two interleaved (a `fit` epoch, then the same
//! steps alone, in turn, `ROUNDS` times in one process, as `benches/forward_ratio.rs` does)
//! and prints the median ratio with its spread (min, quartiles, max of the per-round ratios).
//!
//! ```text
//! cargo bench --bench fit_loop                  # about four minutes
//! cargo bench --bench fit_loop -- --interleaved # the interleaved table only
//! cargo bench --bench fit_loop -- --test        # smoke test: one epoch of each
//! ```

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::Instant;

use criterion::{Criterion, SamplingMode, Throughput};
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

/// Interleaved rounds per batch size for the closing table.
const ROUNDS: usize = 15;

/// One `fit` epoch and the same steps on pre-gathered batches, in turn, `rounds` times per
/// batch size; the per-round ratios' median and spread.
fn interleaved(rounds: usize) {
    let x = Array2::from_shape_fn((N, D), |(i, j)| ((i * 31 + j * 7) % 255) as f32 / 255.0);
    let labels = Array1::from_shape_fn(N, |i| (i * 7) % K);
    let net0 = TwoLayerNet::<f32>::with_init(D, H, K, Init::He, &mut StdRng::seed_from_u64(0)).unwrap();
    println!("\nfit epoch / the same steps alone, interleaved, {N}x{D}x{H}x{K} f32, SGD, {rounds} rounds");
    println!("{:>6} {:>10} {:>10} {:>8}  ratio min / q1 / q3 / max", "batch", "fit ms", "steps ms", "median");
    for batch in [32, 256] {
        let fit = Fit { epochs: 1, batch_size: batch, shuffle: true, seed: 1, progress: Progress::Off };
        let mut order: Vec<usize> = (0..N).collect();
        order.shuffle(&mut StdRng::seed_from_u64(1));
        let batches: Vec<(Array2<f32>, Array1<usize>)> =
            order.chunks(batch).map(|idx| (x.select(Axis(0), idx), labels.select(Axis(0), idx))).collect();
        let (mut a, mut b) = (net0.clone(), net0.clone());
        let (mut fits, mut steps, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        // One round of each first, to warm up.
        for round in 0..=rounds {
            let t = Instant::now();
            let mut trainer = Trainer::new(fit.clone());
            let sgd = &mut Sgd::new(1e-3);
            let step = |_: two_layer_net::EpochEnd<'_, f32, _, _>| ControlFlow::Continue(());
            black_box(
                trainer.fit(&mut a, x.view(), labels.view(), None, &SoftmaxCrossEntropy, sgd, step).unwrap(),
            );
            let tf = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            for (xb, yb) in &batches {
                black_box(b.train_step(xb.view(), yb.view(), &SoftmaxCrossEntropy, 1e-3).unwrap());
            }
            let ts = t.elapsed().as_secs_f64() * 1e3;
            if round > 0 {
                fits.push(tf);
                steps.push(ts);
                ratios.push(tf / ts);
            }
        }
        let q = |v: &mut Vec<f64>, f: f64| {
            v.sort_by(f64::total_cmp);
            v[((v.len() - 1) as f64 * f).round() as usize]
        };
        let (f, s) = (q(&mut fits, 0.5), q(&mut steps, 0.5));
        println!(
            "{batch:>6} {f:>10.1} {s:>10.1} {:>8.3}  {:.3} / {:.3} / {:.3} / {:.3}",
            q(&mut ratios, 0.5),
            q(&mut ratios, 0.0),
            q(&mut ratios, 0.25),
            q(&mut ratios, 0.75),
            q(&mut ratios, 1.0)
        );
    }
}

fn main() {
    eprintln!("benches/fit_loop: BLAS {}", two_layer_net::blas_info());
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test");
    if !args.iter().any(|a| a == "--interleaved") {
        let mut c = Criterion::default().configure_from_args();
        fit_loop(&mut c);
        c.final_summary();
    }
    interleaved(if smoke { 1 } else { ROUNDS });
}
