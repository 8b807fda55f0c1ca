//! The optimizers' step against a plain, unchecked loop of the same rule (the speed of light
//! for the update on this machine): every optimizer at 4,810 parameters (the digits network,
//! 64→64→10), 200k and 4.2M (θ, g and the state streaming from memory), f32, one slot.
//!
//! Criterion times each pair; then a closing table times them again interleaved (step, loop,
//! step, loop, … in one process, as `benches/forward_ratio.rs` does, so that both see the
//! same machine) and prints the median ns per parameter of each and their ratio. Targets
//! (issue #22): ratio ≤ 1.3 at every size, and ≤ 1 ns per parameter at 4.8k and 200k.
//! The crate's loops run with AVX-512 or AVX2 where the CPU has them; the plain loops here
//! are built for the target (baseline x86-64 unless `RUSTFLAGS=-C target-cpu=…`).
//!
//! Two more interleaved tables follow: the two designs for an all-or-nothing step, modelled
//! on the plain Adam loop (a pre-pass bound, which the crate uses, or a rollback copy), and
//! a whole training step at the digits shape with Adam against SGD (target: ≤ 1.25×).
//!
//! ```text
//! cargo bench --bench optim                  # about five minutes
//! cargo bench --bench optim -- --table       # the closing table only
//! cargo bench --bench optim -- --test        # smoke test
//! ```

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput};
use two_layer_net::ndarray::{Array1, Array2};
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{Adam, AdamW, Init, Momentum, Optimizer, Sgd, Slot, SoftmaxCrossEntropy, TwoLayerNet};

/// Parameters per size: the digits network's 64·64 + 64 + 64·10 + 10, then larger.
const SIZES: [usize; 3] = [4_810, 200_000, 4_200_000];
const LR: f32 = 1e-3;

/// The buffers one step reads and writes: θ, g, and up to two state buffers.
struct Buffers {
    theta: Vec<f32>,
    g: Vec<f32>,
    s: [Vec<f32>; 2],
}

impl Buffers {
    fn new(n: usize) -> Self {
        let wave = |k: f32| (0..n).map(|i| ((i as f32) * k).sin() * 0.1).collect::<Vec<_>>();
        Buffers {
            theta: wave(0.37),
            g: wave(0.91),
            s: [wave(0.13), wave(0.29).iter().map(|v| v * v).collect()],
        }
    }
}

/// One optimizer: its step through the crate, and the same rule as a plain loop.
struct Case {
    name: &'static str,
    step: fn(&mut Box<dyn Step>, &mut Buffers),
    make: fn() -> Box<dyn Step>,
    plain: fn(&mut Buffers, u64),
}

/// The part of `Optimizer<f32>` the bench calls, object-safe.
trait Step {
    fn step(&mut self, slots: &mut [Slot<'_, f32>]) -> two_layer_net::Result<()>;
}

impl<O: Optimizer<f32>> Step for O {
    fn step(&mut self, slots: &mut [Slot<'_, f32>]) -> two_layer_net::Result<()> {
        Optimizer::step(self, slots)
    }
}

fn crate_step(opt: &mut Box<dyn Step>, b: &mut Buffers) {
    opt.step(&mut [Slot::new(&mut b.theta, &b.g)]).expect("a finite step");
}

/// Plain loops: the rules of `src/optim.rs` in the same arithmetic, unchecked, on zipped
/// slices (which the compiler knows do not alias).
fn plain_sgd(b: &mut Buffers, _: u64) {
    for (t, &g) in b.theta.iter_mut().zip(&b.g) {
        *t -= LR * g;
    }
}

fn plain_momentum(b: &mut Buffers, _: u64) {
    let (mu, keep) = (0.9f32, 1.0f32);
    for ((t, &g), m) in b.theta.iter_mut().zip(&b.g).zip(&mut b.s[0]) {
        *m = mu * *m + keep * g;
        *t -= LR * *m;
    }
}

fn plain_nesterov(b: &mut Buffers, _: u64) {
    let (mu, keep) = (0.9f32, 1.0f32);
    for ((t, &g), m) in b.theta.iter_mut().zip(&b.g).zip(&mut b.s[0]) {
        *m = mu * *m + keep * g;
        *t -= LR * (g + mu * *m);
    }
}

fn plain_adam_decay(b: &mut Buffers, t: u64, weight_decay: f32) {
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let t = i32::try_from(t).unwrap_or(i32::MAX);
    let step_size = (f64::from(LR) / (1.0 - 0.9f64.powi(t))) as f32;
    let bc2_sqrt = (1.0 - 0.999f64.powi(t)).sqrt() as f32;
    let shrink = 1.0 - LR * weight_decay;
    let [m, v] = &mut b.s;
    for (((p, &g), m), v) in b.theta.iter_mut().zip(&b.g).zip(m.iter_mut()).zip(v.iter_mut()) {
        let theta = *p * shrink;
        *m = *m + (1.0 - b1) * (g - *m);
        *v = *v * b2 + (1.0 - b2) * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p = theta + -step_size * (*m / denom);
    }
}

fn plain_adam(b: &mut Buffers, t: u64) {
    plain_adam_decay(b, t, 0.0);
}

fn plain_adamw(b: &mut Buffers, t: u64) {
    plain_adam_decay(b, t, 0.01);
}

const CASES: [Case; 5] = [
    Case { name: "sgd", step: crate_step, make: || Box::new(Sgd::new(LR)), plain: plain_sgd },
    Case {
        name: "momentum",
        step: crate_step,
        make: || Box::new(Momentum::new(LR, 0.9)),
        plain: plain_momentum,
    },
    Case {
        name: "nesterov",
        step: crate_step,
        make: || Box::new(Momentum::nesterov(LR, 0.9)),
        plain: plain_nesterov,
    },
    Case { name: "adam", step: crate_step, make: || Box::new(Adam::new(LR)), plain: plain_adam },
    Case { name: "adamw", step: crate_step, make: || Box::new(AdamW::new(LR, 0.01)), plain: plain_adamw },
];

fn criterion_benches(c: &mut Criterion) {
    for n in SIZES {
        for case in &CASES {
            let mut group = c.benchmark_group(format!("optim/{}/{n}", case.name));
            group.throughput(Throughput::Elements(n as u64));
            if n > 1_000_000 {
                group.sample_size(20);
            }
            let (mut b, mut opt) = (Buffers::new(n), (case.make)());
            group.bench_function("step", |bench| bench.iter(|| (case.step)(&mut opt, black_box(&mut b))));
            let (mut b, mut t) = (Buffers::new(n), 0);
            group.bench_function("plain loop", |bench| {
                bench.iter(|| {
                    t += 1;
                    (case.plain)(black_box(&mut b), t)
                })
            });
            group.finish();
        }
    }
}

/// The interleaved table: per size and optimizer, `rounds` × (one step, one plain loop),
/// median ns per parameter of each, and the ratio of the medians.
fn table(smoke: bool) {
    println!("\nf32, one thread; median ns per parameter over interleaved rounds (step, loop, step, …)");
    println!("{:>10} {:>9} {:>10} {:>10} {:>7}", "params", "optimizer", "step", "plain loop", "ratio");
    for n in SIZES {
        let rounds = if smoke { 2 } else { (400_000_000 / n).clamp(30, 20_000) };
        for case in &CASES {
            let (mut b1, mut opt) = (Buffers::new(n), (case.make)());
            let mut b2 = Buffers::new(n);
            let (mut step, mut plain) = (Vec::with_capacity(rounds), Vec::with_capacity(rounds));
            for round in 0..rounds + 3 {
                let t = Instant::now();
                (case.step)(&mut opt, black_box(&mut b1));
                let ts = t.elapsed().as_secs_f64();
                let t = Instant::now();
                (case.plain)(black_box(&mut b2), round as u64 + 1);
                let tp = t.elapsed().as_secs_f64();
                // The first three of each warm up (the state is sized on the first step).
                if round >= 3 {
                    step.push(ts * 1e9 / n as f64);
                    plain.push(tp * 1e9 / n as f64);
                }
            }
            let (s, p) = (median(&mut step), median(&mut plain));
            println!("{n:>10} {:>9} {s:>10.3} {p:>10.3} {:>7.2}", case.name, s / p);
        }
    }
}

/// The two ways to make a step all or nothing, modelled on the plain Adam loop (baseline
/// build, like it): a pre-pass summing `|x|` over θ, g, m and v before the loop (what the
/// crate does), or one loop that keeps a copy of θ, m and v to roll back from and tracks
/// finiteness. Median ns per parameter, interleaved.
fn designs(smoke: bool) {
    println!("\nAdam, f32: plain loop, + pre-pass bound, + rollback copy (median ns per parameter)");
    println!(
        "{:>10} {:>10} {:>10} {:>10} {:>8} {:>8}",
        "params", "plain", "pre-pass", "rollback", "pre/pl", "roll/pl"
    );
    for n in SIZES {
        let rounds = if smoke { 2 } else { (200_000_000 / n).clamp(30, 10_000) };
        let (mut b, mut backup) = (Buffers::new(n), [vec![0f32; n], vec![0f32; n], vec![0f32; n]]);
        let mut times = [Vec::new(), Vec::new(), Vec::new()];
        for round in 0..rounds + 3 {
            let t = round as u64 + 1;
            let runs: [&mut dyn FnMut(&mut Buffers); 3] = [
                &mut |b| plain_adam(b, t),
                &mut |b| {
                    let sums = [&b.theta, &b.g, &b.s[0], &b.s[1]].map(|v| abs_sum(v));
                    if black_box(sums).iter().all(|s| s.is_finite()) {
                        plain_adam(b, t);
                    }
                },
                &mut |b| {
                    if !adam_with_rollback_copy(b, &mut backup, t) {
                        b.theta.copy_from_slice(&backup[0]);
                    }
                },
            ];
            for (run, times) in runs.into_iter().zip(&mut times) {
                let start = Instant::now();
                run(black_box(&mut b));
                if round >= 3 {
                    times.push(start.elapsed().as_secs_f64() * 1e9 / n as f64);
                }
            }
        }
        let [p, pre, roll] = times.map(|mut v| median(&mut v));
        println!("{n:>10} {p:>10.3} {pre:>10.3} {roll:>10.3} {:>8.2} {:>8.2}", pre / p, roll / p);
    }
}

/// `Σ|x|` in 16 lanes, as the crate's pre-pass computes it.
fn abs_sum(v: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let blocks = v.chunks_exact(16);
    let rest = blocks.remainder();
    for block in blocks {
        for (l, &x) in lanes.iter_mut().zip(block) {
            *l += x.abs();
        }
    }
    lanes.iter().sum::<f32>() + rest.iter().map(|x| x.abs()).sum::<f32>()
}

/// The plain Adam loop that first copies θ, m and v into `backup` and reports whether every
/// new value is finite.
fn adam_with_rollback_copy(b: &mut Buffers, backup: &mut [Vec<f32>; 3], t: u64) -> bool {
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let t = i32::try_from(t).unwrap_or(i32::MAX);
    let step_size = (f64::from(LR) / (1.0 - 0.9f64.powi(t))) as f32;
    let bc2_sqrt = (1.0 - 0.999f64.powi(t)).sqrt() as f32;
    let [m, v] = &mut b.s;
    let [bt, bm, bv] = backup;
    let mut finite = true;
    for ((((((p, &g), m), v), bt), bm), bv) in
        b.theta.iter_mut().zip(&b.g).zip(m.iter_mut()).zip(v.iter_mut()).zip(bt).zip(bm).zip(bv)
    {
        (*bt, *bm, *bv) = (*p, *m, *v);
        *m = *m + (1.0 - b1) * (g - *m);
        *v = *v * b2 + (1.0 - b2) * g * g;
        let denom = v.sqrt() / bc2_sqrt + eps;
        *p += -step_size * (*m / denom);
        finite &= p.is_finite() & m.is_finite() & v.is_finite();
    }
    finite
}

/// A whole training step at the digits shape (64→64→10, batch 32, f32, softmax
/// cross-entropy): Adam's four phases against SGD's four phases and SGD's fused step,
/// interleaved; median µs of each and the ratios.
fn whole_step(smoke: bool) {
    let (n, d, h, k) = (32, 64, 64, 10);
    let mut rng = StdRng::seed_from_u64(0);
    let net0 = TwoLayerNet::<f32>::with_init(d, h, k, Init::He, &mut rng).expect("a valid shape");
    let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * 7 + j * 3) % 17) as f32 / 17.0 - 0.5);
    let y = Array1::from_shape_fn(n, |i| (i * 3) % k);
    let (mut nets, mut adam) = ([net0.clone(), net0.clone(), net0], Adam::new(1e-3f32));
    let rounds = if smoke { 2 } else { 20_000 };
    let mut times = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..rounds + 10 {
        for (i, (net, times)) in nets.iter_mut().zip(&mut times).enumerate() {
            let start = Instant::now();
            let loss = match i {
                0 => net.train_step_with(x.view(), y.view(), &SoftmaxCrossEntropy, &mut adam),
                1 => net.train_step_with(x.view(), y.view(), &SoftmaxCrossEntropy, &mut Sgd::new(1e-3)),
                _ => net.train_step(x.view(), y.view(), &SoftmaxCrossEntropy, 1e-3),
            };
            black_box(loss.expect("a finite step"));
            if round >= 10 {
                times.push(start.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let [a, s, f] = times.map(|mut v| median(&mut v));
    println!(
        "\nwhole step, 64→64→10, batch 32, f32 (median µs): Adam {a:.2}, SGD four phases {s:.2}, SGD fused {f:.2}"
    );
    println!("Adam / SGD four phases {:.2}, Adam / SGD fused {:.2}", a / s, a / f);
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    eprintln!("benches/optim: BLAS {}", two_layer_net::blas_info());
    let args: Vec<String> = std::env::args().collect();
    let smoke = args.iter().any(|a| a == "--test");
    if !args.iter().any(|a| a == "--table") {
        let mut c = Criterion::default().configure_from_args();
        criterion_benches(&mut c);
        c.final_summary();
    }
    table(smoke);
    designs(smoke);
    whole_step(smoke);
}
