//! Bad input: every case returns the right typed `Error` (variant, operand and shapes, and a
//! Display message that names them), and leaves the parameters and the gradients bitwise as
//! they were. Then non-contiguous inputs, which are not errors: they give what a contiguous
//! copy gives.

mod common;

use std::fmt::Debug;

use common::*;
use two_layer_net::ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, array, s};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Error, Identity, Init, L2, LeakyRelu, Loss, Mse, Relu, Shape, SoftmaxCrossEntropy, Tanh,
    TwoLayerNet,
};

const N: usize = 4;
const D: usize = 3;
const H: usize = 5;
const K: usize = 2;

/// The bits of the parameters and of the gradients.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    params: Vec<u64>,
    /// `None` where the net has no gradients to show.
    grads: Option<Vec<u64>>,
}

fn snap<A: Activation>(net: &TwoLayerNet<f64, A>) -> Snapshot {
    Snapshot {
        params: bits(net.params().as_slice()),
        grads: net.gradients().ok().map(|g| bits(g.as_slice())),
    }
}

/// A 3→5→2 ReLU net that has run forward and backward on a batch of 4 (so its gradients are
/// nonzero and its forward pass is cached), with that batch, its targets and its dŷ.
fn ready() -> (TwoLayerNet<f64>, Array2<f64>, Array2<f64>, Array2<f64>) {
    ready_as(Relu)
}

/// [`ready`] with another activation.
fn ready_as<A: Activation>(act: A) -> (TwoLayerNet<f64, A>, Array2<f64>, Array2<f64>, Array2<f64>) {
    let (p, x, y) = problem(1, N, D, H, K, 1e-6);
    let mut net = p.net(act);
    let mut dyhat = Array2::zeros((N, K));
    let yhat = net.forward(x.view()).unwrap();
    Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut()).unwrap();
    net.backward(x.view(), dyhat.view()).unwrap();
    assert!(net.gradients().unwrap().as_slice().iter().any(|&g| g != 0.0));
    (net, x, y, dyhat)
}

/// The error of `r`, which must be one.
#[track_caller]
fn err<T: Debug>(r: Result<T, Error>) -> Error {
    match r {
        Ok(v) => panic!("expected an error, got Ok({v:?})"),
        Err(e) => e,
    }
}

fn shape_str(s: Shape) -> String {
    format!("({}, {})", s[0], s[1])
}

/// `e` is `ShapeMismatch { operand, expected, actual }`, and its message names the operand and
/// both shapes, the expected one first.
#[track_caller]
fn assert_mismatch(e: Error, operand: &str, expected: Shape, actual: Shape) {
    match &e {
        Error::ShapeMismatch { operand: o, expected: ex, actual: ac } => {
            assert_eq!((*o, *ex, *ac), (operand, expected, actual), "{e:?}");
        }
        other => panic!("expected ShapeMismatch for {operand}, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{operand}:")), "message {msg:?} does not name {operand}");
    let (ie, ia) = (msg.find(&shape_str(expected)), msg.rfind(&shape_str(actual)));
    assert!(
        matches!((ie, ia), (Some(i), Some(j)) if i < j),
        "message {msg:?} lacks {expected:?} then {actual:?}"
    );
}

/// `e` is `Empty { operand, actual }` with a message naming both.
#[track_caller]
fn assert_empty(e: Error, operand: &str, actual: Shape) {
    match &e {
        Error::Empty { operand: o, actual: a } => assert_eq!((*o, *a), (operand, actual), "{e:?}"),
        other => panic!("expected Empty for {operand}, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{operand}:")) && msg.contains(&shape_str(actual)), "{msg:?}");
    assert!(msg.contains("empty"), "{msg:?}");
}

/// `e` is `TooLarge { operand, actual }` with a message naming both.
#[track_caller]
fn assert_too_large(e: Error, operand: &str, actual: Shape) {
    match &e {
        Error::TooLarge { operand: o, actual: a } => assert_eq!((*o, *a), (operand, actual), "{e:?}"),
        other => panic!("expected TooLarge for {operand}, got {other:?}"),
    }
    let msg = e.to_string();
    assert!(msg.starts_with(&format!("{operand}:")) && msg.contains(&shape_str(actual)), "{msg:?}");
    assert!(msg.contains("too large"), "{msg:?}");
}

#[test]
fn x_with_wrong_input_dim() {
    let (mut net, x, y, dyhat) = ready();
    let before = snap(&net);
    let mut dx = Array2::from_elem((N, D), 9.0);
    for cols in [D + 1, D - 1] {
        let bad = Array2::from_elem((N, cols), 0.5);
        assert_mismatch(err(net.forward(bad.view())), "x", [N, D], [N, cols]);
        assert_eq!(snap(&net), before);
        assert_mismatch(err(net.backward(bad.view(), dyhat.view())), "x", [N, D], [N, cols]);
        assert_eq!(snap(&net), before);
        assert_mismatch(
            err(net.backward_with_dx(bad.view(), dyhat.view(), dx.view_mut())),
            "x",
            [N, D],
            [N, cols],
        );
        assert_eq!(snap(&net), before);
        assert!(dx.iter().all(|&v| v == 9.0), "dx written");
        assert_mismatch(err(net.train_step(bad.view(), y.view(), &Mse, 0.1)), "x", [N, D], [N, cols]);
        assert_eq!(snap(&net), before);
    }
    // None of these touched the cached forward pass or the gradients' readiness.
    net.backward(x.view(), dyhat.view()).unwrap();
    assert_eq!(snap(&net), before, "same backward, same gradients");
    net.step(0.1).unwrap();
    assert_ne!(snap(&net).params, before.params);
}

#[test]
fn y_with_wrong_shape_in_train_step() {
    let (mut net, x, _, _) = ready();
    let before = snap(&net);
    for actual in [[N, K + 1], [N - 1, K], [K, N]] {
        let bad = Array2::from_elem((actual[0], actual[1]), 0.5);
        assert_mismatch(err(net.train_step(x.view(), bad.view(), &Mse, 0.1)), "y", [N, K], actual);
        assert_eq!(snap(&net), before, "y {actual:?}");
    }
}

#[test]
fn mse_with_wrong_shapes() {
    let yhat = Array2::from_elem((N, K), 1.0);
    let y = Array2::from_elem((N, K), 0.5);
    let mut dyhat = Array2::from_elem((N, K), 7.0);
    for actual in [[N, K + 1], [N + 1, K], [K, N]] {
        let bad = Array2::from_elem((actual[0], actual[1]), 0.5);
        assert_mismatch(
            err(Mse.loss_and_grad(yhat.view(), bad.view(), dyhat.view_mut())),
            "y",
            [N, K],
            actual,
        );
        assert!(dyhat.iter().all(|&v| v == 7.0), "dyhat written on a bad y");
        let mut bad_d = Array2::from_elem((actual[0], actual[1]), 7.0);
        assert_mismatch(
            err(Mse.loss_and_grad(yhat.view(), y.view(), bad_d.view_mut())),
            "dyhat",
            [N, K],
            actual,
        );
        assert!(bad_d.iter().all(|&v| v == 7.0), "dyhat written on a bad dyhat");
    }
    // The same in f32.
    let (yhat32, y32) = (yhat.mapv(|v| v as f32), Array2::<f32>::zeros((N, K + 1)));
    let mut d32 = Array2::<f32>::zeros((N, K));
    assert_mismatch(
        err(Mse.loss_and_grad(yhat32.view(), y32.view(), d32.view_mut())),
        "y",
        [N, K],
        [N, K + 1],
    );
    // And a good call works: (1/N)·Σ 0.25 = K·0.25, dŷ = (2/N)·0.5.
    let l = Mse.loss_and_grad(yhat.view(), y.view(), dyhat.view_mut()).unwrap();
    assert_eq!(l, K as f64 * 0.25);
    assert!(dyhat.iter().all(|&v| v == 1.0 / N as f64));
}

#[test]
fn dyhat_with_wrong_shape_in_backward() {
    let (mut net, x, _, dyhat) = ready();
    let before = snap(&net);
    let mut dx = Array2::from_elem((N, D), 9.0);
    for actual in [[N, K + 1], [N - 1, K], [K, N], [N, K - 1]] {
        let bad = Array2::from_elem((actual[0], actual[1]), 0.5);
        assert_mismatch(err(net.backward(x.view(), bad.view())), "dyhat", [N, K], actual);
        assert_eq!(snap(&net), before);
        assert_mismatch(
            err(net.backward_with_dx(x.view(), bad.view(), dx.view_mut())),
            "dyhat",
            [N, K],
            actual,
        );
        assert_eq!(snap(&net), before);
        assert!(dx.iter().all(|&v| v == 9.0), "dx written");
    }
    net.backward(x.view(), dyhat.view()).unwrap();
    assert_eq!(snap(&net), before);
}

#[test]
fn dx_with_wrong_shape_in_backward_with_dx() {
    let (mut net, x, _, dyhat) = ready();
    let before = snap(&net);
    for actual in [[N, D + 1], [N, D - 1], [N + 1, D], [D, N]] {
        let mut bad = Array2::from_elem((actual[0], actual[1]), 9.0);
        assert_mismatch(
            err(net.backward_with_dx(x.view(), dyhat.view(), bad.view_mut())),
            "dx",
            [N, D],
            actual,
        );
        assert_eq!(snap(&net), before);
        assert!(bad.iter().all(|&v| v == 9.0), "dx written");
    }
    let mut dx = Array2::zeros((N, D));
    net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap();
    assert!(dx.iter().any(|&v| v != 0.0));
}

#[test]
fn empty_batch() {
    let (mut net, _, _, _) = ready();
    let before = snap(&net);
    let x = Array2::<f64>::zeros((0, D));
    let y = Array2::<f64>::zeros((0, K));
    let mut dx = Array2::<f64>::zeros((0, D));
    assert_empty(err(net.forward(x.view())), "x", [0, D]);
    assert_empty(err(net.backward(x.view(), y.view())), "x", [0, D]);
    assert_empty(err(net.backward_with_dx(x.view(), y.view(), dx.view_mut())), "x", [0, D]);
    assert_empty(err(net.train_step(x.view(), y.view(), &Mse, 0.1)), "x", [0, D]);
    assert_empty(err(net.evaluate(x.view(), y.view(), &Mse)), "x", [0, D]);
    assert_empty(err(net.predict(x.view())), "x", [0, D]);
    assert_empty(err(net.accuracy(x.view(), Array1::zeros(0).view())), "x", [0, D]);
    let check = two_layer_net::check_gradients(&net, x.view(), y.view(), &Mse, Default::default());
    assert_empty(err(check), "x", [0, D]);
    assert_eq!(snap(&net), before);
}

#[test]
fn from_params_with_mismatched_shapes() {
    let w1 = Array2::from_elem((D, H), 0.5);
    let b1 = Array1::from_elem(H, 0.1);
    let w2 = Array2::from_elem((H, K), 0.5);
    let b2 = Array1::from_elem(K, 0.1);
    let new = |w1: &Array2<f64>, b1: &Array1<f64>, w2: &Array2<f64>, b2: &Array1<f64>| {
        TwoLayerNet::<f64>::from_params(w1.view(), b1.view(), w2.view(), b2.view())
    };
    for len in [H + 1, H - 1] {
        assert_mismatch(err(new(&w1, &Array1::zeros(len), &w2, &b2)), "b1", [1, H], [1, len]);
    }
    for rows in [H + 1, H - 1] {
        assert_mismatch(err(new(&w1, &b1, &Array2::zeros((rows, K)), &b2)), "w2", [H, K], [rows, K]);
    }
    for len in [K + 1, K - 1] {
        assert_mismatch(err(new(&w1, &b1, &w2, &Array1::zeros(len))), "b2", [1, K], [1, len]);
    }
    // A W2 with other columns fixes K; then b2 is the one that does not fit.
    assert_mismatch(err(new(&w1, &b1, &Array2::zeros((H, K + 1)), &b2)), "b2", [1, K + 1], [1, K]);
    // Zero rows of W1: D = 0.
    assert_empty(err(new(&Array2::zeros((0, H)), &b1, &w2, &b2)), "d", [1, 0]);
    // The good one works, and holds what it was given.
    let net = new(&w1, &b1, &w2, &b2).unwrap();
    assert_eq!((net.input_dim(), net.hidden_dim(), net.output_dim()), (D, H, K));
    assert_eq!(net.w1(), w1);
    assert_eq!(net.b1(), b1);
    assert_eq!(net.w2(), w2);
    assert_eq!(net.b2(), b2);
}

#[test]
fn zero_dimension() {
    let mut rng = StdRng::seed_from_u64(0);
    for (dims, operand) in [((0, H, K), "d"), ((D, 0, K), "h"), ((D, H, 0), "k"), ((0, 0, 0), "d")] {
        let (d, h, k) = dims;
        assert_empty(err(TwoLayerNet::<f64>::new(d, h, k, &mut rng)), operand, [1, 0]);
        assert_empty(err(TwoLayerNet::<f32, Tanh>::new(d, h, k, &mut rng)), operand, [1, 0]);
        assert_empty(err(TwoLayerNet::<f64>::with_init(d, h, k, Init::He, &mut rng)), operand, [1, 0]);
    }
}

#[test]
fn too_large() {
    let mut rng = StdRng::seed_from_u64(0);
    let big = 1usize << 31; // i32::MAX + 1
    for (dims, operand) in [((big, H, K), "d"), ((D, big, K), "h"), ((D, H, big), "k")] {
        let (d, h, k) = dims;
        assert_too_large(err(TwoLayerNet::<f64>::new(d, h, k, &mut rng)), operand, [1, big]);
        assert_too_large(err(TwoLayerNet::<f32>::new(d, h, k, &mut rng)), operand, [1, big]);
    }
    // Each dimension fits BLAS, but D·H + H + H·K + K scalars do not fit in memory (more than
    // isize::MAX bytes, so nothing is allocated).
    let huge = 1usize << 30;
    let len = huge * huge + huge + huge + 1;
    assert_too_large(err(TwoLayerNet::<f64>::new(huge, huge, 1, &mut rng)), "params", [1, len]);

    // A batch of 2³¹ rows, as a broadcast view: nothing of that size is allocated.
    let (mut net, _, _, dyhat) = ready();
    let before = snap(&net);
    let row = Array2::<f64>::zeros((1, D));
    let x = row.broadcast((big, D)).unwrap();
    let yrow = Array2::<f64>::zeros((1, K));
    let y = yrow.broadcast((big, K)).unwrap();
    let mut dx_store = Array2::<f64>::zeros((1, D));
    assert_too_large(err(net.forward(x)), "x", [big, D]);
    assert_too_large(err(net.train_step(x, y, &Mse, 0.1)), "x", [big, D]);
    assert_too_large(err(net.backward(x, y)), "x", [big, D]);
    assert_too_large(err(net.backward_with_dx(x, y, dx_store.view_mut())), "x", [big, D]);
    assert_eq!(snap(&net), before);
    // The net is still usable at its batch size.
    let x = Array2::from_elem((N, D), 0.5);
    net.forward(x.view()).unwrap();
    net.backward(x.view(), dyhat.view()).unwrap();
}

#[test]
fn backward_before_any_forward() {
    let (p, x, _) = problem(2, N, D, H, K, 0.0);
    let mut net = p.net(Relu);
    let before = snap(&net);
    assert_eq!(before.grads, None, "no gradients before a backward");
    let dyhat = Array2::from_elem((N, K), 0.5);
    let mut dx = Array2::from_elem((N, D), 3.0);
    let e = err(net.backward(x.view(), dyhat.view()));
    assert_eq!(e, Error::NoForward { batch: N, cached: None });
    assert_eq!(e.to_string(), format!("backward on a batch of {N} rows before any forward pass"));
    let e = err(net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()));
    assert_eq!(e, Error::NoForward { batch: N, cached: None });
    assert!(dx.iter().all(|&v| v == 3.0));
    assert_eq!(snap(&net), before);
    // with_activation starts without a forward pass, too.
    net.forward(x.view()).unwrap();
    let mut net = net.with_activation(Identity);
    assert_eq!(err(net.backward(x.view(), dyhat.view())), Error::NoForward { batch: N, cached: None });
}

#[test]
fn step_before_any_backward() {
    let (p, x, y) = problem(3, N, D, H, K, 0.0);
    let mut net = p.net(Relu);
    let before = snap(&net);
    let e = err(net.step(0.1));
    assert_eq!(e, Error::NoGradients);
    assert!(e.to_string().contains("no gradients"), "{e}");
    assert_eq!(snap(&net), before);
    // A forward alone gives no gradients either.
    net.forward(x.view()).unwrap();
    assert_eq!(err(net.step(0.1)), Error::NoGradients);
    assert_eq!(snap(&net), before);
    // Nor does a fused train_step (whose gradients are never stored).
    net.train_step(x.view(), y.view(), &Mse, 0.1).unwrap();
    let after = bits(net.params().as_slice());
    assert_ne!(after, before.params, "train_step moved the parameters");
    assert_eq!(err(net.step(0.1)), Error::NoGradients);
    assert_eq!(bits(net.params().as_slice()), after);
}

#[test]
fn non_finite_learning_rate() {
    let (mut net, x, y, _) = ready();
    let before = snap(&net);
    for lr in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let e = err(net.step(lr));
        assert_eq!(e, Error::NonFinite { what: "lr" }, "lr {lr}");
        assert_eq!(e.to_string(), "lr is not finite");
        assert_eq!(snap(&net), before);
        assert_eq!(err(net.train_step(x.view(), y.view(), &Mse, lr)), Error::NonFinite { what: "lr" });
        assert_eq!(snap(&net), before);
    }
    // Also before any backward: the learning rate is checked first.
    let (p, _, _) = problem(4, N, D, H, K, 0.0);
    let mut fresh = p.net(Relu);
    assert_eq!(err(fresh.step(f64::NAN)), Error::NonFinite { what: "lr" });
    let mut f32net = p.net_f32(Relu);
    assert_eq!(err(f32net.step(f32::NAN)), Error::NonFinite { what: "lr" });
    // The gradients of `ready` are still there to apply.
    net.step(0.1).unwrap();
    assert_ne!(snap(&net).params, before.params);
}

/// One train_step on `x` with `x[1, 2] = v`, and one on `y` with `y[3, 0] = v`, each of which
/// must be `NonFinite { what: "loss" }` and leave the net as it was.
fn non_finite_loss<A: Activation>(act: A, x_values: &[f64], y_values: &[f64]) {
    let (mut net, x, y, _) = ready_as(act);
    let before = snap(&net);
    for &v in x_values {
        let mut bad_x = x.clone();
        bad_x[[1, 2]] = v;
        let e = err(net.train_step(bad_x.view(), y.view(), &Mse, 0.1));
        // A non-finite x is caught in Y1 = X·W1 + b1; a huge finite one overflows the loss.
        let what = if v.is_finite() { "loss" } else { "y1" };
        assert_eq!(e, Error::NonFinite { what }, "{}: x entry {v}", A::NAME);
        assert_eq!(e.to_string(), format!("{what} is not finite"));
        assert_eq!(snap(&net), before);
    }
    for &v in y_values {
        let mut bad_y = y.clone();
        bad_y[[3, 0]] = v;
        let e = err(net.train_step(x.view(), bad_y.view(), &Mse, 0.1));
        assert_eq!(e, Error::NonFinite { what: "loss" }, "{}: y entry {v}", A::NAME);
        assert_eq!(snap(&net), before);
    }
    // The same batch without the bad entry trains.
    net.train_step(x.view(), y.view(), &Mse, 0.1).unwrap();
    assert_ne!(snap(&net).params, before.params);
}

#[test]
fn nan_in_data_makes_the_step_refuse() {
    let all = [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 1e300];
    non_finite_loss(Relu, &all, &all);
    non_finite_loss(Tanh, &[f64::NAN, f64::INFINITY, f64::NEG_INFINITY], &all);
    non_finite_loss(Identity, &all, &all);
    non_finite_loss(LeakyRelu::default(), &all, &all);
}

/// Regression: ReLU once mapped NaN to 0, so a NaN in x gave a finite loss and `train_step`
/// returned `Ok`, while `dW1 = Xᵀ·dY1` had `NaN·0 = NaN` and wrote NaN into a row of W1.
#[test]
fn relu_nan_in_x_does_not_corrupt_the_parameters() {
    let (mut net, x, y, _) = ready();
    let mut bad_x = x.clone();
    bad_x[[1, 2]] = f64::NAN;
    let r = net.train_step(bad_x.view(), y.view(), &Mse, 0.1);
    assert!(
        r.is_err() || net.params().as_slice().iter().all(|v| v.is_finite()),
        "train_step returned {r:?} and left non-finite parameters: {:?}",
        net.params().as_slice()
    );
}

/// Regression: a `train_step` whose loss rejects `y` must leave everything as it was, the
/// cached forward pass and the last backward's gradients included (it once cleared both before
/// the loss looked at `y`).
#[test]
fn failed_train_step_leaves_the_state_as_it_was() {
    let (mut net, x, _, dyhat) = ready();
    let before = snap(&net);
    let bad_y = Array2::<f64>::zeros((N, K + 1));
    assert!(net.train_step(x.view(), bad_y.view(), &Mse, 0.1).is_err());
    assert_eq!(snap(&net), before);
    assert_eq!(net.clone().step(0.1), Ok(()), "the gradients of the last backward are gone");
    assert!(net.backward(x.view(), dyhat.view()).is_ok(), "the forward pass is gone");
}

/// Everything a net computes from (`x`, `y`, `dŷ`) with `dX` written into `dx`: ŷ, the
/// gradients, dX, the params after `step`, and the train_step loss and params.
fn run(
    net: &mut TwoLayerNet<f64, Tanh>,
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    dyhat: ArrayView2<'_, f64>,
    mut dx: ArrayViewMut2<'_, f64>,
) -> Vec<Vec<f64>> {
    let yhat = net.forward(x).unwrap().iter().copied().collect();
    let g = net.backward_with_dx(x, dyhat, dx.view_mut()).unwrap().as_slice().to_vec();
    let dxv = dx.iter().copied().collect();
    net.step(0.05).unwrap();
    let stepped = net.params().as_slice().to_vec();
    let l = net.train_step(x, y, &Mse, 0.05).unwrap();
    vec![yhat, g, dxv, stepped, vec![l], net.params().as_slice().to_vec()]
}

/// A row-major copy (`to_owned` would keep a transposed view column-major).
fn standard(v: ArrayView2<'_, f64>) -> Array2<f64> {
    v.as_standard_layout().into_owned()
}

/// Views of the same N×D matrix `a` in other layouts, each with the storage it borrows.
/// How to view a storage as the N×D matrix it holds.
type ViewFn = for<'a> fn(&'a Array2<f64>) -> ArrayView2<'a, f64>;

fn layouts(a: &Array2<f64>) -> Vec<(&'static str, Array2<f64>, ViewFn)> {
    let (n, d) = a.dim();
    let mut rows2 = Array2::from_elem((2 * n, d), f64::NAN);
    rows2.slice_mut(s![..;2, ..]).assign(a);
    let mut cols2 = Array2::from_elem((n, 2 * d), f64::NAN);
    cols2.slice_mut(s![.., ..;2]).assign(a);
    vec![
        ("transposed (column-major)", standard(a.t()), |s| s.t()),
        ("every 2nd row", rows2, |s| s.slice(s![..;2, ..])),
        ("every 2nd column", cols2, |s| s.slice(s![.., ..;2])),
        ("reversed rows", standard(a.slice(s![..;-1, ..])), |s| s.slice(s![..;-1, ..])),
        ("reversed columns", standard(a.slice(s![.., ..;-1])), |s| s.slice(s![.., ..;-1])),
        ("reversed both", standard(a.slice(s![..;-1, ..;-1])), |s| s.slice(s![..;-1, ..;-1])),
    ]
}

/// x, y and dŷ as non-contiguous views (transposed, strided, reversed) and dX written through
/// such views give what contiguous copies give.
#[test]
fn non_contiguous_inputs_match_contiguous_copies() {
    for (seed, (n, d, h, k)) in [(2, 3, 4, 2), (9, 6, 8, 3), (1, 4, 3, 2)].into_iter().enumerate() {
        let (p, x, y) = problem(50 + seed as u64, n, d, h, k, 1e-6);
        let mut rng = StdRng::seed_from_u64(60 + seed as u64);
        let dyhat = uniform(&mut rng, n, k, 1.0);
        let mut dx = Array2::zeros((n, d));
        let expected = run(&mut p.net(Tanh), x.view(), y.view(), dyhat.view(), dx.view_mut());

        let (xs, ys, ds) = (layouts(&x), layouts(&y), layouts(&dyhat));
        for ((xl, yl), dl) in xs.iter().zip(&ys).zip(&ds) {
            let (xv, yv, dv) = ((xl.2)(&xl.1), (yl.2)(&yl.1), (dl.2)(&dl.1));
            assert_eq!((xv, yv, dv), (x.view(), y.view(), dyhat.view()), "{}: same values", xl.0);
            if n > 1 {
                assert!(!xv.is_standard_layout(), "{}: x is contiguous: {:?}", xl.0, xv.strides());
                assert!(!dv.is_standard_layout(), "{}: dŷ is contiguous: {:?}", xl.0, dv.strides());
            }
            // dX through a column-major view, and through a reversed one.
            let mut dx_t = Array2::zeros((d, n));
            let mut dx_r = Array2::zeros((n, d));
            let what = format!("{n}x{d}x{h}x{k}, {}", xl.0);
            let got = run(&mut p.net(Tanh), xv, yv, dv, dx_t.view_mut().reversed_axes());
            for (i, (a, e)) in got.iter().zip(&expected).enumerate() {
                assert_close(a, e, 1e-12, &format!("{what} (dX transposed): quantity {i}"));
            }
            let got = run(&mut p.net(Tanh), xv, yv, dv, dx_r.slice_mut(s![..;-1, ..]));
            for (i, (a, e)) in got.iter().zip(&expected).enumerate() {
                assert_close(a, e, 1e-12, &format!("{what} (dX reversed): quantity {i}"));
            }
            assert_close2(dx_t.t(), dx.view(), 1e-12, &format!("{what}: dX storage (transposed)"));
            assert_close2(
                dx_r.slice(s![..;-1, ..]),
                dx.view(),
                1e-12,
                &format!("{what}: dX storage (reversed)"),
            );
        }
    }
    // A hand-checked case: the same batch as a transposed view, the rows reversed.
    let x = array![[1.0, 2.0], [3.0, 4.0]];
    let xt = x.t().to_owned();
    let mut net = TwoLayerNet::<f64>::from_params(
        array![[1.0, 3.0], [0.0, 1.0]].view(),
        array![0.0, 0.0].view(),
        array![[1.0], [-1.0]].view(),
        array![0.5].view(),
    )
    .unwrap();
    // ŷ = relu(x·W1)·[1, −1]ᵀ + 0.5: rows [1, 5] → −3.5, [3, 13] → −9.5.
    assert_eq!(net.forward(xt.t()).unwrap(), array![[-3.5], [-9.5]]);
    assert_eq!(net.forward(x.slice(s![..;-1, ..])).unwrap(), array![[-9.5], [-3.5]]);
}

/// The losses refuse a batch of no rows (their mean over N would be NaN) or no columns, from
/// `loss_and_grad` and `check_target` alike, and write nothing.
#[test]
fn losses_refuse_an_empty_batch() {
    for shape in [[0, K], [N, 0], [0, 0]] {
        let yhat = Array2::<f64>::zeros((shape[0], shape[1]));
        // A dŷ with room to write into: the empty batch is refused before its shape is checked.
        let mut dyhat = Array2::<f64>::from_elem((N, K), 7.0);
        let labels = Array1::<usize>::zeros(shape[0]);
        assert_empty(err(Mse.loss_and_grad(yhat.view(), yhat.view(), dyhat.view_mut())), "yhat", shape);
        assert_empty(err(Loss::<f64>::check_target(&Mse, shape, yhat.view())), "yhat", shape);
        assert_empty(
            err(SoftmaxCrossEntropy.loss_and_grad(yhat.view(), labels.view(), dyhat.view_mut())),
            "yhat",
            shape,
        );
        assert_empty(
            err(Loss::<f64>::check_target(&SoftmaxCrossEntropy, shape, labels.view())),
            "yhat",
            shape,
        );
        let l2 = L2::new(Mse, 0.1);
        assert_empty(err(l2.loss_and_grad(yhat.view(), yhat.view(), dyhat.view_mut())), "yhat", shape);
        assert!(dyhat.iter().all(|&v| v == 7.0), "dyhat written");
    }
}
