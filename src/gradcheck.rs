//! A gradient checker: central finite differences of the loss against the analytic gradients
//! of [`TwoLayerNet::backward_with_dx`], over every parameter and every input.
//!
//! Run it on your own [`Activation`] or [`Loss`] before you trust them. Use `f64`: in `f32`
//! the differences lose most of their digits.

use ndarray::{Array2, ArrayView2};

use crate::activation::Activation;
use crate::error::Result;
use crate::loss::Loss;
use crate::net::TwoLayerNet;
use crate::scalar::Scalar;

/// Settings of [`check_gradients`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheck {
    /// The step `ε` of the central difference `(L(θ+ε) − L(θ−ε)) / 2ε`.
    pub eps: f64,
    /// Smallest denominator of the relative error, so that two gradients that are both
    /// (nearly) zero do not count as far apart.
    pub floor: f64,
}

impl Default for GradCheck {
    /// `eps = 1e-5` (near the optimum `ε ≈ ∛(machine ε)` for central differences in f64), `floor = 1e-8`: right for `f64` with inputs and weights of order 1.
    fn default() -> Self {
        GradCheck { eps: 1e-5, floor: 1e-8 }
    }
}

/// Where the largest disagreement was, and how large.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    /// `max |a − n| / max(|a| + |n|, floor)` over all checked entries, `a` analytic, `n`
    /// numeric.
    pub max_rel_error: f64,
    /// The tensor of the worst entry (`"w1"`, `"b1"`, `"w2"`, `"b2"` or `"x"`) and its
    /// `(row, col)`.
    pub worst: (&'static str, usize, usize),
    /// The analytic gradient at the worst entry.
    pub analytic: f64,
    /// The numeric gradient at the worst entry.
    pub numeric: f64,
    /// The largest relative error of each tensor: `w1`, `b1`, `w2`, `b2`, `x`.
    pub per_tensor: [(&'static str, f64); 5],
    /// How many entries were compared.
    pub checked: usize,
}

/// Compares the analytic gradients of `loss(net(x), target)` with central finite differences,
/// for every parameter of `net` and every entry of `x`. `net` itself is not changed.
///
/// ```
/// use ndarray::Array2;
/// use rand::{SeedableRng, rngs::StdRng};
/// use two_layer_net::{check_gradients, GradCheck, Mse, Tanh, TwoLayerNet};
///
/// let mut rng = StdRng::seed_from_u64(1);
/// let net = TwoLayerNet::<f64, Tanh>::new(3, 5, 2, &mut rng)?;
/// let x = Array2::from_shape_fn((4, 3), |(i, j)| (i as f64 - j as f64) * 0.3);
/// let y = Array2::from_shape_fn((4, 2), |(i, j)| (i * j) as f64 * 0.1);
/// let report = check_gradients(&net, x.view(), y.view(), &Mse, GradCheck::default())?;
/// assert!(report.max_rel_error < 1e-6, "{report:?}");
/// # Ok::<(), two_layer_net::Error>(())
/// ```
pub fn check_gradients<F: Scalar, A: Activation, L: Loss<F>>(
    net: &TwoLayerNet<F, A>,
    x: ArrayView2<'_, F>,
    target: L::Target<'_>,
    loss: &L,
    opts: GradCheck,
) -> Result<GradCheckReport> {
    let mut net = net.clone();
    let (n, d, k) = (x.nrows(), net.input_dim(), net.output_dim());
    let mut x = x.to_owned();
    let mut dyhat = Array2::zeros((n, k));
    let mut dx = Array2::zeros((n, d));

    let yhat = net.forward(x.view())?;
    loss.loss_and_grad(yhat, target, dyhat.view_mut())?;
    let grads = net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut())?.clone();

    let mut eval = |net: &mut TwoLayerNet<F, A>, x: ArrayView2<'_, F>| -> Result<f64> {
        let yhat = net.forward(x)?;
        Ok(loss.loss_and_grad(yhat, target, dyhat.view_mut())?.as_f64())
    };
    let eps = F::cast(opts.eps);
    let mut report = GradCheckReport {
        max_rel_error: 0.0,
        worst: ("w1", 0, 0),
        analytic: 0.0,
        numeric: 0.0,
        per_tensor: [("w1", 0.0), ("b1", 0.0), ("w2", 0.0), ("b2", 0.0), ("x", 0.0)],
        checked: 0,
    };
    let mut record = |at: (&'static str, usize, usize), a: f64, num: f64| {
        let rel = (a - num).abs() / (a.abs() + num.abs()).max(opts.floor);
        let rel = if rel.is_nan() { f64::INFINITY } else { rel };
        if let Some(t) = report.per_tensor.iter_mut().find(|t| t.0 == at.0) {
            t.1 = t.1.max(rel);
        }
        if rel >= report.max_rel_error {
            (report.max_rel_error, report.worst, report.analytic, report.numeric) = (rel, at, a, num);
        }
        report.checked += 1;
    };

    for i in 0..grads.len() {
        let theta = net.params().as_slice()[i];
        let (up, down) = (theta + eps, theta - eps);
        net.params_mut().as_slice_mut()[i] = up;
        let l_up = eval(&mut net, x.view())?;
        net.params_mut().as_slice_mut()[i] = down;
        let l_down = eval(&mut net, x.view())?;
        net.params_mut().as_slice_mut()[i] = theta;
        let at = grads.locate(i).unwrap_or(("w1", 0, 0));
        record(at, grads.as_slice()[i].as_f64(), (l_up - l_down) / (up - down).as_f64());
    }
    for r in 0..n {
        for c in 0..d {
            let v = x[[r, c]];
            let (up, down) = (v + eps, v - eps);
            x[[r, c]] = up;
            let l_up = eval(&mut net, x.view())?;
            x[[r, c]] = down;
            let l_down = eval(&mut net, x.view())?;
            x[[r, c]] = v;
            record(("x", r, c), dx[[r, c]].as_f64(), (l_up - l_down) / (up - down).as_f64());
        }
    }
    Ok(report)
}
