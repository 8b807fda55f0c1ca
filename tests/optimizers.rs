//! Optimizers over any parameter buffers: all-or-nothing updates (a refused step leaves the
//! parameters and the state bitwise as they were), one state per slot, weight decay where the
//! slot says, PyTorch's momentum rule, and state export/restore. Then, through the network, the
//! optimizers against hand-written references of their published update rules (PyTorch's SGD,
//! classical and Nesterov momentum, Adam, AdamW), and the fused SGD + L2 step against the
//! unfused sequence.
//!
//! Tolerances written `1e-12` in the reference comparisons are "absolute below magnitude 1,
//! relative above it", entry by entry: `|actual − expected| ≤ 1e-12 · max(1, |expected|)`.

mod common;

use common::*;
use two_layer_net::ndarray::{Array2, ArrayView2, array};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Adam, AdamW, Decay, Error, L2, Loss, Momentum, Mse, Optimizer, OptimizerState, Scalar, Sgd, Slot,
    TwoLayerNet,
};

/// Every optimizer, fresh, with learning rate `lr`.
fn each_optimizer<F: Scalar>(lr: F, mut check: impl FnMut(&str, &mut dyn FnMut() -> Box<dyn Any<F>>)) {
    check("sgd", &mut || Box::new(Sgd::new(lr)));
    check("momentum", &mut || Box::new(Momentum::new(lr, F::cast(0.9))));
    check("nesterov", &mut || Box::new(Momentum::nesterov(lr, F::cast(0.9))));
    check("adam", &mut || Box::new(Adam::new(lr)));
    check("adamw", &mut || Box::new(AdamW::new(lr, F::cast(0.1))));
}

/// The part of `Optimizer` these tests use, object-safe.
trait Any<F: Scalar> {
    fn dyn_step(&mut self, slots: &mut [Slot<'_, F>]) -> two_layer_net::Result<()>;
    fn dyn_state(&self) -> OptimizerState<F>;
}

impl<F: Scalar, O: Optimizer<F>> Any<F> for O {
    fn dyn_step(&mut self, slots: &mut [Slot<'_, F>]) -> two_layer_net::Result<()> {
        Optimizer::step(self, slots)
    }
    fn dyn_state(&self) -> OptimizerState<F> {
        Optimizer::state(self)
    }
}

/// Two good steps over two slots, then a step with `bad` in slot 1's gradient at index 2 (and
/// `lr` as given): refused with `what`, nothing written; then a good step still works.
fn refused_whole<F: Scalar>(lr: F, bad: F, what: &str) {
    each_optimizer(lr, |name, make| {
        let mut opt = make();
        let (mut a, mut b) = (vec![F::cast(0.5); 6], vec![F::cast(-0.25); 4]);
        let (ga, mut gb) = (vec![F::cast(0.1); 6], vec![F::cast(0.2); 4]);
        for _ in 0..2 {
            opt.dyn_step(&mut [Slot::new(&mut a, &ga), Slot::new(&mut b, &gb)]).unwrap();
        }
        let (a0, b0, s0) = (bits(&a), bits(&b), opt.dyn_state());
        gb[2] = bad;
        let e = opt.dyn_step(&mut [Slot::new(&mut a, &ga), Slot::new(&mut b, &gb)]).unwrap_err();
        assert_eq!(
            e,
            Error::NonFinite { what: if what == "update" { "update" } else { "gradient" } },
            "{name}"
        );
        assert_eq!((bits(&a), bits(&b)), (a0, b0), "{name}: a refused step wrote parameters");
        assert_eq!(opt.dyn_state(), s0, "{name}: a refused step changed the state");
        gb[2] = F::cast(0.2);
        opt.dyn_step(&mut [Slot::new(&mut a, &ga), Slot::new(&mut b, &gb)]).unwrap();
        assert_ne!(bits(&a), bits(&[F::cast(0.5); 6]), "{name}");
    });
}

#[test]
fn every_optimizer_refuses_a_non_finite_gradient_whole() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        refused_whole::<f64>(0.1, bad, "gradient");
        refused_whole::<f32>(0.1, bad as f32, "gradient");
    }
}

#[test]
fn every_optimizer_refuses_an_overflowing_update_whole() {
    // A finite gradient of half the largest value: lr·g, μ·b + g, or g² (Adam's second
    // moment) overflows.
    refused_whole::<f32>(10.0, f32::MAX / 2.0, "update");
    refused_whole::<f64>(10.0, f64::MAX / 2.0, "update");
}

#[test]
fn a_non_finite_learning_rate_is_refused_by_every_optimizer() {
    for lr in [f64::NAN, f64::INFINITY] {
        each_optimizer(lr, |name, make| {
            let mut opt = make();
            let (mut p, g) = (vec![1.0; 3], vec![0.5; 3]);
            assert_eq!(
                opt.dyn_step(&mut [Slot::new(&mut p, &g)]).unwrap_err(),
                Error::NonFinite { what: "lr" },
                "{name}"
            );
            assert_eq!(p, [1.0; 3]);
        });
    }
}

/// The two cases: `step_with(Momentum)` after a backward with NaN in dŷ, and a
/// `train_step_with` whose momentum update overflows, each refused with the net untouched.
#[test]
fn momentum_no_longer_writes_nan_or_infinity_into_the_network() {
    let mut net = TwoLayerNet::<f32>::new(3, 4, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    let x = array![[0.5f32, -1.0, 2.0], [1.5, 0.3, -0.7]];
    let y = array![[1.0f32, 0.0], [0.0, 1.0]];
    let before = bits(net.params().as_slice());
    net.forward(x.view()).unwrap();
    net.backward(x.view(), array![[f32::NAN, 0.0], [0.0, 1.0]].view()).unwrap();
    let mut momentum = Momentum::new(0.1, 0.9);
    assert_eq!(net.step_with(&mut momentum).unwrap_err(), Error::NonFinite { what: "gradient" });
    assert_eq!(bits(net.params().as_slice()), before);

    // Gradients near 1e15 times a learning rate of 1e30: far beyond f32's 3.4e38.
    let big = x.mapv(|v| v * 1e15);
    let mut momentum = Momentum::new(1e30, 0.9);
    let e = net.train_step_with(big.view(), y.view(), &Mse, &mut momentum).unwrap_err();
    assert_eq!(e, Error::NonFinite { what: "update" });
    assert_eq!(bits(net.params().as_slice()), before);
    assert!(momentum.state().slots.is_empty(), "a refused first step sized no state");
    // The next step is not blamed on the input: it trains.
    net.train_step_with(x.view(), y.view(), &Mse, &mut Momentum::new(0.1, 0.9)).unwrap();
    assert!(net.params().as_slice().iter().all(|v| v.is_finite()));
}

#[test]
fn a_slot_that_does_not_fit_is_a_shape_error_and_writes_nothing() {
    let mut adam = Adam::new(0.1);
    let (mut p, g) = (vec![1.0; 4], vec![0.5; 3]);
    let e = adam.step(&mut [Slot::new(&mut p, &g)]).unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { operand: "grads", expected: [1, 4], actual: [1, 3] });
    assert_eq!((p.as_slice(), adam.state().slots.len()), ([1.0; 4].as_slice(), 0));

    // Slot 0's state has 4 entries: a buffer of 5 in slot 0 is refused.
    let g = vec![0.5; 4];
    adam.step(&mut [Slot::new(&mut p, &g)]).unwrap();
    let (mut q, gq) = (vec![1.0; 5], vec![0.5; 5]);
    let e = adam.step(&mut [Slot::new(&mut q, &gq)]).unwrap_err();
    assert_eq!(e, Error::ShapeMismatch { operand: "optimizer state", expected: [1, 4], actual: [1, 5] });
    assert_eq!(q, [1.0; 5]);

    let ranges = [2..3, 1..2];
    let e = adam.step(&mut [Slot::new(&mut p, &g).with_decay(Decay::Ranges(&ranges))]).unwrap_err();
    assert!(matches!(e, Error::ShapeMismatch { operand: "decay range", .. }), "{e:?}");
}

/// One optimizer over two slots keeps one state per slot: the same as two optimizers.
#[test]
fn one_optimizer_over_two_slots_equals_one_per_slot() {
    let (mut a1, mut b1) = (vec![0.3; 5], vec![-0.7; 3]);
    let (mut a2, mut b2) = (a1.clone(), b1.clone());
    let (mut both, mut only_a, mut only_b) = (Adam::new(0.05), Adam::new(0.05), Adam::new(0.05));
    for t in 0..6 {
        let ga: Vec<f64> = (0..5).map(|i| ((i + t) as f64).sin()).collect();
        let gb: Vec<f64> = (0..3).map(|i| ((i * t) as f64).cos()).collect();
        both.step(&mut [Slot::new(&mut a1, &ga), Slot::new(&mut b1, &gb)]).unwrap();
        only_a.step(&mut [Slot::new(&mut a2, &ga)]).unwrap();
        only_b.step(&mut [Slot::new(&mut b2, &gb)]).unwrap();
    }
    assert_eq!((bits(&a1), bits(&b1)), (bits(&a2), bits(&b2)));
    assert_eq!(both.state().slots[1], only_b.state().slots[0]);
}

/// With a zero gradient Adam moves nothing, so AdamW's change is its decay alone: on the
/// decayed entries exactly `θ·(1 − lr·λ)`, elsewhere none; the network's slot decays the
/// weights, not the biases.
#[test]
fn adamw_decays_the_entries_the_slot_names() {
    let (lr, wd) = (0.1, 0.5);
    let mut p = vec![2.0; 6];
    let g = vec![0.0; 6];
    let ranges = [1..3, 4..5];
    AdamW::new(lr, wd).step(&mut [Slot::new(&mut p, &g).with_decay(Decay::Ranges(&ranges))]).unwrap();
    let shrunk = 2.0 * (1.0 - lr * wd);
    assert_eq!(p, [2.0, shrunk, shrunk, 2.0, shrunk, 2.0]);

    let mut net = TwoLayerNet::<f64>::new(2, 3, 2, &mut StdRng::seed_from_u64(3)).unwrap();
    net.params_mut().as_slice_mut().fill(1.0);
    net.gradients_mut().as_slice_mut().fill(0.0);
    net.step_with(&mut AdamW::new(lr, wd)).unwrap();
    let shrunk = 1.0 - lr * wd;
    let v = net.params().view();
    assert!(v.w1.iter().chain(v.w2.iter()).all(|&w| w == shrunk));
    assert!(v.b1.iter().chain(v.b2.iter()).all(|&b| b == 1.0));
}

/// PyTorch's momentum with dampening τ: `b₁ = g₁` (undampened), then `b ← μ·b + (1−τ)·g`.
#[test]
fn momentum_with_dampening_follows_pytorchs_rule() {
    let (lr, mu, tau) = (0.1, 0.9, 0.3);
    let mut opt = Momentum::new(lr, mu);
    opt.dampening = tau;
    let (mut p, mut reference) = (vec![1.0, -2.0], vec![1.0, -2.0]);
    let mut buf: Option<Vec<f64>> = None;
    for t in 0..5 {
        let g = vec![(t as f64).sin(), 0.5 * t as f64];
        opt.step(&mut [Slot::new(&mut p, &g)]).unwrap();
        let b = match &mut buf {
            None => buf.insert(g.clone()),
            Some(b) => {
                for (b, &g) in b.iter_mut().zip(&g) {
                    *b = mu * *b + (1.0 - tau) * g;
                }
                b
            }
        };
        for (r, &b) in reference.iter_mut().zip(b.iter()) {
            *r -= lr * b;
        }
    }
    assert_close(&p, &reference, 1e-15, "dampened momentum");
}

/// `state` then `set_state` on a fresh optimizer continues bit for bit; another kind, or a
/// state that does not fit, is an `Error::State` that changes nothing.
#[test]
fn state_round_trips_and_a_mismatch_is_refused() {
    let g = vec![0.25, -0.5, 1.0];
    let (mut p1, mut p2) = (vec![1.0; 3], vec![1.0; 3]);
    let mut adam = Adam::new(0.01);
    for _ in 0..3 {
        adam.step(&mut [Slot::new(&mut p1, &g)]).unwrap();
    }
    p2.copy_from_slice(&p1);
    let mut fresh = Adam::new(0.5);
    fresh.set_state(adam.state()).unwrap();
    assert_eq!(fresh.learning_rate(), 0.01);
    for _ in 0..3 {
        adam.step(&mut [Slot::new(&mut p1, &g)]).unwrap();
        fresh.step(&mut [Slot::new(&mut p2, &g)]).unwrap();
    }
    assert_eq!(bits(&p1), bits(&p2));

    let mut momentum = Momentum::new(0.1, 0.9);
    let e = momentum.set_state(adam.state()).unwrap_err();
    assert!(matches!(&e, Error::State { what, .. } if what == "kind"), "{e:?}");
    assert_eq!(momentum.state(), Momentum::new(0.1, 0.9).state());

    let mut broken = adam.state();
    broken.slots[0].buffers.pop();
    assert!(matches!(fresh.set_state(broken).unwrap_err(), Error::State { .. }));
    let mut broken = adam.state();
    broken.slots[0].buffers[1][0] = f64::NAN;
    assert!(matches!(fresh.set_state(broken).unwrap_err(), Error::State { .. }));
    assert_eq!(fresh.state(), adam.state());
}

/// A user layer and the network, one Adam: the layer's gradient from `dX` drives it down.
#[test]
fn a_user_layer_in_front_of_the_network_trains_with_the_same_optimizer() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut net = TwoLayerNet::<f64>::new(3, 8, 1, &mut rng).unwrap();
    let x0 = Array2::from_shape_fn((16, 4), |(i, j)| ((i * 4 + j) as f64 * 0.37).sin());
    let y = Array2::from_shape_fn((16, 1), |(i, _)| (i as f64 * 0.2).cos());
    let mut e = Array2::from_shape_fn((4, 3), |(i, j)| 0.1 * (i as f64 - j as f64));
    let mut adam = Adam::new(1e-2);
    let mut losses = Vec::new();
    for _ in 0..200 {
        let x = x0.dot(&e);
        let mut dyhat = Array2::zeros((16, 1));
        let yhat = net.forward(x.view()).unwrap();
        losses.push(two_layer_net::Loss::loss_and_grad(&Mse, yhat, y.view(), dyhat.view_mut()).unwrap());
        let mut dx = Array2::zeros((16, 3));
        net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap();
        let de = x0.t().dot(&dx);
        adam.step(&mut [net.slot().unwrap(), Slot::new(e.as_slice_mut().unwrap(), de.as_slice().unwrap())])
            .unwrap();
    }
    assert!(losses[199] < 0.25 * losses[0], "loss {} → {}", losses[0], losses[199]);
    assert_eq!(adam.state().slots.len(), 2);
}

// ---------------------------------------------------------------------------------------------
// Reference update rules on plain Vec<f64> (PyTorch's documented algorithms)
// ---------------------------------------------------------------------------------------------

/// Whether flat index `i` of a D→H→K parameter buffer is a weight (W1 or W2), not a bias.
fn is_weight(i: usize, d: usize, h: usize, k: usize) -> bool {
    let (w1_end, b1_end) = (d * h, d * h + h);
    i < w1_end || (b1_end..b1_end + h * k).contains(&i)
}

/// Forward, MSE and backward on (`x`, `y`): leaves the gradients in `net` and returns the loss.
fn mse_backward(net: &mut TwoLayerNet<f64>, x: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>) -> f64 {
    let mut dyhat = Array2::zeros(y.raw_dim());
    let yhat = net.forward(x).unwrap();
    let l = Mse.loss_and_grad(yhat, y, dyhat.view_mut()).unwrap();
    net.backward(x, dyhat.view()).unwrap();
    l
}

trait RefOpt {
    fn step(&mut self, theta: &mut [f64], g: &[f64]);
    fn lr_mut(&mut self) -> &mut f64;
}

/// `θ ← θ − lr·g`.
struct RefSgd {
    lr: f64,
}

impl RefOpt for RefSgd {
    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }
    fn step(&mut self, theta: &mut [f64], g: &[f64]) {
        for (t, &g) in theta.iter_mut().zip(g) {
            *t -= self.lr * g;
        }
    }
}

/// PyTorch `SGD(lr, momentum = μ, dampening = 0, nesterov)`:
/// `b₁ = g₁`, `bₜ = μ·bₜ₋₁ + gₜ`; step direction `g + μ·b` (Nesterov) or `b`; `θ ← θ − lr·dir`.
struct RefMomentum {
    lr: f64,
    mu: f64,
    nesterov: bool,
    buf: Option<Vec<f64>>,
}

impl RefOpt for RefMomentum {
    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }
    fn step(&mut self, theta: &mut [f64], g: &[f64]) {
        let buf = match &mut self.buf {
            None => self.buf.insert(g.to_vec()),
            Some(b) => {
                for (b, &g) in b.iter_mut().zip(g) {
                    *b = self.mu * *b + g;
                }
                b
            }
        };
        for ((t, &g), &b) in theta.iter_mut().zip(g).zip(buf.iter()) {
            let dir = if self.nesterov { g + self.mu * b } else { b };
            *t -= self.lr * dir;
        }
    }
}

/// PyTorch `Adam` / `AdamW` (β1 = 0.9, β2 = 0.999, ε = 1e-8, the defaults):
/// `θ ← θ·(1 − lr·λ)` for decayed entries (AdamW only), `m ← β1·m + (1−β1)·g`,
/// `v ← β2·v + (1−β2)·g²`, `step = lr / (1 − β1ᵗ)`, `denom = √v / √(1 − β2ᵗ) + ε`,
/// `θ ← θ − step·m / denom`.
struct RefAdam {
    lr: f64,
    weight_decay: f64,
    /// Which entries the decoupled decay applies to.
    decay_mask: Vec<bool>,
    t: i32,
    m: Vec<f64>,
    v: Vec<f64>,
}

impl RefAdam {
    fn new(lr: f64, weight_decay: f64, decay_mask: Vec<bool>) -> Self {
        let n = decay_mask.len();
        RefAdam { lr, weight_decay, decay_mask, t: 0, m: vec![0.0; n], v: vec![0.0; n] }
    }
}

impl RefOpt for RefAdam {
    fn lr_mut(&mut self) -> &mut f64 {
        &mut self.lr
    }
    fn step(&mut self, theta: &mut [f64], g: &[f64]) {
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        self.t += 1;
        let bc1 = 1.0 - b1.powi(self.t);
        let bc2 = 1.0 - b2.powi(self.t);
        let step_size = self.lr / bc1;
        for i in 0..theta.len() {
            if self.decay_mask[i] {
                theta[i] *= 1.0 - self.lr * self.weight_decay;
            }
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g[i] * g[i];
            let denom = self.v[i].sqrt() / bc2.sqrt() + eps;
            theta[i] -= step_size * self.m[i] / denom;
        }
    }
}

/// Runs 5 steps of `opt` (through `step_with`) and of `reference` on a copy of the
/// parameters, each step on a fresh batch, comparing all parameters after every step. The
/// learning rate is halved (`set_learning_rate`) before step 4, as a schedule would: that
/// tells apart conventions that agree at a constant rate (e.g. momentum `v ← μ·v + lr·g`,
/// `θ ← θ − v`, which is not PyTorch's).
fn compare_optimizer<O: Optimizer<f64>>(what: &str, opt: &mut O, reference: &mut dyn RefOpt, seed: u64) {
    let (d, h, k) = (3, 5, 2);
    let mut net = random_net(d, h, k, seed);
    let mut theta = net.params().as_slice().to_vec();
    let mut rng = StdRng::seed_from_u64(seed ^ 0xabcdef);
    let mut moved = 0.0f64;
    for step in 0..5 {
        if step == 3 {
            let half = opt.learning_rate() / 2.0;
            opt.set_learning_rate(half);
            assert_eq!(opt.learning_rate(), half);
            *reference.lr_mut() /= 2.0;
            assert_eq!(*reference.lr_mut(), half);
        }
        let x = uniform(&mut rng, 6, d, 1.0);
        let y = uniform(&mut rng, 6, k, 1.0);
        mse_backward(&mut net, x.view(), y.view());
        let g = net.gradients().unwrap().as_slice().to_vec();
        assert!(g.iter().any(|&v| v != 0.0), "{what}: zero gradient at step {step}");
        let before = net.params().as_slice().to_vec();
        net.step_with(opt).unwrap();
        reference.step(&mut theta, &g);
        assert_close_each(
            net.params().as_slice(),
            &theta,
            1e-12,
            &format!("{what}, after step {}", step + 1),
        );
        let delta =
            net.params().as_slice().iter().zip(&before).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
        moved = moved.max(delta);
    }
    // The comparison means something only if the parameters actually moved.
    assert!(moved > 1e-4, "{what}: the parameters barely moved ({moved:e})");
}

// ---------------------------------------------------------------------------------------------
// Optimizers against the references
// ---------------------------------------------------------------------------------------------

#[test]
fn sgd_matches_reference() {
    compare_optimizer("Sgd", &mut Sgd::new(0.1), &mut RefSgd { lr: 0.1 }, 1);
}

#[test]
fn momentum_matches_pytorch_reference() {
    let mut reference = RefMomentum { lr: 0.05, mu: 0.9, nesterov: false, buf: None };
    compare_optimizer("Momentum", &mut Momentum::new(0.05, 0.9), &mut reference, 2);
}

#[test]
fn nesterov_momentum_matches_pytorch_reference() {
    let mut reference = RefMomentum { lr: 0.05, mu: 0.9, nesterov: true, buf: None };
    compare_optimizer("Nesterov", &mut Momentum::nesterov(0.05, 0.9), &mut reference, 3);
}

#[test]
fn classical_and_nesterov_momentum_differ() {
    // Guards the two momentum tests against a reference that ignores `nesterov`.
    let (x, y) = (array![[0.5, -0.3, 0.8], [0.1, 0.9, -0.7]], array![[1.0, 0.0], [0.0, 1.0]]);
    let mut a = random_net(3, 5, 2, 4);
    let mut b = a.clone();
    let (mut oa, mut ob) = (Momentum::new(0.05, 0.9), Momentum::nesterov(0.05, 0.9));
    for _ in 0..2 {
        mse_backward(&mut a, x.view(), y.view());
        a.step_with(&mut oa).unwrap();
        mse_backward(&mut b, x.view(), y.view());
        b.step_with(&mut ob).unwrap();
    }
    assert_ne!(a.params().as_slice(), b.params().as_slice());
}

#[test]
fn adam_matches_pytorch_reference() {
    let n = random_net(3, 5, 2, 0).params().len();
    let mut reference = RefAdam::new(0.01, 0.0, vec![false; n]);
    compare_optimizer("Adam", &mut Adam::new(0.01), &mut reference, 5);
}

#[test]
fn adam_defaults_are_pytorchs() {
    let adam = Adam::<f64>::new(0.01);
    assert_eq!((adam.lr, adam.beta1, adam.beta2, adam.eps), (0.01, 0.9, 0.999, 1e-8));
    let adamw = AdamW::<f64>::new(0.01, 0.1);
    assert_eq!((adamw.adam.lr, adamw.weight_decay), (0.01, 0.1));
    assert_eq!(adamw.learning_rate(), 0.01);
}

#[test]
fn adamw_matches_pytorch_reference_weights_only() {
    let (d, h, k) = (3, 5, 2);
    let n = random_net(d, h, k, 0).params().len();
    let mask: Vec<bool> = (0..n).map(|i| is_weight(i, d, h, k)).collect();
    assert_eq!(mask.iter().filter(|&&w| w).count(), d * h + h * k);
    let mut reference = RefAdam::new(0.01, 0.1, mask);
    compare_optimizer("AdamW", &mut AdamW::new(0.01, 0.1), &mut reference, 6);
}

#[test]
fn adamw_decays_weights_not_biases() {
    // From the same parameters and gradients, AdamW and Adam agree exactly on the biases and
    // differ by lr·λ·θ on the weights.
    let (d, h, k) = (3, 5, 2);
    let (lr, wd) = (0.01, 0.1);
    let x = array![[0.5, -0.3, 0.8], [0.1, 0.9, -0.7], [-0.4, 0.2, 0.6]];
    let y = array![[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]];
    let mut a = random_net(d, h, k, 7);
    let mut w = a.clone();
    let theta0 = a.params().as_slice().to_vec();
    assert!(theta0.iter().all(|&v| v != 0.0), "biases must start non-zero for this test");
    mse_backward(&mut a, x.view(), y.view());
    mse_backward(&mut w, x.view(), y.view());
    a.step_with(&mut Adam::new(lr)).unwrap();
    w.step_with(&mut AdamW::new(lr, wd)).unwrap();
    for (i, ((&pa, &pw), &t0)) in
        a.params().as_slice().iter().zip(w.params().as_slice()).zip(&theta0).enumerate()
    {
        if is_weight(i, d, h, k) {
            let expected = pa - lr * wd * t0;
            assert!((pw - expected).abs() <= 1e-12, "weight {i}: AdamW {pw}, Adam − lr·λ·θ {expected}");
            assert!((pw - pa).abs() > 1e-6, "weight {i} not decayed");
        } else {
            assert_eq!(pw.to_bits(), pa.to_bits(), "bias {i} decayed: AdamW {pw}, Adam {pa}");
        }
    }
}

#[test]
fn train_step_with_adam_equals_forward_backward_step_with() {
    let mut rng = StdRng::seed_from_u64(8);
    let mut fused = random_net(3, 6, 2, 8);
    let mut manual = fused.clone();
    let (mut oa, mut ob) = (Adam::new(0.02), Adam::new(0.02));
    for step in 0..4 {
        let x = uniform(&mut rng, 5, 3, 1.0);
        let y = uniform(&mut rng, 5, 2, 1.0);
        let lf = fused.train_step_with(x.view(), y.view(), &Mse, &mut oa).unwrap();
        let lm = mse_backward(&mut manual, x.view(), y.view());
        // Any other optimizer than SGD gets the full gradients, left in `gradients`.
        assert_close_each(
            fused.gradients().unwrap().as_slice(),
            manual.gradients().unwrap().as_slice(),
            1e-12,
            "gradients",
        );
        manual.step_with(&mut ob).unwrap();
        assert!((lf - lm).abs() <= 1e-12 * lm.max(1.0), "step {step}: loss {lf} vs {lm}");
        assert_close_each(
            fused.params().as_slice(),
            manual.params().as_slice(),
            1e-12,
            &format!("step {step}"),
        );
    }
}

#[test]
fn train_step_with_adam_and_l2_adds_reg_w_to_weight_gradients() {
    let (d, h, k) = (3, 6, 2);
    let reg = 0.05;
    let mut rng = StdRng::seed_from_u64(9);
    let mut fused = random_net(d, h, k, 9);
    let mut manual = fused.clone();
    let mut oa = Adam::new(0.02);
    let mut reference = RefAdam::new(0.02, 0.0, vec![false; fused.params().len()]);
    for step in 0..3 {
        let x = uniform(&mut rng, 5, d, 1.0);
        let y = uniform(&mut rng, 5, k, 1.0);
        let lf = fused.train_step_with(x.view(), y.view(), &L2::new(Mse, reg), &mut oa).unwrap();
        let data = mse_backward(&mut manual, x.view(), y.view());
        let w = manual.params().as_slice().to_vec();
        let mut g = manual.gradients().unwrap().as_slice().to_vec();
        let mut sq = 0.0;
        for i in 0..g.len() {
            if is_weight(i, d, h, k) {
                g[i] += reg * w[i];
                sq += w[i] * w[i];
            }
        }
        let expected_loss = data + 0.5 * reg * sq;
        assert!(
            (lf - expected_loss).abs() <= 1e-12 * expected_loss.max(1.0),
            "step {step}: {lf} vs {expected_loss}"
        );
        assert_close_each(
            fused.gradients().unwrap().as_slice(),
            &g,
            1e-12,
            &format!("gradients with L2, step {step}"),
        );
        let mut theta = manual.params().as_slice().to_vec();
        reference.step(&mut theta, &g);
        manual.params_mut().as_slice_mut().copy_from_slice(&theta);
        assert_close_each(fused.params().as_slice(), &theta, 1e-12, &format!("params, step {step}"));
    }
}

// ---------------------------------------------------------------------------------------------
// Fused SGD with L2
// ---------------------------------------------------------------------------------------------

/// `steps` fused `train_step`s with `L2::new(Mse, reg)` against forward, loss, backward,
/// `dW += reg·W` (weights only) and `θ ← θ − lr·dθ`.
fn fused_sgd_l2_case(reg: f64, seed: u64) {
    let (d, h, k) = (4, 7, 3);
    let lr = 0.05;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut fused = random_net(d, h, k, seed);
    let mut manual = fused.clone();
    for step in 0..4 {
        let x = uniform(&mut rng, 6, d, 1.0);
        let y = uniform(&mut rng, 6, k, 1.0);
        let lf = fused.train_step(x.view(), y.view(), &L2::new(Mse, reg), lr).unwrap();

        let data = mse_backward(&mut manual, x.view(), y.view());
        let mut g = manual.gradients().unwrap().as_slice().to_vec();
        let mut theta = manual.params().as_slice().to_vec();
        let mut sq = 0.0;
        for i in 0..g.len() {
            if is_weight(i, d, h, k) {
                g[i] += reg * theta[i];
                sq += theta[i] * theta[i];
            }
        }
        RefSgd { lr }.step(&mut theta, &g);
        manual.params_mut().as_slice_mut().copy_from_slice(&theta);

        let expected_loss = data + 0.5 * reg * sq;
        assert!(
            (lf - expected_loss).abs() <= 1e-12 * expected_loss.max(1.0),
            "reg {reg}, step {step}: loss {lf}, expected data {data} + penalty {}",
            0.5 * reg * sq
        );
        assert_close_each(fused.params().as_slice(), &theta, 1e-12, &format!("reg {reg}, step {step}"));
    }
}

#[test]
fn fused_train_step_with_l2_equals_unfused_sequence() {
    fused_sgd_l2_case(0.1, 10);
    fused_sgd_l2_case(1e-3, 11);
    fused_sgd_l2_case(0.0, 12);
}

#[test]
fn fused_train_step_penalty_is_visible_in_loss() {
    // The same step with and without L2: the reported losses differ by 0.5·reg·(ΣW1² + ΣW2²).
    let net = random_net(4, 7, 3, 13);
    let x = uniform(&mut StdRng::seed_from_u64(13), 6, 4, 1.0);
    let y = uniform(&mut StdRng::seed_from_u64(14), 6, 3, 1.0);
    let sq: f64 = net.w1().iter().chain(net.w2().iter()).map(|w| w * w).sum();
    let plain = net.clone().train_step(x.view(), y.view(), &Mse, 0.05).unwrap();
    let with = net.clone().train_step(x.view(), y.view(), &L2::new(Mse, 0.2), 0.05).unwrap();
    let penalty = 0.5 * 0.2 * sq;
    assert!(penalty > 0.1);
    assert!((with - plain - penalty).abs() <= 1e-12 * with.max(1.0), "{with} − {plain} ≠ {penalty}");
}
