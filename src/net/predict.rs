//! Inference through a shared network: every method here takes `&self`, so many threads can
//! use one `&TwoLayerNet` at once, each with its own [`Scratch`] (or letting the allocating
//! forms make one).
//!
//! Each returns finite numbers or an error, as scikit-learn's `predict` refuses NaN input:
//! [`Error::NonFinite`] `"y1"` for a NaN or infinite value in `x` (or `X·W1 + b1`
//! overflowing), `"yhat"` for an output that overflows. The `&mut self`
//! [`forward`](TwoLayerNet::forward), a training building block, lets them through, as
//! PyTorch's `forward` does.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2};

use super::{TwoLayerNet, forward_pass};
use crate::activation::Activation;
use crate::error::{Error, Result, check_shape};
use crate::loss::{Loss, SoftmaxCrossEntropy};
use crate::scalar::Scalar;
use crate::workspace::Scratch;
use crate::workspace::{mat, mat_mut};

impl<F: Scalar, A: Activation> TwoLayerNet<F, A> {
    /// `ŷ = f(X·W1 + b1)·W2 + b2` for the N×D batch `x` into `scratch`, through `&self`:
    /// allocation-free once `scratch` has held a batch this large. Returns `ŷ`, N×K, borrowed
    /// from `scratch`. Keeps nothing for `backward` (that is [`forward`](Self::forward)).
    ///
    /// Errors: [`Error::ShapeMismatch`] for `x`; [`Error::Empty`] for no rows;
    /// [`Error::NonFinite`] (`"y1"`) for a NaN or infinite value in `x`, (`"yhat"`) for an
    /// output that overflows to ±∞.
    ///
    /// ```
    /// use two_layer_net::{Scratch, TwoLayerNet, ndarray::Array2, rand::{SeedableRng, rngs::StdRng}};
    ///
    /// let net = TwoLayerNet::<f32>::new(4, 8, 3, &mut StdRng::seed_from_u64(0))?;
    /// let x = Array2::<f32>::ones((5, 4));
    /// std::thread::scope(|s| {
    ///     for _ in 0..2 {
    ///         s.spawn(|| {
    ///             let mut scratch = Scratch::new();
    ///             assert_eq!(net.forward_with(x.view(), &mut scratch).unwrap().dim(), (5, 3));
    ///         });
    ///     }
    /// });
    /// # Ok::<(), two_layer_net::Error>(())
    /// ```
    pub fn forward_with<'s>(
        &self,
        x: ArrayView2<'_, F>,
        scratch: &'s mut Scratch<F>,
    ) -> Result<ArrayView2<'s, F>> {
        self.infer(x, scratch, false).map(|(yhat, _)| yhat)
    }

    /// `ŷ` for the N×D batch `x`, as an owned N×K array.
    ///
    /// Errors: as [`forward_with`](Self::forward_with).
    pub fn predict(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        Ok(self.forward_with(x, &mut Scratch::new())?.to_owned())
    }

    /// Class probabilities: the row softmax of `ŷ`, `pᵢⱼ = exp(ŷᵢⱼ) / Σₖ exp(ŷᵢₖ)` (with the row
    /// maximum subtracted first), N×K, each row summing to 1. For a network trained with
    /// [`SoftmaxCrossEntropy`].
    ///
    /// Errors: as [`forward_with`](Self::forward_with): an infinite logit is refused
    /// ([`Error::NonFinite`] `"yhat"`), not turned into a row of NaN.
    pub fn predict_proba(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let mut p = self.predict(x)?;
        for mut row in p.rows_mut() {
            let max = row.fold(F::neg_infinity(), |m, &v| m.max(v));
            row.mapv_inplace(|v| (v - max).exp());
            let sum = row.sum();
            row.mapv_inplace(|v| v / sum);
        }
        Ok(p)
    }

    /// The predicted class of each row: the index of its largest output (the first of ties).
    ///
    /// Errors: as [`forward_with`](Self::forward_with): a row with a NaN is refused, not
    /// classed as 0.
    pub fn predict_classes(&self, x: ArrayView2<'_, F>) -> Result<Array1<usize>> {
        let mut scratch = Scratch::new();
        let yhat = self.forward_with(x, &mut scratch)?;
        Ok(yhat.rows().into_iter().map(|r| argmax(r.iter().copied())).collect())
    }

    /// The fraction of rows of `x` whose largest output is the label: the network as a
    /// classifier.
    ///
    /// Errors: as [`forward_with`](Self::forward_with); [`Error::ShapeMismatch`] unless
    /// `labels` has one entry per row, and [`Error::InvalidLabel`] for a label ≥ K, as
    /// [`evaluate`](Self::evaluate) with [`SoftmaxCrossEntropy`].
    pub fn accuracy(&self, x: ArrayView2<'_, F>, labels: ArrayView1<'_, usize>) -> Result<f64> {
        self.batch_rows(&x)?;
        Loss::<F>::check_target(&SoftmaxCrossEntropy, [x.nrows(), self.output_dim()], labels)?;
        let classes = self.predict_classes(x)?;
        let right = classes.iter().zip(labels).filter(|(c, l)| c == l).count();
        Ok(right as f64 / labels.len() as f64)
    }

    /// The data loss `L(ŷ, target)` on a batch, without a step and without a `dŷ` of the
    /// caller's: a validation loss. The L2 penalty of an [`L2`](crate::L2) loss is not
    /// included; [`penalty`](Self::penalty) gives it.
    ///
    /// Errors: shapes of `x` and `target` as in a training step; as
    /// [`forward_with`](Self::forward_with) for non-finite input; [`Error::NonFinite`]
    /// (`"loss"`) for a loss that is not finite (a NaN target, say).
    ///
    /// ```
    /// use two_layer_net::{Mse, TwoLayerNet, ndarray::array, rand::{SeedableRng, rngs::StdRng}};
    ///
    /// let mut net = TwoLayerNet::<f64>::new(2, 4, 1, &mut StdRng::seed_from_u64(0))?;
    /// let (x, y) = (array![[1.0, 2.0], [0.5, -1.0]], array![[1.0], [0.0]]);
    /// let before = net.evaluate(x.view(), y.view(), &Mse)?;
    /// assert_eq!(net.train_step(x.view(), y.view(), &Mse, 1e-3)?, before);
    /// # Ok::<(), two_layer_net::Error>(())
    /// ```
    pub fn evaluate<L: Loss<F>>(&self, x: ArrayView2<'_, F>, target: L::Target<'_>, loss: &L) -> Result<F> {
        self.evaluate_with(x, target, loss, &mut Scratch::new())
    }

    /// [`evaluate`](Self::evaluate) with caller-owned buffers: allocation-free once `scratch`
    /// has held a batch this large.
    pub fn evaluate_with<L: Loss<F>>(
        &self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        scratch: &mut Scratch<F>,
    ) -> Result<F> {
        self.evaluate_classified(x, target, loss, None, scratch).map(|(l, _)| l)
    }

    /// [`evaluate_with`](Self::evaluate_with), and with `labels` also the accuracy, from the
    /// same forward pass (a validation epoch needs both).
    pub(crate) fn evaluate_classified<L: Loss<F>>(
        &self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        labels: Option<ArrayView1<'_, usize>>,
        scratch: &mut Scratch<F>,
    ) -> Result<(F, Option<f64>)> {
        // The batch first, so an empty one is reported as `x`, not as the loss's `yhat`.
        self.batch_rows(&x)?;
        loss.check_target([x.nrows(), self.output_dim()], target)?;
        if let Some(labels) = &labels {
            check_shape("labels", [1, labels.len()], [1, x.nrows()])?;
        }
        let (yhat, dyhat) = self.infer(x, scratch, true)?;
        let accuracy = labels.map(|labels| count_correct(yhat, labels) as f64 / labels.len() as f64);
        let (n, k) = yhat.dim();
        let l = loss.loss_and_grad(yhat, target, mat_mut(dyhat, n, k))?;
        if !l.is_finite() {
            return Err(Error::NonFinite { what: "loss" });
        }
        Ok((l, accuracy))
    }

    /// The forward pass into `scratch` (and room for `dŷ` when asked): `ŷ` and that room.
    fn infer<'s>(
        &self,
        x: ArrayView2<'_, F>,
        scratch: &'s mut Scratch<F>,
        dyhat: bool,
    ) -> Result<(ArrayView2<'s, F>, &'s mut [F])> {
        let n = self.batch_rows(&x)?;
        let (_, h, k) = self.params.dims();
        let rows = scratch.rows(n, h, k, dyhat)?;
        // Whether `Y1` is finite comes free from the activation pass; `ŷ` takes one pass.
        if !forward_pass(&self.params, &self.activation, x, rows.h1, None, rows.yhat)? {
            return Err(Error::NonFinite { what: "y1" });
        }
        if !rows.yhat.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite { what: "yhat" });
        }
        Ok((mat(rows.yhat, n, k), rows.dyhat))
    }
}

/// How many rows of `yhat` have their largest output at the row's label. A dense `yhat` (the
/// workspace's, always) is read row by row as slices: through ndarray's row views and
/// indexing, this took 8% of the digits example (issue #22).
pub(crate) fn count_correct<F: Scalar>(yhat: ArrayView2<'_, F>, labels: ArrayView1<'_, usize>) -> usize {
    match yhat.as_slice() {
        Some(s) if yhat.ncols() > 0 => {
            s.chunks_exact(yhat.ncols()).zip(labels).filter(|&(r, &c)| argmax(r.iter().copied()) == c).count()
        }
        _ => yhat.rows().into_iter().zip(labels).filter(|(r, c)| argmax(r.iter().copied()) == **c).count(),
    }
}

/// The index of the largest entry of `row` (the first of ties; NaN never wins, unless it is
/// the first entry; 0 for an empty row).
pub(crate) fn argmax<F: Scalar>(row: impl IntoIterator<Item = F>) -> usize {
    let mut row = row.into_iter();
    let Some(mut top) = row.next() else { return 0 };
    let mut best = 0;
    for (i, v) in row.enumerate() {
        if v > top {
            (best, top) = (i + 1, v);
        }
    }
    best
}
