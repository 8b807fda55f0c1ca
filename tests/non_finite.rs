//! Refusal of non-finite steps: a non-finite loss, input or learning rate makes a training
//! step (fused SGD, with or without L2, or another optimizer through `train_step_with`) return
//! `Error::NonFinite` with the parameters and the optimizer's state unchanged, in f64 and f32,
//! including the cases where the loss stays finite (an infinite input saturated by tanh or
//! sigmoid, or switched off by ReLU) but the fused update would compute ∞·0. tests/hostile.rs
//! sweeps the same refusal over every activation, loss and dtype.

mod common;

use common::*;
use two_layer_net::ndarray::{Array2, array};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Adam, Error, L2, Momentum, Mse, Sigmoid, SoftmaxCrossEntropy, Tanh, TwoLayerNet,
};

#[test]
fn non_finite_loss_is_refused_with_params_unchanged_sgd() {
    let mut net = random_net(3, 5, 2, 50);
    let before = bits(net.params().as_slice());
    let x = array![[0.1, 0.2, 0.3], [0.4, -0.5, 0.6]];
    let y = array![[1.0, 0.0], [0.0, 1.0]];
    let mut y_inf = y.clone();
    y_inf[[0, 1]] = f64::INFINITY;
    let mut y_nan = y.clone();
    y_nan[[1, 0]] = f64::NAN;
    let mut x_huge = x.clone();
    x_huge[[0, 0]] = 1e300; // ŷ overflows (or its square does)
    for (what, xv, yv) in [("inf y", &x, &y_inf), ("NaN y", &x, &y_nan), ("huge x", &x_huge, &y)] {
        let err = net.train_step(xv.view(), yv.view(), &Mse, 0.1).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{what}: {err:?}");
        assert_eq!(bits(net.params().as_slice()), before, "{what}: parameters changed");
        let err = net.train_step(xv.view(), yv.view(), &L2::new(Mse, 0.1), 0.1).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{what} + L2: {err:?}");
        assert_eq!(bits(net.params().as_slice()), before, "{what} + L2: parameters changed");
    }
    assert_eq!(
        net.train_step(x.view(), y.view(), &Mse, f64::NAN).unwrap_err(),
        Error::NonFinite { what: "lr" }
    );
    assert_eq!(
        net.train_step(x.view(), y.view(), &Mse, f64::INFINITY).unwrap_err(),
        Error::NonFinite { what: "lr" }
    );
    assert_eq!(bits(net.params().as_slice()), before);
    // The network still trains afterwards.
    net.train_step(x.view(), y.view(), &Mse, 0.1).unwrap();
    assert_ne!(bits(net.params().as_slice()), before);
}

/// A NaN (or ±∞) in `x` on the fused SGD path of a ReLU network: refused, nothing changed.
///
/// Regression test: ReLU used to map NaN to 0 (and its derivative at NaN to 0), so the loss,
/// dŷ and dY1 were all finite while the fused `W1 ← W1 − lr·Xᵀ·dY1` multiplied the NaN by 0
/// and turned the input's row of `W1` into NaN (fixed in 9d2f555: ReLU now propagates NaN).
/// The Adam path, which stores and checks dW1, refuses the same step.
#[test]
fn fused_sgd_refuses_non_finite_input() {
    let x = array![[0.1, 0.2, 0.3], [0.4, -0.5, 0.6]];
    let y = array![[1.0, 0.0], [0.0, 1.0]];
    for (r, c, v) in [(1, 2, f64::NAN), (0, 0, f64::NAN), (1, 1, f64::INFINITY), (0, 2, f64::NEG_INFINITY)] {
        let mut xv = x.clone();
        xv[[r, c]] = v;
        // The other optimizers refuse it.
        let mut adam_net = random_net(3, 5, 2, 50);
        let before = bits(adam_net.params().as_slice());
        let err = adam_net.train_step_with(xv.view(), y.view(), &Mse, &mut Adam::new(0.1)).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "x[{r}, {c}] = {v}, Adam: {err:?}");
        assert_eq!(bits(adam_net.params().as_slice()), before);
        // So must fused SGD.
        let mut net = random_net(3, 5, 2, 50);
        let result = net.train_step(xv.view(), y.view(), &Mse, 0.1);
        let nan = net.params().as_slice().iter().filter(|p| !p.is_finite()).count();
        assert!(
            matches!(result, Err(Error::NonFinite { .. })),
            "x[{r}, {c}] = {v}: fused SGD returned {result:?}; {nan} parameters now non-finite, W1 = {}",
            net.w1()
        );
        assert_eq!(bits(net.params().as_slice()), before, "x[{r}, {c}] = {v}: parameters changed");
    }
}

/// Fused SGD on a batch with an infinite input and an activation that saturates it to a
/// finite value: `Err(NonFinite)` and parameters unchanged, as the Adam path does. Returns a
/// description of the failure, if any.
fn fused_sgd_infinite_input_case<A: Activation + Default>(
    net: TwoLayerNet<f64, A>,
    x: Array2<f64>,
) -> Option<String> {
    let y = Array2::from_shape_fn((x.nrows(), net.output_dim()), |(i, j)| (i + j) as f64 * 0.25);
    let before = bits(net.params().as_slice());
    let mut adam_net = net.clone();
    let err = adam_net.train_step_with(x.view(), y.view(), &Mse, &mut Adam::new(0.1)).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{}: Adam path {err:?}", A::NAME);
    assert_eq!(bits(adam_net.params().as_slice()), before);
    let mut net = net;
    let result = net.train_step(x.view(), y.view(), &Mse, 0.1);
    let non_finite = net.params().as_slice().iter().filter(|p| !p.is_finite()).count();
    if matches!(result, Err(Error::NonFinite { .. })) && bits(net.params().as_slice()) == before {
        return None;
    }
    Some(format!(
        "{}, x = {x}: fused SGD returned {result:?}, and {non_finite} parameters are now non-finite: W1 = {}",
        A::NAME,
        net.w1()
    ))
}

/// tanh(±∞) = ±1 and σ(±∞) ∈ {0, 1}, with derivative 0 there: the loss, dŷ and dY1 are all
/// finite, but the fused `W1 ← W1 − lr·Xᵀ·dY1` computes ∞·0 = NaN into a row of W1.
#[test]
fn fused_sgd_refuses_infinite_input_through_saturating_activations() {
    let x = array![[0.3, f64::INFINITY, -0.2], [0.5, 0.1, 0.4]];
    let x_neg = array![[0.3, f64::NEG_INFINITY, -0.2], [0.5, 0.1, 0.4]];
    let failures: Vec<String> = [
        fused_sgd_infinite_input_case(random_net_with::<Tanh>(3, 4, 2, 55), x.clone()),
        fused_sgd_infinite_input_case(random_net_with::<Sigmoid>(3, 4, 2, 56), x),
        fused_sgd_infinite_input_case(random_net_with::<Tanh>(3, 4, 2, 57), x_neg.clone()),
        fused_sgd_infinite_input_case(random_net_with::<Sigmoid>(3, 4, 2, 58), x_neg),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// ReLU: −∞ times a row of W1 that is all positive gives Y1 = −∞ for every hidden unit of
/// that example, ReLU 0, derivative 0; the loss is finite and `Xᵀ·dY1` has ∞·0 = NaN.
#[test]
fn fused_sgd_refuses_infinite_input_relu_all_units_off() {
    let mut net = random_net(3, 4, 2, 58);
    net.params_mut().view_mut().w1.row_mut(1).mapv_inplace(f64::abs);
    let x = array![[0.3, f64::NEG_INFINITY, -0.2], [0.5, 0.1, 0.4]];
    if let Some(failure) = fused_sgd_infinite_input_case(net, x) {
        panic!("{failure}");
    }
}

#[test]
fn non_finite_loss_is_refused_with_params_unchanged_adam() {
    let mut net = random_net(3, 5, 3, 51);
    let mut fresh = net.clone();
    let before = bits(net.params().as_slice());
    let x = array![[0.1, 0.2, 0.3], [0.4, -0.5, 0.6]];
    let labels = array![0usize, 2];
    let y = array![[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]];
    let mut x_nan = x.clone();
    x_nan[[0, 0]] = f64::NAN;
    let mut x_inf = x.clone();
    x_inf[[1, 1]] = f64::NEG_INFINITY;
    let mut adam = Adam::new(0.01);
    for xv in [&x_nan, &x_inf] {
        let err = net.train_step_with(xv.view(), labels.view(), &SoftmaxCrossEntropy, &mut adam).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");
        assert_eq!(bits(net.params().as_slice()), before);
        let err = net.train_step_with(xv.view(), y.view(), &L2::new(Mse, 1e-2), &mut adam).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");
        assert_eq!(bits(net.params().as_slice()), before);
        let mut momentum = Momentum::new(0.1, 0.9);
        let err = net.train_step_with(xv.view(), y.view(), &Mse, &mut momentum).unwrap_err();
        assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");
        assert_eq!(bits(net.params().as_slice()), before);
    }
    // The refused steps did not advance Adam's state (t, m, v).
    net.train_step_with(x.view(), labels.view(), &SoftmaxCrossEntropy, &mut adam).unwrap();
    fresh.train_step_with(x.view(), labels.view(), &SoftmaxCrossEntropy, &mut Adam::new(0.01)).unwrap();
    assert_eq!(bits(net.params().as_slice()), bits(fresh.params().as_slice()));
}

#[test]
fn non_finite_loss_is_refused_in_f32() {
    let mut net = TwoLayerNet::<f32>::new(2, 4, 2, &mut StdRng::seed_from_u64(52)).unwrap();
    let before = bits(net.params().as_slice());
    let x = array![[1e30f32, 1e30], [0.5, 0.5]]; // ŷ² overflows f32
    let y = array![[0.0f32, 0.0], [0.0, 0.0]];
    let err = net.train_step(x.view(), y.view(), &Mse, 0.1).unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err:?}");
    assert_eq!(bits(net.params().as_slice()), before);
}
