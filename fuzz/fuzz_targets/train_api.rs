//! The public training API with arbitrary shapes and values: a network of arbitrary dimensions
//! (0 included), scalar type and activation, then a sequence of calls (`forward`,
//! `forward_checked`, `backward`, `backward_with_dx`, `step`, `step_with`, `train_step`,
//! `train_step_with` with SGD, momentum, Adam and AdamW, MSE, softmax cross-entropy and L2) on
//! batches of arbitrary shapes (mismatched ones included), layouts (transposed, reversed,
//! broadcast) and values (NaN, ±∞, 1e30, denormals, any bit pattern).
//!
//! Checked: nothing panics or aborts; a call that returns an error leaves the parameters
//! bitwise as they were; `forward`, `backward` and failed calls never change the parameters;
//! returned shapes and losses are what the API says; `forward_checked` fails exactly when
//! `forward`'s output is not finite; a shape error is reported for a mismatched `x`.
//!
//! It also checks that fused SGD (`train_step`) refuses a step exactly when the same step
//! through the unfused path (SGD as a generic optimizer, whose gradients are checked) does, and
//! that a training step with a non-finite learning rate is refused for every optimizer (two
//! findings of this target, now fixed; see fuzz/README.md).
//!
//! Input format (one byte per field, missing bytes read as 0): see `run`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use two_layer_net::ndarray::{Array1, Array2, ArrayView2, s};
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{
    Activation, Adam, AdamW, Error, Identity, L2, LeakyRelu, Momentum, Mse, Optimizer, Params, Relu, Scalar,
    Sgd, Sigmoid, SoftmaxCrossEntropy, Tanh, TwoLayerNet,
};

#[path = "../common/bytes.rs"]
mod bytes;
use bytes::Bytes;

impl Bytes<'_> {
    fn done(&self) -> bool {
        self.0.is_empty()
    }
    /// A value: mostly small, else one of the hostile ones, or any bit pattern.
    fn value<F: Scalar>(&mut self) -> F {
        let b = self.u8();
        let v = match b {
            0..=199 => (f64::from(b) - 100.0) / 25.0,
            200 => f64::NAN,
            201 => f64::INFINITY,
            202 => f64::NEG_INFINITY,
            203 => 1e30,
            204 => -1e30,
            205 => return F::min_positive_value() / F::cast(16.0), // a denormal of F
            206 => -0.0,
            207 => return F::max_value(),
            208 => return F::min_positive_value(),
            209 => 1e18,
            210 => 1e-10,
            211 => 1e300,
            212 => -1e-30,
            213 => 3.0e38,
            _ => {
                let raw: [u8; 8] = std::array::from_fn(|_| self.u8());
                if b.is_multiple_of(2) {
                    f64::from_le_bytes(raw)
                } else {
                    f64::from(f32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]))
                }
            }
        };
        F::cast(v)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let flags = b.u8();
    let f32 = flags & 1 == 1;
    match (flags >> 1) % 5 {
        0 => dispatch(f32, Relu, &mut b),
        1 => {
            let slope = [0.01, 0.1, 0.0, -1.0, 1.0, 1e30, f64::NAN, 2.5][b.below(8)];
            dispatch(f32, LeakyRelu { slope }, &mut b)
        }
        2 => dispatch(f32, Sigmoid, &mut b),
        3 => dispatch(f32, Tanh, &mut b),
        _ => dispatch(f32, Identity, &mut b),
    }
});

fn dispatch<A: Activation>(f32: bool, act: A, b: &mut Bytes<'_>) {
    if f32 { run::<f32, A>(act, b) } else { run::<f64, A>(act, b) }
}

fn bits<F: Scalar>(p: &Params<F>) -> Vec<u64> {
    p.as_slice().iter().map(|v| v.as_f64().to_bits()).collect()
}

/// A matrix for a network with input dim `d` and output dim `k` at batch `n`: mostly the
/// shape asked for, sometimes another; in one of several layouts; values from the input.
fn matrix<F: Scalar>(b: &mut Bytes<'_>, rows: usize, cols: usize) -> Array2<F> {
    let (rows, cols) = match b.below(8) {
        0 => (b.below(5), b.below(5)),
        1 => (rows, b.below(5)),
        2 => (b.below(5), cols),
        _ => (rows, cols),
    };
    Array2::from_shape_simple_fn((rows, cols), || b.value())
}

/// How a matrix is handed over: as is, as a transposed copy's `.t()` (column-major), reversed
/// rows, every other row of a larger array, or a broadcast of its first row.
fn with_layout<F: Scalar, R>(layout: u8, m: &Array2<F>, f: impl FnOnce(ArrayView2<'_, F>) -> R) -> R {
    match layout % 6 {
        0 => {
            let t = m.t().to_owned();
            f(t.t())
        }
        1 => f(m.slice(s![..;-1, ..])),
        2 => {
            let mut big = Array2::<F>::from_elem((2 * m.nrows(), m.ncols()), F::cast(99.0));
            big.slice_mut(s![..;2, ..]).assign(m);
            f(big.slice(s![..;2, ..]))
        }
        3 if m.nrows() > 0 => f(m.slice(s![..1, ..]).broadcast(m.dim()).unwrap()),
        _ => f(m.view()),
    }
}

/// Labels for softmax cross-entropy: mostly valid (below k), sometimes not, sometimes of
/// another length.
fn labels(b: &mut Bytes<'_>, n: usize, k: usize) -> Array1<usize> {
    let len = if b.below(8) == 0 { b.below(6) } else { n };
    Array1::from_shape_simple_fn(len, || {
        let v = b.u8();
        if v >= 250 { usize::from(v) } else { usize::from(v) % k.max(1) }
    })
}

/// The optimizers a run uses; their state persists across its calls.
struct Opts<F: Scalar> {
    sgd: Sgd<F>,
    momentum: Momentum<F>,
    adam: Adam<F>,
    adamw: AdamW<F>,
}

fn run<F: Scalar, A: Activation>(act: A, b: &mut Bytes<'_>) {
    let (d, h, k) = (b.below(5), b.below(5), b.below(5));
    let mut net = if b.u8().is_multiple_of(2) {
        match TwoLayerNet::<F>::new(d, h, k, &mut StdRng::seed_from_u64(u64::from(b.u8()))) {
            Ok(net) => net.with_activation(act),
            Err(e) => {
                assert!(d == 0 || h == 0 || k == 0, "new({d}, {h}, {k}) failed: {e:?}");
                assert!(matches!(e, Error::Empty { .. }), "new({d}, {h}, {k}): {e:?}");
                return;
            }
        }
    } else {
        let w1 = Array2::from_shape_simple_fn((d, h), || b.value::<F>());
        let b1 = Array1::from_shape_simple_fn(h, || b.value::<F>());
        let w2 = Array2::from_shape_simple_fn((h, k), || b.value::<F>());
        let b2 = Array1::from_shape_simple_fn(k, || b.value::<F>());
        match TwoLayerNet::<F>::from_params(w1.view(), b1.view(), w2.view(), b2.view()) {
            Ok(net) => net.with_activation(act),
            Err(e) => {
                assert!(d == 0 || h == 0 || k == 0, "from_params({d}, {h}, {k}) failed: {e:?}");
                return;
            }
        }
    };
    let lr0 = b.value::<F>();
    let mut opts = Opts {
        sgd: Sgd::new(lr0),
        momentum: Momentum::new(lr0, F::cast(0.9)),
        adam: Adam::new(lr0),
        adamw: AdamW::new(lr0, F::cast(0.01)),
    };
    for _ in 0..16 {
        if b.done() {
            break;
        }
        op(&mut net, &mut opts, b, (d, h, k));
    }
}

fn op<F: Scalar, A: Activation>(
    net: &mut TwoLayerNet<F, A>,
    opts: &mut Opts<F>,
    b: &mut Bytes<'_>,
    (d, _h, k): (usize, usize, usize),
) {
    let before = bits(net.params());
    let n = b.below(6);
    let code = b.below(12);
    let x = matrix::<F>(b, n, d);
    let x_ok = x.ncols() == d;
    // Whether the call may change the parameters, and its result as Ok(()) / Err.
    let (may_change, result): (bool, Result<(), Error>) = match code {
        0 => {
            let r = with_layout(b.u8(), &x, |xv| net.forward(xv).map(|y| y.dim()));
            if let Ok(dim) = r {
                assert_eq!(dim, (x.nrows(), k), "forward output shape");
            }
            (false, r.map(drop))
        }
        1 => {
            let layout = b.u8();
            let r = with_layout(layout, &x, |xv| {
                net.forward_checked(xv).map(|y| y.iter().all(|v| v.is_finite()))
            });
            match &r {
                Ok(finite) => assert!(finite, "forward_checked returned a non-finite output"),
                Err(Error::NonFinite { what: "yhat" }) => {
                    let plain = with_layout(layout, &x, |xv| {
                        net.forward(xv).map(|y| y.iter().all(|v| v.is_finite()))
                    });
                    assert_eq!(plain, Ok(false), "forward_checked said NonFinite, forward gives {plain:?}");
                }
                Err(_) => {}
            }
            (false, r.map(drop))
        }
        2 | 3 => {
            let dyhat = matrix::<F>(b, x.nrows(), k);
            let r = if code == 2 {
                with_layout(b.u8(), &x, |xv| net.backward(xv, dyhat.view()).map(drop))
            } else {
                let mut dx = Array2::<F>::from_elem(
                    if b.below(4) == 0 { (b.below(5), d) } else { x.dim() },
                    F::cast(5.0),
                );
                let dx_before = dx.clone();
                let r = with_layout(b.u8(), &x, |xv| {
                    net.backward_with_dx(xv, dyhat.view(), dx.view_mut()).map(drop)
                });
                if r.is_err() {
                    let same =
                        dx.iter().zip(&dx_before).all(|(p, q)| p.as_f64().to_bits() == q.as_f64().to_bits());
                    assert!(same, "a failed backward_with_dx wrote dx");
                }
                r
            };
            (false, r)
        }
        4 => (true, net.step(b.value())),
        5 => (
            true,
            match b.below(4) {
                0 => net.step_with(&mut opts.sgd),
                1 => net.step_with(&mut opts.momentum),
                2 => net.step_with(&mut opts.adam),
                _ => net.step_with(&mut opts.adamw),
            },
        ),
        6..=9 => {
            let lr = b.value::<F>();
            let reg = [0.0, 1e-3, 0.5, f64::NAN, f64::INFINITY, 1e300][b.below(6)];
            let which = b.below(5);
            let mse = code.is_multiple_of(2);
            let y = matrix::<F>(b, x.nrows(), k);
            let lab = labels(b, x.nrows(), k);
            let snapshot = matches!(which, 0 | 4).then(|| net.clone());
            let layout = b.u8();
            let r = with_layout(layout, &x, |xv| {
                train(net, opts, xv, (mse, &y, &lab), code >= 8, reg, which, lr)
            });
            if let Ok(l) = r {
                assert!(l.is_finite(), "train step returned a non-finite loss {l}");
            }
            // A step with a non-finite learning rate is refused, whatever the optimizer.
            let opt_lr = match which {
                1 => opts.momentum.lr,
                2 => opts.adam.lr,
                3 => opts.adamw.adam.lr,
                _ => lr,
            };
            assert!(
                r.is_err() || opt_lr.is_finite(),
                "a training step with learning rate {opt_lr} returned {r:?}; params: {:?}",
                net.params().as_slice()
            );
            // Fused SGD refuses exactly when the unfused path does.
            if let Some(mut twin) = snapshot {
                let mut unfused = Unfused(Sgd::new(lr));
                let r2 = with_layout(layout, &x, |xv| {
                    train_with(&mut twin, &mut unfused, xv, (mse, &y, &lab), code >= 8, reg)
                });
                assert_eq!(
                    r.is_ok(),
                    r2.is_ok(),
                    "fused SGD gave {r:?} but the same step unfused gave {r2:?}; params after the fused step: {:?}",
                    net.params().as_slice()
                );
            }
            (true, r.map(drop))
        }
        10 => {
            // Calls that only read.
            let _ = (
                net.workspace_bytes(),
                net.workspace_rows(),
                net.param_bytes(),
                net.gradients().map(|g| g.len()),
            );
            (false, Ok(()))
        }
        _ => {
            // A predict on a batch of the right width but any values.
            let r = with_layout(b.u8(), &x, |xv| net.predict(xv).map(|y| y.dim()));
            (false, r.map(drop))
        }
    };
    if let Err(e) = &result {
        let _ = e.to_string();
        assert_eq!(
            bits(net.params()),
            before,
            "a call that failed with {e:?} changed the parameters (op {code})"
        );
        if !x_ok && code <= 3 {
            assert!(
                matches!(
                    e,
                    Error::ShapeMismatch { operand: "x", .. } | Error::NoForward { .. } | Error::Empty { .. }
                ),
                "x of width {} on a net of input dim {d}: {e:?}",
                x.ncols()
            );
        }
    } else if !may_change {
        assert_eq!(bits(net.params()), before, "op {code} changed the parameters");
    }
    if !x_ok && code <= 1 {
        assert!(result.is_err(), "forward accepted x of width {} for input dim {d}", x.ncols());
    }
}

/// One training step: `which` picks SGD (fused), momentum, Adam, AdamW or (4) plain `train_step`.
#[allow(clippy::too_many_arguments)]
fn train<F: Scalar, A: Activation>(
    net: &mut TwoLayerNet<F, A>,
    opts: &mut Opts<F>,
    x: ArrayView2<'_, F>,
    target: (bool, &Array2<F>, &Array1<usize>),
    l2: bool,
    reg: f64,
    which: usize,
    lr: F,
) -> Result<F, Error> {
    match which {
        0 => {
            let mut sgd = Sgd::new(lr);
            train_with(net, &mut sgd, x, target, l2, reg)
        }
        1 => train_with(net, &mut opts.momentum, x, target, l2, reg),
        2 => train_with(net, &mut opts.adam, x, target, l2, reg),
        3 => train_with(net, &mut opts.adamw, x, target, l2, reg),
        _ => {
            let (mse, y, lab) = target;
            match (mse, l2) {
                (true, false) => net.train_step(x, y.view(), &Mse, lr),
                (true, true) => net.train_step(x, y.view(), &L2::new(Mse, reg), lr),
                (false, false) => net.train_step(x, lab.view(), &SoftmaxCrossEntropy, lr),
                (false, true) => net.train_step(x, lab.view(), &L2::new(SoftmaxCrossEntropy, reg), lr),
            }
        }
    }
}

fn train_with<F: Scalar, A: Activation, O: Optimizer<F>>(
    net: &mut TwoLayerNet<F, A>,
    opt: &mut O,
    x: ArrayView2<'_, F>,
    (mse, y, lab): (bool, &Array2<F>, &Array1<usize>),
    l2: bool,
    reg: f64,
) -> Result<F, Error> {
    // `opt.train_step` is the optimizer's own step (fused for `Sgd`); the four-phase
    // `train_step_with` is the reference the fused step is checked against.
    match (mse, l2) {
        (true, false) => opt.train_step(net, x, y.view(), &Mse),
        (true, true) => opt.train_step(net, x, y.view(), &L2::new(Mse, reg)),
        (false, false) => opt.train_step(net, x, lab.view(), &SoftmaxCrossEntropy),
        (false, true) => opt.train_step(net, x, lab.view(), &L2::new(SoftmaxCrossEntropy, reg)),
    }
}

/// Four phases, never fused: [`TwoLayerNet::train_step_with`] as an optimizer's step.
struct Unfused<O>(O);

impl<F: Scalar, O: Optimizer<F>> Optimizer<F> for Unfused<O> {
    fn step(&mut self, slots: &mut [two_layer_net::Slot<'_, F>]) -> Result<(), Error> {
        self.0.step(slots)
    }
    fn learning_rate(&self) -> F {
        self.0.learning_rate()
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.0.set_learning_rate(lr);
    }
    fn state(&self) -> two_layer_net::OptimizerState<F> {
        self.0.state()
    }
    fn set_state(&mut self, state: two_layer_net::OptimizerState<F>) -> Result<(), Error> {
        self.0.set_state(state)
    }
}
