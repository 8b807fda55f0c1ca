//! The network and its math: forward, backward and the SGD step.
//!
//! ```text
//! forward                         backward (given dŷ = ∂L/∂ŷ)
//! Y1 = X·W1 + b1    (N×H)         dW2 = H1ᵀ·dŷ       db2 = Σ_rows dŷ     dH1 = dŷ·W2ᵀ
//! H1 = f(Y1)        (N×H)         dY1 = dH1 ⊙ f'(Y1)
//! ŷ  = H1·W2 + b2   (N×K)         dW1 = Xᵀ·dY1       db1 = Σ_rows dY1    dX  = dY1·W1ᵀ
//! ```
//!
//! Each pass is a free function over the parameters and the workspace, in the order of the
//! math; [`TwoLayerNet`] checks shapes, owns the buffers and calls them.

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut2};
use rand::Rng;

use crate::activation::{Activation, Relu};
use crate::blas::{Mat, MatMut, Operand, Overwrite, gemm, gemm_mat, overwrite};
use crate::error::{Error, Result, blas_int, check_shape};
use crate::init::Init;
use crate::kernels::{MaxAbs, bias_add, bias_backward, bias_fill, column_sums};
use crate::loss::{Loss, l2_backward, l2_penalty};
use crate::optim::{Decay, Optimizer, Sgd, Slot};
use crate::params::{Gradients, Params};
use crate::scalar::Scalar;
use crate::workspace::Workspace;
use crate::workspace::{mat, mat_mut};

mod fused;
mod predict;

pub(crate) use predict::count_correct;

/// A two-layer network `ŷ = f(X·W1 + b1)·W2 + b2`, with hand-written backward and SGD.
///
/// Shapes: `X` is N×D (one example per row), `W1` D×H, `b1` H, `W2` H×K, `b2` K, `ŷ` N×K.
/// `F` is `f32` or `f64`; `A` is the hidden activation `f` (ReLU by default).
///
/// Every matrix product goes through CBLAS `?gemm` at every size; the buffers of a step are
/// sized once for the largest batch seen and reused, so after the first step at a batch size
/// `forward`, `backward`, `step` and `train_step` allocate nothing.
///
/// ```
/// use ndarray::array;
/// use rand::{SeedableRng, rngs::StdRng};
/// use two_layer_net::{Mse, TwoLayerNet};
///
/// let mut rng = StdRng::seed_from_u64(0);
/// let mut net = TwoLayerNet::<f64>::new(3, 4, 2, &mut rng)?;
/// let x = array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]];
/// let y = array![[1.0, 0.0], [0.0, 1.0]];
///
/// let before = net.train_step(x.view(), y.view(), &Mse, 1e-3)?;
/// for _ in 0..20 {
///     net.train_step(x.view(), y.view(), &Mse, 1e-3)?;
/// }
/// let after = net.train_step(x.view(), y.view(), &Mse, 1e-3)?;
/// assert!(after < before);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct TwoLayerNet<F: Scalar, A: Activation = Relu> {
    params: Params<F>,
    grads: Gradients<F>,
    ws: Workspace<F>,
    activation: A,
    /// `grads` holds the gradients of the last `backward` (not invalidated by a fused step).
    grads_ready: bool,
    /// An upper bound on `|w|` over `W1` and `W2`, carried from one fused SGD step to the next
    /// so that its overflow check needs no pass over the weights; `None` (recomputed when
    /// needed) after anything else changes the parameters.
    w_bound: Option<F>,
}

impl<F: Scalar, A: Activation + Default> TwoLayerNet<F, A> {
    /// A D→H→K network initialized as the reference note does: `W1`, `W2` ~ N(0, 1) (rand_distr,
    /// `W1` first, row-major), `b1 = b2 = 0`.
    ///
    /// Errors: [`Error::Empty`] if a dimension is 0, [`Error::TooLarge`] if one exceeds BLAS's
    /// 32-bit int or the parameters do not fit in memory.
    pub fn new<R: Rng + ?Sized>(d: usize, h: usize, k: usize, rng: &mut R) -> Result<Self> {
        Self::with_init(d, h, k, Init::StandardNormal, rng)
    }

    /// A D→H→K network with weights drawn by `init` (He, Xavier, a given σ …), biases 0.
    ///
    /// Errors: as [`new`](Self::new); [`Error::InvalidSetting`] (`"init"`) for a σ that is
    /// negative or not finite, or weights not finite in `F` (σ = 1e39 in `f32`).
    pub fn with_init<R: Rng + ?Sized>(d: usize, h: usize, k: usize, init: Init, rng: &mut R) -> Result<Self> {
        let mut params = Params::zeros(d, h, k)?;
        let [w1, _, w2, _] = params.parts_mut();
        init.fill(w1, d, h, rng)?;
        init.fill(w2, h, k, rng)?;
        Self::from_parts(params, A::default())
    }

    /// A network with the given parameters: `w1` D×H, `b1` H, `w2` H×K, `b2` K.
    ///
    /// Errors: [`Error::ShapeMismatch`] naming the first operand that does not fit the others.
    pub fn from_params(
        w1: ArrayView2<'_, F>,
        b1: ArrayView1<'_, F>,
        w2: ArrayView2<'_, F>,
        b2: ArrayView1<'_, F>,
    ) -> Result<Self> {
        let (d, h, k) = (w1.nrows(), w1.ncols(), w2.ncols());
        check_shape("b1", [1, b1.len()], [1, h])?;
        check_shape("w2", [w2.nrows(), k], [h, k])?;
        check_shape("b2", [1, b2.len()], [1, k])?;
        let mut params = Params::zeros(d, h, k)?;
        let mut v = params.view_mut();
        v.w1.assign(&w1);
        v.b1.assign(&b1);
        v.w2.assign(&w2);
        v.b2.assign(&b2);
        Self::from_parts(params, A::default())
    }
}

impl<F: Scalar, A: Activation> TwoLayerNet<F, A> {
    /// The network holding `params` (dimensions already checked by [`Params::zeros`]), with
    /// fresh gradients and an empty workspace.
    pub(crate) fn from_parts(params: Params<F>, activation: A) -> Result<Self> {
        crate::blas_info::warn_once_if_fallback();
        let (d, h, k) = params.dims();
        Ok(TwoLayerNet {
            grads: Params::zeros(d, h, k)?,
            params,
            ws: Workspace::default(),
            activation,
            grads_ready: false,
            w_bound: None,
        })
    }

    /// The same network with another hidden activation (e.g. `LeakyRelu { slope: 0.1 }`).
    pub fn with_activation<B: Activation>(self, activation: B) -> TwoLayerNet<F, B> {
        TwoLayerNet {
            params: self.params,
            grads: self.grads,
            ws: Workspace::default(),
            activation,
            grads_ready: false,
            w_bound: self.w_bound,
        }
    }

    /// The hidden activation `f`.
    pub fn activation(&self) -> &A {
        &self.activation
    }

    /// D, the number of inputs.
    pub fn input_dim(&self) -> usize {
        self.params.dims().0
    }

    /// H, the number of hidden units.
    pub fn hidden_dim(&self) -> usize {
        self.params.dims().1
    }

    /// K, the number of outputs.
    pub fn output_dim(&self) -> usize {
        self.params.dims().2
    }

    /// `W1`, `b1`, `W2`, `b2` in one buffer.
    pub fn params(&self) -> &Params<F> {
        &self.params
    }

    /// The parameters, mutably (values only: shapes are fixed). Invalidates the cached forward
    /// pass and the gradients.
    pub fn params_mut(&mut self) -> &mut Params<F> {
        self.ws.cached = None;
        self.grads_ready = false;
        self.w_bound = None;
        &mut self.params
    }

    /// `dW1`, `db1`, `dW2`, `db2` from the last [`backward`](Self::backward) (or
    /// [`train_step_with`](Self::train_step_with)), in the layout of [`params`](Self::params).
    ///
    /// Errors: [`Error::NoGradients`] before the first backward, after the parameters were
    /// changed by hand, and after a fused [`train_step`](Self::train_step), which never stores
    /// them.
    pub fn gradients(&self) -> Result<&Gradients<F>> {
        if self.grads_ready { Ok(&self.grads) } else { Err(Error::NoGradients) }
    }

    /// The gradients, mutably, for a caller that combines or sets them before a step (an
    /// all-reduce across processes); a following [`step`](Self::step) or
    /// [`step_with`](Self::step_with) applies what is here, even before any `backward`.
    pub fn gradients_mut(&mut self) -> &mut Gradients<F> {
        self.grads_ready = true;
        &mut self.grads
    }

    /// The parameters with their gradients, as an [`Optimizer`] updates them; weight decay
    /// ([`AdamW`](crate::AdamW)) applies to `W1` and `W2`, not to the biases. Put it in one
    /// list with slots of your own to update them all in one step.
    ///
    /// Errors: [`Error::NoGradients`] as for [`gradients`](Self::gradients).
    ///
    /// ```
    /// use two_layer_net::{Adam, Mse, Optimizer, Slot, TwoLayerNet, ndarray::array};
    /// use two_layer_net::rand::{SeedableRng, rngs::StdRng};
    ///
    /// let mut net = TwoLayerNet::<f64>::new(2, 3, 1, &mut StdRng::seed_from_u64(0))?;
    /// let (mut extra, d_extra) = (vec![1.0], vec![0.5]); // a parameter of your own
    /// let x = array![[1.0, 2.0]];
    /// net.forward(x.view())?;
    /// net.backward(x.view(), array![[0.1]].view())?;
    /// let mut adam = Adam::new(1e-3);
    /// adam.step(&mut [net.slot()?, Slot::new(&mut extra, &d_extra)])?;
    /// assert!(extra[0] < 1.0);
    /// # Ok::<(), two_layer_net::Error>(())
    /// ```
    pub fn slot(&mut self) -> Result<Slot<'_, F>> {
        if !self.grads_ready {
            return Err(Error::NoGradients);
        }
        // The caller is about to change the parameters: what was derived from them is stale.
        self.ws.cached = None;
        self.w_bound = None;
        let (params, weights) = self.params.as_slice_mut_with_weights();
        Ok(Slot::new(params, self.grads.as_slice()).with_decay(Decay::Ranges(weights)))
    }

    /// The L2 penalty of `loss` on the current weights, `0.5·reg·(ΣW1² + ΣW2²)` (zero unless
    /// `loss` is an [`L2`](crate::L2)): what the training steps add to the data loss.
    pub fn penalty<L: Loss<F>>(&self, loss: &L) -> F {
        l2_penalty(loss.l2(), &self.params)
    }

    /// `W1`, D×H.
    pub fn w1(&self) -> ArrayView2<'_, F> {
        self.params.w1()
    }
    /// `b1`, H.
    pub fn b1(&self) -> ArrayView1<'_, F> {
        self.params.b1()
    }
    /// `W2`, H×K.
    pub fn w2(&self) -> ArrayView2<'_, F> {
        self.params.w2()
    }
    /// `b2`, K.
    pub fn b2(&self) -> ArrayView1<'_, F> {
        self.params.b2()
    }

    /// Bytes of the parameter buffer: `(D·H + H + H·K + K)·size_of::<F>()`; the gradient
    /// buffer holds as many again.
    pub fn param_bytes(&self) -> usize {
        self.params.len() * size_of::<F>()
    }

    /// Bytes of the batch workspace: `((3·H + 2·K)·N_max + H + K)·size_of::<F>()`, where
    /// `N_max` is the largest batch seen so far (`Y1`, `H1`, `dY1` are N×H; `ŷ`, `dŷ` are N×K;
    /// the fused SGD step keeps `db1`, `db2` there too). Zero before the first batch.
    pub fn workspace_bytes(&self) -> usize {
        self.ws.bytes()
    }

    /// Frees the batch workspace (after inference on one very large batch, say); the next
    /// batch allocates it again. Drops the cached forward pass.
    pub fn release_workspace(&mut self) {
        self.ws = Workspace::default();
    }

    /// The largest batch the workspace holds without growing.
    pub fn workspace_rows(&self) -> usize {
        self.ws.capacity()
    }

    /// Rows of `x` after checking that it is a non-empty N×D batch.
    fn batch_rows(&self, x: &ArrayView2<'_, F>) -> Result<usize> {
        let n = x.nrows();
        check_shape("x", [n, x.ncols()], [n, self.input_dim()])?;
        if n == 0 {
            return Err(Error::Empty { operand: "x", actual: [n, x.ncols()] });
        }
        blas_int("x", [n, x.ncols()])?;
        Ok(n)
    }

    /// `ŷ = f(X·W1 + b1)·W2 + b2` for the N×D batch `x`; keeps `Y1` and `H1` for
    /// [`backward`](Self::backward). Returns `ŷ`, N×K. A training building block, as PyTorch's
    /// `forward`: NaN or ±∞ in `x` pass through to `ŷ` ([`forward_checked`](Self::forward_checked)
    /// reports them; the `&self` inference methods, [`predict`](Self::predict) and the rest,
    /// refuse them).
    pub fn forward(&mut self, x: ArrayView2<'_, F>) -> Result<ArrayView2<'_, F>> {
        let n = self.batch_rows(&x)?;
        let (_, h, k) = self.params.dims();
        self.ws.reserve(n, h, k)?;
        self.ws.cached = None;
        let buf = self.ws.rows(n, h, k);
        forward_pass(&self.params, &self.activation, x, buf.y1, Some(buf.h1), buf.yhat)?;
        self.ws.cached = Some(n);
        Ok(self.ws.yhat(n, k))
    }

    /// [`forward`](Self::forward), then [`Error::NonFinite`] (`"yhat"`) if any output is NaN or
    /// infinite (from NaN/Inf in `x`, or overflow), for pipelines that must not pass such
    /// values on. One extra pass over ŷ.
    pub fn forward_checked(&mut self, x: ArrayView2<'_, F>) -> Result<ArrayView2<'_, F>> {
        let yhat = self.forward(x)?;
        if yhat.iter().all(|v| v.is_finite()) { Ok(yhat) } else { Err(Error::NonFinite { what: "yhat" }) }
    }

    /// `ŷ` of the last forward pass over `n` rows, including the one inside a training step.
    pub(crate) fn last_yhat(&self, n: usize) -> ArrayView2<'_, F> {
        self.ws.yhat(n, self.output_dim())
    }

    /// Gradients of every parameter from the upstream gradient `dyhat = ∂L/∂ŷ` (N×K), for the
    /// batch `x` of the last [`forward`](Self::forward) (pass the same `x`):
    /// `dW2 = H1ᵀ·dŷ`, `db2 = Σ_rows dŷ`, `dW1 = Xᵀ·dY1`, `db1 = Σ_rows dY1`, with
    /// `dY1 = (dŷ·W2ᵀ) ⊙ f'(Y1)`. Gradients are overwritten, not accumulated.
    ///
    /// Errors: [`Error::NoForward`] without a forward pass over N rows since the parameters
    /// last changed; [`Error::ShapeMismatch`] for `x` or `dyhat`.
    pub fn backward(&mut self, x: ArrayView2<'_, F>, dyhat: ArrayView2<'_, F>) -> Result<&Gradients<F>> {
        self.backward_impl(x, dyhat, None)
    }

    /// [`backward`](Self::backward), and also `dX = dY1·W1ᵀ` (N×D) into `dx`, for a network that
    /// sits on top of another differentiable stage.
    pub fn backward_with_dx(
        &mut self,
        x: ArrayView2<'_, F>,
        dyhat: ArrayView2<'_, F>,
        dx: ArrayViewMut2<'_, F>,
    ) -> Result<&Gradients<F>> {
        self.backward_impl(x, dyhat, Some(dx))
    }

    fn backward_impl(
        &mut self,
        x: ArrayView2<'_, F>,
        dyhat: ArrayView2<'_, F>,
        dx: Option<ArrayViewMut2<'_, F>>,
    ) -> Result<&Gradients<F>> {
        let n = self.batch_rows(&x)?;
        let (d, _, k) = self.params.dims();
        if self.ws.cached != Some(n) {
            return Err(Error::NoForward { batch: n, cached: self.ws.cached });
        }
        check_shape("dyhat", [dyhat.nrows(), dyhat.ncols()], [n, k])?;
        if let Some(dx) = &dx {
            check_shape("dx", [dx.nrows(), dx.ncols()], [n, d])?;
        }
        self.backward_cached(x, n, Some(dyhat), dx)?;
        Ok(&self.grads)
    }

    /// The backward pass over the cached forward pass of `n` rows, from `dyhat` or, without
    /// it, from the `dŷ` the loss phase left in the workspace; marks the gradients ready.
    fn backward_cached(
        &mut self,
        x: ArrayView2<'_, F>,
        n: usize,
        dyhat: Option<ArrayView2<'_, F>>,
        dx: Option<ArrayViewMut2<'_, F>>,
    ) -> Result<()> {
        let (_, h, k) = self.params.dims();
        if self.ws.cached != Some(n) {
            return Err(Error::NoForward { batch: n, cached: self.ws.cached });
        }
        let buf = self.ws.rows(n, h, k);
        let dyhat = match dyhat {
            Some(dyhat) => dyhat,
            None => mat(buf.dyhat, n, k),
        };
        let (a, g) = (&self.activation, &mut self.grads);
        backward_pass(&self.params, a, x, buf.y1, buf.h1, dyhat, buf.dy1, g, dx)?;
        self.grads_ready = true;
        Ok(())
    }
    /// Plain SGD with the gradients of the last [`backward`](Self::backward):
    /// `θ ← θ − lr·dθ` for every parameter, in one pass over the flat buffers.
    ///
    /// [`step_with`](Self::step_with)`(&mut Sgd::new(lr))`.
    ///
    /// Errors: [`Error::NoGradients`] as for [`gradients`](Self::gradients); as
    /// [`Optimizer::step`] (a non-finite `lr` or gradient, an overflowing update), with every
    /// parameter left as it was.
    pub fn step(&mut self, lr: F) -> Result<()> {
        self.step_with(&mut Sgd::new(lr))
    }

    /// The update phase: `opt` applied to the gradients of the last
    /// [`backward`](Self::backward), `opt.step(&mut [self.slot()?])`.
    ///
    /// Errors: [`Error::NoGradients`] as for [`gradients`](Self::gradients); whatever `opt`
    /// reports, with the parameters and `opt`'s state left as they were.
    pub fn step_with<O: Optimizer<F>>(&mut self, opt: &mut O) -> Result<()> {
        if !opt.learning_rate().is_finite() {
            return Err(Error::NonFinite { what: "lr" });
        }
        opt.step(&mut [self.slot()?])
    }

    /// One training step on the batch (`x`, `target`), in four phases: forward, `loss` (its
    /// value, plus the L2 penalty of an [`L2`](crate::L2) loss; `dŷ` into the workspace),
    /// backward (the gradients, plus `reg·W` for the penalty, kept in
    /// [`gradients`](Self::gradients)), and the update `opt`. Returns the loss before the
    /// update.
    ///
    /// A step whose `Y1 = X·W1 + b1` (so, whose input `x`), loss, gradient or learning rate
    /// is not finite, or whose update would overflow, is refused with [`Error::NonFinite`]
    /// before any parameter changes; shape and target errors are found before anything is
    /// computed. Whatever the result, the cached forward pass is consumed: a following
    /// `backward` needs a new `forward`.
    ///
    /// For plain SGD, [`train_step`](Self::train_step) fuses backward and update and is
    /// faster.
    pub fn train_step_with<L: Loss<F>, O: Optimizer<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        opt: &mut O,
    ) -> Result<F> {
        self.train_step_phases(x, target, loss, opt, None)
    }

    /// [`train_step_with`](Self::train_step_with), with the gradients clipped to the global
    /// norm `max_norm` between backward and update when given (see
    /// [`clip_gradients`](Self::clip_gradients)).
    pub(crate) fn train_step_phases<L: Loss<F>, O: Optimizer<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        opt: &mut O,
        max_norm: Option<F>,
    ) -> Result<F> {
        let l = self.forward_loss(x, target, loss)? + self.penalty(loss);
        if !l.is_finite() {
            return Err(Error::NonFinite { what: "loss" });
        }
        self.backward_loss(x)?;
        l2_backward(loss.l2(), &self.params, &mut self.grads);
        if let Some(max_norm) = max_norm {
            self.clip_gradients(max_norm)?;
        }
        self.step_with(opt)?;
        Ok(l)
    }

    /// Scales the gradients so that their global norm `‖g‖ = √(Σ g²)` over all parameters is at
    /// most `max_norm`: `g ← g·min(1, max_norm / (‖g‖ + 1e-6))`, PyTorch's
    /// `clip_grad_norm_`. Returns `‖g‖` before clipping. One pass over the gradients to
    /// measure, and a second to scale when the norm is over.
    ///
    /// Errors: [`Error::NoGradients`] as for [`gradients`](Self::gradients);
    /// [`Error::NonFinite`] (`"max_norm"`) unless `max_norm` is finite and positive, and
    /// (`"gradient"`) if the norm is not finite; the gradients are then unchanged.
    pub fn clip_gradients(&mut self, max_norm: F) -> Result<F> {
        if !(max_norm.is_finite() && max_norm > F::zero()) {
            return Err(Error::NonFinite { what: "max_norm" });
        }
        if !self.grads_ready {
            return Err(Error::NoGradients);
        }
        // Summed in f64: the squares of f32 gradients overflow f32 long before their norm does.
        let norm = self.grads.as_slice().iter().map(|g| g.as_f64() * g.as_f64()).sum::<f64>().sqrt();
        if !norm.is_finite() {
            return Err(Error::NonFinite { what: "gradient" });
        }
        let scale = max_norm.as_f64() / (norm + 1e-6);
        if scale < 1.0 {
            let scale = F::cast(scale);
            for g in self.grads.as_slice_mut() {
                *g *= scale;
            }
        }
        Ok(F::cast(norm))
    }

    /// The forward and loss phases of a training step: `Y1`, `H1`, `ŷ` into the workspace and
    /// `dŷ = ∂L/∂ŷ` beside them. Returns the data loss (no penalty).
    ///
    /// Errors: shapes of `x` and `target` before anything is written; [`Error::NonFinite`]
    /// for `Y1` (`"y1"`) or the loss.
    pub(crate) fn forward_loss<L: Loss<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
    ) -> Result<F> {
        let n = self.batch_rows(&x)?;
        let (_, h, k) = self.params.dims();
        loss.check_target([n, k], target)?;
        self.ws.reserve(n, h, k)?;
        // From here on the workspace is overwritten: the cached forward pass is gone.
        self.ws.cached = None;
        let buf = self.ws.rows(n, h, k);
        if !forward_pass(&self.params, &self.activation, x, buf.y1, Some(buf.h1), buf.yhat)? {
            return Err(Error::NonFinite { what: "y1" });
        }
        let l = loss.loss_and_grad(mat(buf.yhat, n, k), target, mat_mut(buf.dyhat, n, k))?;
        if !l.is_finite() {
            return Err(Error::NonFinite { what: "loss" });
        }
        self.ws.cached = Some(n);
        Ok(l)
    }

    /// The backward phase of a training step, after [`forward_loss`](Self::forward_loss) on
    /// the same `x`: the gradients of the data loss from the `dŷ` in the workspace.
    pub(crate) fn backward_loss(&mut self, x: ArrayView2<'_, F>) -> Result<()> {
        self.backward_cached(x, x.nrows(), None, None)
    }

    /// Adds `reg·W` to the weight gradients for the L2 penalty of `loss` (after the gradients
    /// of the data loss are complete: summed over processes, say).
    pub(crate) fn add_penalty_gradient<L: Loss<F>>(&mut self, loss: &L) {
        l2_backward(loss.l2(), &self.params, &mut self.grads);
    }
}

/// `H1 = f(Y1)` elementwise, into `h1` or, without it, over `y1` in place; returns whether
/// every `Y1` is finite (a saturating `f` can turn ±∞ into a finite `H1`, so the check is on
/// `Y1`).
fn activation_forward<F: Scalar, A: Activation>(f: &A, y1: &mut [F], h1: Option<&mut [F]>) -> bool {
    let mut finite = true;
    match h1 {
        Some(h1) => {
            for (h, &y) in h1.iter_mut().zip(&*y1) {
                *h = f.forward(y);
                finite &= y.is_finite();
            }
        }
        None => {
            for y in y1 {
                finite &= y.is_finite();
                *y = f.forward(*y);
            }
        }
    }
    finite
}

/// `dY1 = dH1 ⊙ f'(Y1)` in place over `dh1` (N×H, row-major), and `db1 = Σ_rows dY1`, in one
/// pass; with `maxima`, also `[max|dY1|, max|H1|]`, each block taken while it is in cache.
fn activation_backward<F: Scalar, A: Activation>(
    f: &A,
    y1: &[F],
    h1: &[F],
    dh1: &mut [F],
    db1: &mut [F],
    mut maxima: Option<&mut [MaxAbs<F>; 2]>,
) {
    column_sums(db1, dh1.len(), |acc| {
        let m = acc.len();
        // The maxima are taken per span of whole blocks (about 2048 scalars, or one block if
        // that is longer) just after the span is written, while it is still in cache.
        let span = m * (2048 / m).max(1);
        for ((dy_s, y_s), h_s) in dh1.chunks_mut(span).zip(y1.chunks(span)).zip(h1.chunks(span)) {
            for ((dy, y), h) in dy_s.chunks_mut(m).zip(y_s.chunks(m)).zip(h_s.chunks(m)) {
                for (((dy, &y), &h), a) in dy.iter_mut().zip(y).zip(h).zip(acc.iter_mut()) {
                    *dy = f.backward(y, h, *dy);
                    *a += *dy;
                }
            }
            if let Some([dy_max, h_max]) = maxima.as_deref_mut() {
                dy_max.add(dy_s);
                h_max.add(h_s);
            }
        }
    });
}

/// `out = A·W + b` (N×M, `b` on every row), the way this OpenBLAS does it fastest
/// ([`Overwrite`]): `b` seeded into `out` and the product accumulated on it, or the product
/// alone (β = 0) and `b` added after it.
pub(super) fn linear_forward<F: Scalar>(
    a: Mat<'_, F>,
    w: Mat<'_, F>,
    b: &[F],
    out: &mut [F],
    how: Overwrite,
) -> Result<()> {
    let (n, m) = (a.nrows(), b.len());
    match how {
        Overwrite::Accumulate => {
            bias_fill(out, b);
            gemm_mat(F::one(), a, w, F::one(), MatMut::rows(out, n, m))
        }
        Overwrite::Beta0 => {
            gemm_mat(F::one(), a, w, F::zero(), MatMut::rows(&mut *out, n, m))?;
            bias_add(out, b);
            Ok(())
        }
    }
}

/// `Y1 = X·W1 + b1`, `H1 = f(Y1)`, `ŷ = H1·W2 + b2`, each product by [`linear_forward`] as
/// this OpenBLAS does it fastest ([`overwrite`]); `H1` into `h1`, or over `y1` when no `h1`
/// is given (inference keeps no `Y1`).
/// Returns whether `Y1` is finite: with finite parameters it is exactly when `x` is (NaN or
/// ±∞ in a row of `x` reaches every `Y1` of that row), short of overflow.
pub(crate) fn forward_pass<F: Scalar, A: Activation>(
    p: &Params<F>,
    f: &A,
    x: ArrayView2<'_, F>,
    y1: &mut [F],
    mut h1: Option<&mut [F]>,
    yhat: &mut [F],
) -> Result<bool> {
    let (n, (d, h, k)) = (x.nrows(), p.dims());
    let [w1, b1, w2, b2] = p.parts();
    let x = Operand::new("x", x)?;
    let (w1, w2) = (Mat::rows(w1, d, h), Mat::rows(w2, h, k));
    linear_forward(x.mat(), w1, b1, y1, overwrite(n, h, d))?; //       Y1 = X·W1 + b1
    let y1_finite = activation_forward(f, y1, h1.as_deref_mut()); //   H1 = f(Y1)
    let h1 = Mat::rows(h1.map_or(&*y1, |h1| &*h1), n, h);
    linear_forward(h1, w2, b2, yhat, overwrite(n, k, h))?; //          ŷ = H1·W2 + b2
    Ok(y1_finite)
}

/// `dW2 = H1ᵀ·dŷ`, `db2 = Σ_rows dŷ`, `dH1 = dŷ·W2ᵀ`, `dY1 = dH1 ⊙ f'(Y1)`, `dW1 = Xᵀ·dY1`,
/// `db1 = Σ_rows dY1`, and `dX = dY1·W1ᵀ` when `dx` is given. `dy1` is scratch (N×H).
#[allow(clippy::too_many_arguments)]
fn backward_pass<F: Scalar, A: Activation>(
    p: &Params<F>,
    f: &A,
    x: ArrayView2<'_, F>,
    y1: &[F],
    h1: &[F],
    dyhat: ArrayView2<'_, F>,
    dy1: &mut [F],
    g: &mut Gradients<F>,
    dx: Option<ArrayViewMut2<'_, F>>,
) -> Result<()> {
    let (n, (d, h, k)) = (x.nrows(), p.dims());
    let [dw1, db1, dw2, db2] = g.parts_mut();
    let (x, dyhat_m) = (Operand::new("x", x)?, Operand::new("dyhat", dyhat)?);
    let (h1_m, w2) = (Mat::rows(h1, n, h), Mat::rows(p.parts()[2], h, k));
    gemm_mat(F::one(), h1_m.t(), dyhat_m.mat(), F::zero(), MatMut::rows(dw2, h, k))?;
    bias_backward(dyhat, db2);
    gemm_mat(F::one(), dyhat_m.mat(), w2.t(), F::zero(), MatMut::rows(dy1, n, h))?;
    activation_backward(f, y1, h1, dy1, db1, None);
    let dy1 = &*dy1;
    gemm_mat(F::one(), x.mat().t(), Mat::rows(dy1, n, h), F::zero(), MatMut::rows(dw1, d, h))?;
    if let Some(dx) = dx {
        gemm(F::one(), mat(dy1, n, h), p.w1().t(), F::zero(), dx)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
