//! Losses `L(ŷ, target)` with their gradient `dŷ = ∂L/∂ŷ`.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2, Zip};

use crate::error::{Error, Result, Shape, check_shape};
use crate::params::{Gradients, Params};
use crate::scalar::Scalar;

/// A loss over a batch: the value and `dŷ = ∂L/∂ŷ` in one pass, written into a buffer the
/// caller owns (so a training step allocates nothing).
pub trait Loss<F: Scalar> {
    /// What `ŷ` is compared with: a matrix of targets, or class labels.
    type Target<'a>: Copy;

    /// `L(ŷ, target)`, and `dŷ = ∂L/∂ŷ` written into `dyhat` (the shape of `yhat`).
    ///
    /// Checks every shape before writing anything. Errors (the crate's losses):
    /// [`Error::Empty`] (`"yhat"`) for a batch of no rows or no columns,
    /// [`Error::ShapeMismatch`] for a target or `dyhat` of another shape,
    /// [`Error::InvalidLabel`] for a class label ≥ K.
    fn loss_and_grad(
        &self,
        yhat: ArrayView2<'_, F>,
        target: Self::Target<'_>,
        dyhat: ArrayViewMut2<'_, F>,
    ) -> Result<F>;

    /// Checks that `target` fits predictions of shape `yhat` (`[N, K]`) and is otherwise valid
    /// (e.g. labels below K), without computing anything. Training steps call it before they
    /// touch the network. `loss_and_grad` must check the same itself; the default accepts
    /// everything.
    fn check_target(&self, yhat: Shape, target: Self::Target<'_>) -> Result<()> {
        let _ = (yhat, target);
        Ok(())
    }

    /// The strength `reg` of the L2 penalty `0.5·reg·(ΣW1² + ΣW2²)` (biases excluded) that the
    /// network's training steps add to this loss, and `reg·W` to the weight gradients. Zero
    /// unless the loss is wrapped in [`L2`].
    fn l2(&self) -> F {
        F::zero()
    }
}

/// [`Error::Empty`] (`"yhat"`) for predictions with no rows or no columns: the mean over N
/// rows has no value at N = 0 (it would be NaN).
fn check_nonempty(yhat: Shape) -> Result<()> {
    if yhat.contains(&0) { Err(Error::Empty { operand: "yhat", actual: yhat }) } else { Ok(()) }
}

/// Mean squared error over the batch, summed over outputs:
///
/// `L = (1/N)·Σᵢⱼ (ŷᵢⱼ − yᵢⱼ)²`, `dŷ = (2/N)·(ŷ − y)`, for `ŷ`, `y` of shape N×K.
///
/// The mean is over the N rows only, not over N·K (as in the reference note; PyTorch's
/// `MSELoss` divides by N·K).
///
/// ```
/// use ndarray::{array, Array2};
/// use two_layer_net::{Loss, Mse};
///
/// let yhat = array![[1.0, 2.0], [3.0, 4.0]];
/// let y = array![[0.0, 2.0], [3.0, 2.0]];
/// let mut dyhat = Array2::zeros((2, 2));
/// let l = Mse.loss_and_grad(yhat.view(), y.view(), dyhat.view_mut())?;
/// assert_eq!(l, (1.0 + 4.0) / 2.0);
/// assert_eq!(dyhat, array![[1.0, 0.0], [0.0, 2.0]]);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mse;

impl<F: Scalar> Loss<F> for Mse {
    type Target<'a> = ArrayView2<'a, F>;

    fn check_target(&self, yhat: Shape, y: ArrayView2<'_, F>) -> Result<()> {
        check_nonempty(yhat)?;
        check_shape("y", [y.nrows(), y.ncols()], yhat)
    }

    fn loss_and_grad(
        &self,
        yhat: ArrayView2<'_, F>,
        y: ArrayView2<'_, F>,
        mut dyhat: ArrayViewMut2<'_, F>,
    ) -> Result<F> {
        let shape = [yhat.nrows(), yhat.ncols()];
        Loss::<F>::check_target(self, shape, y)?;
        check_shape("dyhat", [dyhat.nrows(), dyhat.ncols()], shape)?;
        let inv_n = F::one() / F::cast(yhat.nrows() as f64);
        let two_over_n = inv_n + inv_n;
        let sum = match (dyhat.as_slice_mut(), yhat.as_slice(), y.as_slice()) {
            // Contiguous: a few partial sums, so the add chain does not bound the pass.
            (Some(d), Some(p), Some(t)) => {
                let mut acc = [F::zero(); 16];
                for ((d, p), t) in d.chunks_mut(16).zip(p.chunks(16)).zip(t.chunks(16)) {
                    for (((d, &p), &t), a) in d.iter_mut().zip(p).zip(t).zip(acc.iter_mut()) {
                        let r = p - t;
                        *d = two_over_n * r;
                        *a += r * r;
                    }
                }
                acc.into_iter().sum()
            }
            _ => {
                let mut sum = F::zero();
                Zip::from(dyhat).and(yhat).and(y).for_each(|d, &p, &t| {
                    let r = p - t;
                    *d = two_over_n * r;
                    sum += r * r;
                });
                sum
            }
        };
        Ok(sum * inv_n)
    }
}

/// Softmax cross-entropy over K classes, averaged over the batch, with integer class labels:
///
/// `pᵢ = softmax(ŷᵢ)`, `L = −(1/N)·Σᵢ ln pᵢ[labelᵢ]`, `dŷᵢ = (pᵢ − onehot(labelᵢ)) / N`.
///
/// Computed with the row maximum subtracted first, so logits in the thousands neither overflow
/// nor lose the loss (f32 and f64). With K = 1 the loss is 0 and dŷ is 0. A label ≥ K is an
/// [`Error::InvalidLabel`].
///
/// ```
/// use ndarray::{array, Array2};
/// use two_layer_net::{Loss, SoftmaxCrossEntropy};
///
/// let logits = array![[1000.0, 0.0, -1000.0], [0.0, 0.0, 0.0]];
/// let labels = array![0usize, 2];
/// let mut dyhat = Array2::zeros((2, 3));
/// let l = SoftmaxCrossEntropy.loss_and_grad(logits.view(), labels.view(), dyhat.view_mut())?;
/// assert!((l - 3f64.ln() / 2.0).abs() < 1e-12);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SoftmaxCrossEntropy;

impl<F: Scalar> Loss<F> for SoftmaxCrossEntropy {
    type Target<'a> = ArrayView1<'a, usize>;

    fn check_target(&self, [n, k]: Shape, labels: ArrayView1<'_, usize>) -> Result<()> {
        check_nonempty([n, k])?;
        check_shape("labels", [1, labels.len()], [1, n])?;
        match labels.iter().enumerate().find(|&(_, &c)| c >= k) {
            Some((row, &label)) => Err(Error::InvalidLabel { row, label, classes: k }),
            None => Ok(()),
        }
    }

    fn loss_and_grad(
        &self,
        yhat: ArrayView2<'_, F>,
        labels: ArrayView1<'_, usize>,
        mut dyhat: ArrayViewMut2<'_, F>,
    ) -> Result<F> {
        let (n, k) = yhat.dim();
        Loss::<F>::check_target(self, [n, k], labels)?;
        check_shape("dyhat", [dyhat.nrows(), dyhat.ncols()], [n, k])?;
        let inv_n = F::one() / F::cast(n as f64);
        let mut total = F::zero();
        for ((logits, mut d), &c) in yhat.rows().into_iter().zip(dyhat.rows_mut()).zip(labels) {
            let max = logits.fold(F::neg_infinity(), |m, &v| m.max(v));
            let mut sum = F::zero();
            for (d, &v) in d.iter_mut().zip(logits) {
                *d = (v - max).exp();
                sum += *d;
            }
            // −ln p[c] = ln Σ e^(v − max) − (v[c] − max)
            total += sum.ln() - (logits[c] - max);
            let scale = inv_n / sum;
            d.map_inplace(|v| *v *= scale);
            d[c] -= inv_n;
        }
        Ok(total * inv_n)
    }
}

/// A loss plus the L2 penalty `0.5·reg·(ΣW1² + ΣW2²)` on the weights (not the biases), the
/// CS231n convention, whose gradient is `reg·W`.
///
/// The penalty is applied by the network's training steps (`train_step`, `train_step_with`,
/// `fit`), which see the weights; `loss_and_grad` itself returns the data loss only, and
/// [`TwoLayerNet::penalty`](crate::TwoLayerNet::penalty) the penalty alone. The same `reg` as
/// PyTorch's coupled `weight_decay` in `SGD` or `Adam`, which decay the biases too.
///
/// ```
/// use two_layer_net::{L2, Loss, SoftmaxCrossEntropy};
///
/// let loss = L2::new(SoftmaxCrossEntropy, 1e-3);
/// assert_eq!(Loss::<f64>::l2(&loss), 1e-3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct L2<L> {
    /// The data loss.
    pub loss: L,
    /// `reg` in `0.5·reg·ΣW²`.
    pub reg: f64,
}

impl<L> L2<L> {
    /// `loss` with the penalty `0.5·reg·(ΣW1² + ΣW2²)`.
    pub fn new(loss: L, reg: f64) -> Self {
        L2 { loss, reg }
    }
}

impl<F: Scalar, L: Loss<F>> Loss<F> for L2<L> {
    type Target<'a> = L::Target<'a>;

    fn loss_and_grad(
        &self,
        yhat: ArrayView2<'_, F>,
        target: Self::Target<'_>,
        dyhat: ArrayViewMut2<'_, F>,
    ) -> Result<F> {
        self.loss.loss_and_grad(yhat, target, dyhat)
    }

    fn check_target(&self, yhat: Shape, target: Self::Target<'_>) -> Result<()> {
        self.loss.check_target(yhat, target)
    }

    fn l2(&self) -> F {
        F::cast(self.reg) + self.loss.l2()
    }
}

/// `0.5·reg·(ΣW1² + ΣW2²)`, the L2 penalty on the weights of `p` (zero when `reg` is).
pub(crate) fn l2_penalty<F: Scalar>(reg: F, p: &Params<F>) -> F {
    if reg == F::zero() {
        return F::zero();
    }
    let [w1, _, w2, _] = p.parts();
    F::cast(0.5) * reg * w1.iter().chain(w2).map(|&w| w * w).sum::<F>()
}

/// `dW += reg·W` for both weight matrices: the gradient of [`l2_penalty`].
pub(crate) fn l2_backward<F: Scalar>(reg: F, p: &Params<F>, g: &mut Gradients<F>) {
    if reg == F::zero() {
        return;
    }
    let [w1, _, w2, _] = p.parts();
    let [dw1, _, dw2, _] = g.parts_mut();
    for (dw, &w) in dw1.iter_mut().zip(w1).chain(dw2.iter_mut().zip(w2)) {
        *dw += reg * w;
    }
}
