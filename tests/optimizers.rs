//! Optimizers over any parameter buffers: all-or-nothing updates (a refused step leaves the
//! parameters and the state bitwise as they were), one state per slot, weight decay where the
//! slot says, PyTorch's momentum rule, and state export/restore.

mod common;

use common::{assert_close, bits};
use two_layer_net::ndarray::{Array2, array};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Adam, AdamW, Decay, Error, Momentum, Mse, Optimizer, OptimizerState, Scalar, Sgd, Slot, TwoLayerNet,
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

fn to_bits<F: Scalar>(v: &[F]) -> Vec<u64> {
    v.iter().map(|x| x.as_f64().to_bits()).collect()
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
        let (a0, b0, s0) = (to_bits(&a), to_bits(&b), opt.dyn_state());
        gb[2] = bad;
        let e = opt.dyn_step(&mut [Slot::new(&mut a, &ga), Slot::new(&mut b, &gb)]).unwrap_err();
        assert_eq!(
            e,
            Error::NonFinite { what: if what == "update" { "update" } else { "gradient" } },
            "{name}"
        );
        assert_eq!((to_bits(&a), to_bits(&b)), (a0, b0), "{name}: a refused step wrote parameters");
        assert_eq!(opt.dyn_state(), s0, "{name}: a refused step changed the state");
        gb[2] = F::cast(0.2);
        opt.dyn_step(&mut [Slot::new(&mut a, &ga), Slot::new(&mut b, &gb)]).unwrap();
        assert_ne!(to_bits(&a), to_bits(&[F::cast(0.5); 6]), "{name}");
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
    let before = to_bits(net.params().as_slice());
    net.forward(x.view()).unwrap();
    net.backward(x.view(), array![[f32::NAN, 0.0], [0.0, 1.0]].view()).unwrap();
    let mut momentum = Momentum::new(0.1, 0.9);
    assert_eq!(net.step_with(&mut momentum).unwrap_err(), Error::NonFinite { what: "gradient" });
    assert_eq!(to_bits(net.params().as_slice()), before);

    // Gradients near 1e15 times a learning rate of 1e30: far beyond f32's 3.4e38.
    let big = x.mapv(|v| v * 1e15);
    let mut momentum = Momentum::new(1e30, 0.9);
    let e = net.train_step_with(big.view(), y.view(), &Mse, &mut momentum).unwrap_err();
    assert_eq!(e, Error::NonFinite { what: "update" });
    assert_eq!(to_bits(net.params().as_slice()), before);
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
