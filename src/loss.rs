//! Losses `L(ŷ, target)` with their gradient `dŷ = ∂L/∂ŷ`.

use ndarray::{ArrayView2, ArrayViewMut2, Zip};

use crate::error::{Result, check_shape};
use crate::scalar::Scalar;

/// A loss over a batch: the value and `dŷ = ∂L/∂ŷ` in one pass, written into a buffer the
/// caller owns (so a training step allocates nothing).
pub trait Loss<F: Scalar> {
    /// What `ŷ` is compared with: a matrix of targets, or class labels.
    type Target<'a>: Copy;

    /// `L(ŷ, target)`, and `dŷ = ∂L/∂ŷ` written into `dyhat` (the shape of `yhat`).
    ///
    /// Checks every shape before writing anything.
    fn loss_and_grad(
        &self,
        yhat: ArrayView2<'_, F>,
        target: Self::Target<'_>,
        dyhat: ArrayViewMut2<'_, F>,
    ) -> Result<F>;
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

    fn loss_and_grad(
        &self,
        yhat: ArrayView2<'_, F>,
        y: ArrayView2<'_, F>,
        dyhat: ArrayViewMut2<'_, F>,
    ) -> Result<F> {
        let shape = [yhat.nrows(), yhat.ncols()];
        check_shape("y", [y.nrows(), y.ncols()], shape)?;
        check_shape("dyhat", [dyhat.nrows(), dyhat.ncols()], shape)?;
        let inv_n = F::one() / F::cast(yhat.nrows() as f64);
        let two_over_n = inv_n + inv_n;
        let mut sum = F::zero();
        Zip::from(dyhat).and(yhat).and(y).for_each(|d, &p, &t| {
            let r = p - t;
            *d = two_over_n * r;
            sum += r * r;
        });
        Ok(sum * inv_n)
    }
}
