//! The fused SGD step: backward and `θ ← θ − lr·dθ` in the same GEMMs, never storing the
//! weight gradients, with the proof that its update cannot overflow beside it.

use ndarray::ArrayView2;

use super::{TwoLayerNet, activation_backward};
use crate::activation::Activation;
use crate::blas::{Mat, MatMut, Operand, gemm_mat};
use crate::error::{Error, Result};
use crate::kernels::{MaxAbs, bias_backward, max_abs};
use crate::loss::Loss;
use crate::optim::{Optimizer, Sgd, Slot};
use crate::params::Params;
use crate::scalar::Scalar;
use crate::workspace::mat;

impl<F: Scalar, A: Activation> TwoLayerNet<F, A> {
    /// One training step with plain SGD at learning rate `lr`: the same result as
    /// [`train_step_with`](Self::train_step_with)`(x, target, loss, &mut Sgd::new(lr))` up to
    /// rounding, in five GEMMs and a few passes over the batch.
    ///
    /// Where it pays (small batches beside wide layers: see `fusion_pays` in the source),
    /// backward and update are fused: the two weight-gradient GEMMs write
    /// `W ← (1 − lr·reg)·W − lr·Aᵀ·B` straight into the weights (the L2 penalty's `reg·W`
    /// folded into β), never storing the weight gradients; elsewhere the step takes the four
    /// phases, bit for bit `train_step_with`. Either way [`gradients`](Self::gradients) is
    /// [`Error::NoGradients`] after this step.
    ///
    /// Errors and guarantees as for `train_step_with`: a non-finite input, loss, gradient or
    /// `lr`, or an update that would overflow, is refused before any parameter changes.
    pub fn train_step<L: Loss<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        lr: F,
    ) -> Result<F> {
        if !lr.is_finite() {
            return Err(Error::NonFinite { what: "lr" });
        }
        let l = self.forward_loss(x, target, loss)? + self.penalty(loss);
        if !l.is_finite() {
            return Err(Error::NonFinite { what: "loss" });
        }
        let (n, (d, h, k), reg) = (x.nrows(), self.params.dims(), loss.l2());
        if fusion_pays(n, d, h, k) {
            let buf = self.ws.rows(n, h, k);
            let (a, y1, h1, dyhat) = (&self.activation, &*buf.y1, &*buf.h1, mat(buf.dyhat, n, k));
            let (p, w_bound) = (&mut self.params, &mut self.w_bound);
            let fused =
                backward_sgd_pass(p, w_bound, a, x, y1, h1, dyhat, buf.dy1, buf.db1, buf.db2, lr, reg)?;
            if fused {
                self.ws.cached = None;
                self.grads_ready = false;
                return Ok(l);
            }
        }
        // Fusion does not pay at this shape, or its overflow proof could not clear the
        // update: the four phases' backward and update, which store the gradients and check
        // them and the update.
        self.backward_loss(x)?;
        self.add_penalty_gradient(loss);
        self.step_with(&mut Sgd::new(lr))?;
        self.grads_ready = false;
        Ok(l)
    }
}

/// Whether fusing backward and update pays at this shape: the fused step's overflow proof
/// reads `X`, `dY1`, `H1` and `dŷ` once more for their maxima, `N·(D + 2·H + K)` scalars,
/// where the four phases store `dW1`, `dW2` and read them back in the update's check and
/// write passes, about `UPDATE_PASSES·(D·H + H·K)`. So fusion wins at small batches and wide
/// layers (N = 2 on the note's 3→4→2 net, N ≤ 1024 at 784→256→10, every batch at
/// 1024→4096→1024) and loses where the batch is long beside the weights (N ≥ 64 at 3→4→2,
/// N = 2048 at 784→256→10).
pub(super) fn fusion_pays(n: usize, d: usize, h: usize, k: usize) -> bool {
    // Saturating: the sizes are only compared.
    let maxima = n.saturating_mul(d + 2 * h + k);
    maxima <= UPDATE_PASSES.saturating_mul(d * h + h * k)
}

/// The update's extra passes over the weight gradients, in units of one read of a scalar,
/// for [`fusion_pays`]. Set from interleaved `step_timing` runs on a 2-core AMD EPYC
/// (OpenBLAS 0.3.21, Haswell kernels; µs, four phases / fused): 2048×784→256→10
/// 11,294/13,491, 1024×784→256→10 5,871/6,459, 16384×3→4→2 285/302, against 32×784→256→10
/// 584/319 and 64×1024→4096→1024 30,296/18,042, with 256×784→256→10 a tie (1,425/1,395).
const UPDATE_PASSES: usize = 5;

/// Backward fused with SGD, never storing the weight gradients:
/// `dH1 = dŷ·W2ᵀ` (old `W2`), `dY1 = dH1 ⊙ f'(Y1)`, `db1 = Σ_rows dY1`, `db2 = Σ_rows dŷ`;
/// then, only if `db1` and `db2` are finite (which they are exactly when every `dY1` and `dŷ`
/// is, short of overflow in the sums), `W2 ← (1 − lr·reg)·W2 − lr·H1ᵀ·dŷ`, `b2 ← b2 − lr·db2`,
/// `W1 ← (1 − lr·reg)·W1 − lr·Xᵀ·dY1`, `b1 ← b1 − lr·db1`.
///
/// The weight gradients are never seen, so before writing, [`fused_update_bound`] proves from
/// `max|X|`, `max|dY1|`, `max|H1|`, `max|dŷ|` and `w_bound` (≥ `max|W|`) that neither GEMM
/// can overflow. Returns `Ok(false)`, with nothing written, when it cannot (the caller then
/// takes the unfused path); otherwise updates and leaves in `w_bound` a bound on the new
/// weights. `dy1` (N×H), `db1` (H) and `db2` (K) are scratch.
#[allow(clippy::too_many_arguments)]
fn backward_sgd_pass<F: Scalar, A: Activation>(
    p: &mut Params<F>,
    w_bound: &mut Option<F>,
    f: &A,
    x: ArrayView2<'_, F>,
    y1: &[F],
    h1: &[F],
    dyhat: ArrayView2<'_, F>,
    dy1: &mut [F],
    db1: &mut [F],
    db2: &mut [F],
    lr: F,
    reg: F,
) -> Result<bool> {
    let (n, (d, h, k)) = (x.nrows(), p.dims());
    let mut maxima = [MaxAbs::new(), MaxAbs::new()];
    let dyhat_m = Operand::new("dyhat", dyhat)?;
    let w2 = Mat::rows(p.parts()[2], h, k);
    gemm_mat(F::one(), dyhat_m.mat(), w2.t(), F::zero(), MatMut::rows(dy1, n, h))?;
    activation_backward(f, y1, h1, dy1, db1, Some(&mut maxima));
    bias_backward(dyhat, db2);
    if !db1.iter().chain(&*db2).all(|v| v.is_finite()) {
        return Err(Error::NonFinite { what: "gradient" });
    }
    let [dy1_max, h1_max] = maxima.map(|m| m.get());
    let (x_max, dyhat_max) = (view_max_abs(x), view_max_abs(dyhat));
    let bound = |w_max| {
        let w1_new = fused_update_bound(n, w_max, lr, reg, x_max, dy1_max)?;
        let w2_new = fused_update_bound(n, w_max, lr, reg, h1_max, dyhat_max)?;
        Some(w1_new.max(w2_new))
    };
    // A carried bound only ever grows; when it no longer clears the update, the true max may.
    let new_bound = match w_bound.and_then(bound) {
        Some(b) => b,
        None => match bound(weights_max(p)) {
            Some(b) => b,
            None => return Ok(false),
        },
    };
    let [w1, b1, w2, b2] = p.parts_mut();
    Sgd::new(lr).step(&mut [Slot::new(b1, db1), Slot::new(b2, db2)])?;
    let decay = F::one() - lr * reg;
    let (x, h1, dy1) = (Operand::new("x", x)?, Mat::rows(h1, n, h), Mat::rows(dy1, n, h));
    gemm_mat(-lr, h1.t(), dyhat_m.mat(), decay, MatMut::rows(w2, h, k))?;
    gemm_mat(-lr, x.mat().t(), dy1, decay, MatMut::rows(w1, d, h))?;
    *w_bound = Some(new_bound);
    Ok(true)
}

/// `max|v|` over a view of any layout.
fn view_max_abs<F: Scalar>(v: ArrayView2<'_, F>) -> F {
    match v.as_slice_memory_order() {
        Some(s) => max_abs(s),
        None => v.fold(F::zero(), |m, &e| m.max(e.abs())),
    }
}

/// `max|w|` over `W1` and `W2`.
pub(super) fn weights_max<F: Scalar>(p: &Params<F>) -> F {
    let [w1, _, w2, _] = p.parts();
    max_abs(w1).max(max_abs(w2))
}

/// A bound on `|w|` after `W ← (1 − lr·reg)·W − lr·Aᵀ·B` for `A`, `B` with `n` rows,
/// `|w| ≤ w_max`, `|a| ≤ a_max`, `|b| ≤ b_max`, valid whatever order BLAS sums in; `None`
/// unless both that bound and the bound on the gradient itself, `dW = Aᵀ·B + reg·W`, are at
/// most half of `F::MAX`. So when it clears a step, no entry of the fused update overflows,
/// and (for weights below `MAX/2`) the unfused path would have found a finite gradient and a
/// finite update too: the two paths refuse the same steps.
///
/// Exactly, `|(AᵀB)ᵢⱼ| ≤ n·a_max·b_max`. A computed sum of `n` products, with the α and β
/// scalings, is off by a factor at most `1 + γ`, `γ ≤ (n + 3)·ε` (Higham, *Accuracy and
/// Stability*, §3.1, for `n·ε ≤ 1/4`), and the bounds themselves by a few more ε: so a bound
/// `t ≤ MAX/2` keeps every entry finite, and `t·(1 + (n + 16)·ε)` bounds every new `|w|`.
pub(super) fn fused_update_bound<F: Scalar>(
    n: usize,
    w_max: F,
    lr: F,
    reg: F,
    a_max: F,
    b_max: F,
) -> Option<F> {
    let (n, eps, half_max) = (F::cast(n as f64), F::epsilon(), F::max_value() * F::cast(0.5));
    if n * eps > F::cast(0.25) {
        return None;
    }
    let product = n * a_max * b_max;
    let gradient = product + reg.abs() * w_max;
    let t = (F::one() - lr * reg).abs() * w_max + lr.abs() * product;
    (gradient <= half_max && t <= half_max).then(|| t * (F::one() + (n + F::cast(16.0)) * eps))
}
