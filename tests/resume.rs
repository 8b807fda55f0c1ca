//! The resume promise, in a fresh process: a run interrupted after any step, its
//! `TrainingState` saved, loaded by another process and continued, ends with parameters
//! bitwise equal to the uninterrupted run. For every optimizer (SGD, classical and Nesterov
//! momentum, Adam, AdamW), f32 and f64, on a pipeline (a linear layer of the user's own in
//! front of the network, both updated by one optimizer), on the network alone (through
//! `Optimizer::train_step`, the fused step for SGD), and on a `Trainer` run stopped after an
//! epoch (shuffled, with a learning-rate schedule).
//!
//! `harness = false`: without arguments this binary is the parent; it re-runs itself as
//! `resume child MODE KIND DTYPE STOP DIR` for each continuation and closes with
//! `resume: N passed, N failed`.

mod common;

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::bits;
use two_layer_net::ndarray::{Array1, Array2, s};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Adam, AdamW, Cosine, Fit, Init, Loss, Momentum, Optimizer, Progress, Scalar, Sgd, Slot,
    SoftmaxCrossEntropy, Trainer, TrainingState, TwoLayerNet, Warmup,
};

/// Raw inputs D0 → the user's layer → D → H → K, N rows, batches of B.
const D0: usize = 5;
const D: usize = 4;
const H: usize = 6;
const K: usize = 3;
const N: usize = 24;
const B: usize = 8;
/// Steps of a whole run; a run is interrupted after each step in `STOPS`.
const TOTAL: usize = 8;
const STOPS: [usize; 4] = [0, 1, 3, 7];
const KINDS: [&str; 5] = ["sgd", "momentum", "nesterov", "adam", "adamw"];
/// A user layer and the net stepped by hand; the net alone by `Optimizer::train_step`; the net
/// alone by a `Trainer` (shuffled epochs, a warmup-cosine schedule), whose position is saved
/// too (in this mode a "step" of `STOPS` and `TOTAL` is an epoch).
const MODES: [&str; 3] = ["pipeline", "net", "fit"];

/// The user's layer `X = X0·E` in front of the network.
struct Model<F: Scalar> {
    e: Array2<F>,
    net: TwoLayerNet<F>,
}

fn model<F: Scalar>(seed: u64) -> Model<F> {
    let mut rng = StdRng::seed_from_u64(seed);
    let net = TwoLayerNet::with_init(D, H, K, Init::He, &mut rng).unwrap();
    let e = Array2::from_shape_fn((D0, D), |(i, j)| {
        F::cast(((i * 3 + j * 5 + seed as usize) % 7) as f64 / 7.0 - 0.4)
    });
    Model { e, net }
}

fn data<F: Scalar>() -> (Array2<F>, Array1<usize>) {
    let x0 = Array2::from_shape_fn((N, D0), |(i, j)| F::cast((i as f64 * 0.7 + j as f64 * 1.3).sin()));
    (x0, Array1::from_shape_fn(N, |i| i % K))
}

/// An optimizer of `kind`; `lr_scale` ≠ 1 builds one with other settings, which restoring
/// must overwrite.
fn with_optimizer<F: Scalar, R>(kind: &str, lr_scale: f64, job: impl Job<F, R>) -> R {
    let lr = F::cast(0.05 * lr_scale);
    match kind {
        "sgd" => job.run(|| Sgd::new(lr)),
        "momentum" => job.run(|| {
            let mut m = Momentum::new(lr, F::cast(0.9));
            m.dampening = F::cast(0.1);
            m
        }),
        "nesterov" => job.run(|| Momentum::nesterov(lr, F::cast(0.9))),
        "adam" => job.run(|| Adam::new(lr)),
        "adamw" => job.run(|| AdamW::new(lr, F::cast(0.05))),
        other => panic!("unknown optimizer {other}"),
    }
}

/// Something to do with a fresh optimizer of a kind chosen at run time.
trait Job<F: Scalar, R> {
    fn run<O: Optimizer<F>>(self, make: impl Fn() -> O) -> R;
}

/// Steps `from..to` of the run: batch `step % (N/B)` in order.
fn train<F: Scalar, O: Optimizer<F>>(m: &mut Model<F>, opt: &mut O, mode: &str, from: usize, to: usize) {
    let (x0, labels) = data::<F>();
    for step in from..to {
        let rows = s![(step % (N / B)) * B..(step % (N / B) + 1) * B, ..];
        let (x0, y) = (x0.slice(rows), labels.slice(s![(step % (N / B)) * B..(step % (N / B) + 1) * B]));
        if mode == "net" {
            let x = x0.slice(s![.., ..D]).to_owned();
            opt.train_step(&mut m.net, x.view(), y, &SoftmaxCrossEntropy).unwrap();
            continue;
        }
        let x = x0.dot(&m.e);
        let mut dyhat = Array2::zeros((B, K));
        let yhat = m.net.forward(x.view()).unwrap();
        SoftmaxCrossEntropy.loss_and_grad(yhat, y, dyhat.view_mut()).unwrap();
        let mut dx = Array2::zeros((B, D));
        m.net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap();
        let de = x0.t().dot(&dx);
        let e = m.e.as_slice_mut().unwrap();
        opt.step(&mut [m.net.slot().unwrap(), Slot::new(e, de.as_slice().unwrap())]).unwrap();
    }
}

fn trainer(epochs: usize) -> Trainer<Warmup<Cosine>> {
    Trainer::new(Fit { epochs, batch_size: 5, shuffle: true, seed: 3, progress: Progress::Off })
        .with_schedule(Warmup { steps: 4, then: Cosine { steps: 30, min: 1e-3 } })
        .unwrap()
}

/// The net alone trained by a `Trainer` up to epoch `to`, from the position in `state` if given.
fn fit_epochs<F: Scalar, O: Optimizer<F>>(
    m: &mut Model<F>,
    opt: &mut O,
    state: Option<&TrainingState<F>>,
    to: usize,
) -> Trainer<Warmup<Cosine>> {
    let (x0, labels) = data::<F>();
    let mut t = trainer(to);
    if let Some(state) = state {
        t.restore(state).unwrap();
    }
    let x = x0.slice(s![.., ..D]);
    t.fit(&mut m.net, x, labels.view(), None, &SoftmaxCrossEntropy, opt, |_| ControlFlow::Continue(()))
        .unwrap();
    t
}

/// Steps `from..to` in `mode`, from the loop position in `state` for a `Trainer`; returns the
/// trainer when there is one.
fn run<F: Scalar, O: Optimizer<F>>(
    m: &mut Model<F>,
    opt: &mut O,
    mode: &str,
    state: Option<&TrainingState<F>>,
    from: usize,
    to: usize,
) -> Option<Trainer<Warmup<Cosine>>> {
    if mode == "fit" {
        return Some(fit_epochs(m, opt, state, to));
    }
    train(m, opt, mode, from, to);
    None
}

fn save<F: Scalar, O: Optimizer<F>>(
    m: &Model<F>,
    opt: &O,
    step: usize,
    trainer: Option<&Trainer<Warmup<Cosine>>>,
    path: &Path,
) {
    let mut state = TrainingState::new();
    if let Some(t) = trainer {
        t.save(&mut state);
    }
    state.set_net("net", &m.net).unwrap();
    state.set_tensor("embed", &[D0, D], m.e.as_slice().unwrap()).unwrap();
    state.set_optimizer("optimizer", opt).unwrap();
    state.loop_state_mut().insert("position".into(), step.to_string());
    state.metadata_mut().insert("note".into(), "resume test".into());
    state.save(path).unwrap();
}

/// The bits of every parameter: the network's, then the user's layer.
fn model_bits<F: Scalar>(m: &Model<F>) -> Vec<u64> {
    let mut all = bits(m.net.params().as_slice());
    all.extend(bits(m.e.as_slice().unwrap()));
    all
}

/// The child: a model and an optimizer built afresh (other weights, another learning rate),
/// the state restored, the rest of the run, the final parameters saved.
struct Continue<'a> {
    mode: &'a str,
    dir: &'a Path,
}

impl<F: Scalar> Job<F, ()> for Continue<'_> {
    fn run<O: Optimizer<F>>(self, make: impl Fn() -> O) {
        let (mut m, mut opt) = (model::<F>(999), make());
        let state = TrainingState::<F>::load(self.dir.join("state.safetensors")).unwrap();
        state.restore_net("net", &mut m.net).unwrap();
        state.restore_tensor("embed", &[D0, D], m.e.as_slice_mut().unwrap()).unwrap();
        state.restore_optimizer("optimizer", &mut opt).unwrap();
        assert_eq!(state.metadata()["note"], "resume test");
        let from: usize = state.loop_state()["position"].parse().unwrap();
        let t = run(&mut m, &mut opt, self.mode, Some(&state), from, TOTAL);
        save(&m, &opt, TOTAL, t.as_ref(), &self.dir.join("final.safetensors"));
    }
}

/// The parent's two runs: the whole run's final bits, and the first `stop` steps saved.
struct Start<'a> {
    mode: &'a str,
    stop: usize,
    dir: &'a Path,
}

impl<F: Scalar> Job<F, Vec<u64>> for Start<'_> {
    fn run<O: Optimizer<F>>(self, make: impl Fn() -> O) -> Vec<u64> {
        let (mut whole, mut whole_opt) = (model::<F>(1), make());
        run(&mut whole, &mut whole_opt, self.mode, None, 0, TOTAL);
        let (mut part, mut part_opt) = (model::<F>(1), make());
        let t = run(&mut part, &mut part_opt, self.mode, None, 0, self.stop);
        save(&part, &part_opt, self.stop, t.as_ref(), &self.dir.join("state.safetensors"));
        model_bits(&whole)
    }
}

fn final_bits<F: Scalar>(dir: &Path) -> Vec<u64> {
    let state = TrainingState::<F>::load(dir.join("final.safetensors")).unwrap();
    let mut m = model::<F>(5);
    state.restore_net("net", &mut m.net).unwrap();
    state.restore_tensor("embed", &[D0, D], m.e.as_slice_mut().unwrap()).unwrap();
    model_bits(&m)
}

/// One case: the whole run here, the continuation in a child process; equal bits or why not.
fn case(mode: &str, kind: &str, dtype: &str, stop: usize) -> Result<(), String> {
    let dir = std::env::temp_dir()
        .join(format!("two-layer-net-resume-{}-{mode}-{kind}-{dtype}-{stop}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let start = Start { mode, stop, dir: &dir };
    let whole = if dtype == "f32" {
        with_optimizer::<f32, _>(kind, 1.0, start)
    } else {
        with_optimizer::<f64, _>(kind, 1.0, start)
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let out = Command::new(exe)
        .args(["child", mode, kind, dtype, &stop.to_string()])
        .arg(&dir)
        .output()
        .map_err(|e| format!("could not start the child: {e}"))?;
    if !out.status.success() {
        return Err(format!("child failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    let resumed = if dtype == "f32" { final_bits::<f32>(&dir) } else { final_bits::<f64>(&dir) };
    let _ = std::fs::remove_dir_all(&dir);
    let differing = whole.iter().zip(&resumed).filter(|(a, b)| a != b).count();
    if whole.len() != resumed.len() || differing > 0 {
        return Err(format!("{differing} of {} parameters differ from the uninterrupted run", whole.len()));
    }
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        let (mode, kind, dtype, dir) = (&args[2], &args[3], &args[4], PathBuf::from(&args[6]));
        let job = Continue { mode, dir: &dir };
        match dtype.as_str() {
            "f32" => with_optimizer::<f32, _>(kind, 7.0, job),
            _ => with_optimizer::<f64, _>(kind, 7.0, job),
        }
        return;
    }
    let (mut passed, mut failed) = (0, 0);
    for mode in MODES {
        for kind in KINDS {
            for dtype in ["f32", "f64"] {
                for stop in STOPS {
                    let name = format!("resume {mode} {kind} {dtype} after step {stop} of {TOTAL}");
                    match case(mode, kind, dtype, stop) {
                        Ok(()) => passed += 1,
                        Err(why) => {
                            failed += 1;
                            println!("{name} ... FAILED: {why}");
                        }
                    }
                }
            }
        }
    }
    println!("resume: {passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
