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

use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut2};
use rand::Rng;

use crate::activation::{Activation, Relu};
use crate::blas::gemm;
use crate::error::{Error, Result, check_shape};
use crate::init::Init;
use crate::loss::Loss;
use crate::optim::{Optimizer, Sgd, sgd};
use crate::params::{Gradients, Params, mat, mat_mut};
use crate::scalar::{MaxAbs, Scalar, max_abs};
use crate::workspace::Workspace;

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
    fn from_parts(params: Params<F>, activation: A) -> Result<Self> {
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

    /// `dW1`, `db1`, `dW2`, `db2` from the last [`backward`](Self::backward), in the layout of
    /// [`params`](Self::params). Zero before the first backward.
    pub fn gradients(&self) -> &Gradients<F> {
        &self.grads
    }

    /// The gradients, mutably, for a caller that combines or sets them before a step (an
    /// all-reduce across processes); a following [`step`](Self::step) or
    /// [`step_with`](Self::step_with) applies what is here, even before any `backward`.
    pub fn gradients_mut(&mut self) -> &mut Gradients<F> {
        self.grads_ready = true;
        &mut self.grads
    }

    /// Adds the gradient of the L2 penalty `0.5·reg·(ΣW1² + ΣW2²)` to the gradients of the last
    /// backward (`dW += reg·W`, biases untouched) and returns the penalty, for callers of
    /// `backward` + [`step_with`](Self::step_with) that regularize as the training steps do.
    pub fn add_l2_to_gradients(&mut self, reg: F) -> F {
        l2_backward(&self.params, &mut self.grads, reg);
        F::cast(0.5) * reg * l2_norm_sq(&self.params)
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
        if i32::try_from(n).is_err() {
            return Err(Error::TooLarge { operand: "x", actual: [n, x.ncols()] });
        }
        Ok(n)
    }

    /// `ŷ = f(X·W1 + b1)·W2 + b2` for the N×D batch `x`; keeps `Y1` and `H1` for
    /// [`backward`](Self::backward). Returns `ŷ`, N×K.
    pub fn forward(&mut self, x: ArrayView2<'_, F>) -> Result<ArrayView2<'_, F>> {
        let n = self.batch_rows(&x)?;
        let (_, h, k) = self.params.dims();
        self.ws.reserve(n, h, k)?;
        self.ws.cached = None;
        let b = self.ws.rows(n, h, k);
        forward_pass(&self.params, &self.activation, x, b.y1, b.h1, b.yhat)?;
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

    /// `ŷ` for the N×D batch `x`, as an owned array: [`forward`](Self::forward) for callers who
    /// want to keep the result (it allocates it).
    pub fn predict(&mut self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        self.forward(x).map(|yhat| yhat.to_owned())
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
        let (d, h, k) = self.params.dims();
        if self.ws.cached != Some(n) {
            return Err(Error::NoForward { batch: n, cached: self.ws.cached });
        }
        check_shape("dyhat", [dyhat.nrows(), dyhat.ncols()], [n, k])?;
        if let Some(dx) = &dx {
            check_shape("dx", [dx.nrows(), dx.ncols()], [n, d])?;
        }
        let b = self.ws.rows(n, h, k);
        backward_pass(&self.params, &self.activation, x, b.y1, b.h1, dyhat, b.dy1, &mut self.grads, dx)?;
        self.grads_ready = true;
        Ok(&self.grads)
    }

    /// Plain SGD with the gradients of the last [`backward`](Self::backward):
    /// `θ ← θ − lr·dθ` for every parameter, in one pass over the flat buffers.
    ///
    /// [`step_with`](Self::step_with)`(&mut Sgd::new(lr))`.
    ///
    /// Errors: [`Error::NonFinite`] for a NaN or infinite `lr`; [`Error::NoGradients`] if no
    /// backward ran since construction (or since a fused [`train_step`](Self::train_step)).
    pub fn step(&mut self, lr: F) -> Result<()> {
        self.step_with(&mut Sgd::new(lr))
    }

    /// Applies `opt` to the gradients of the last [`backward`](Self::backward).
    ///
    /// Errors: [`Error::NoGradients`] if no backward ran since construction (or since a
    /// fused training step); whatever `opt` reports.
    pub fn step_with<O: Optimizer<F>>(&mut self, opt: &mut O) -> Result<()> {
        if !opt.learning_rate().is_finite() {
            return Err(Error::NonFinite { what: "lr" });
        }
        if !self.grads_ready {
            return Err(Error::NoGradients);
        }
        self.w_bound = None;
        opt.step(&mut self.params, &self.grads)?;
        self.ws.cached = None;
        Ok(())
    }

    /// One training step with plain SGD at learning rate `lr`:
    /// [`train_step_with`](Self::train_step_with)`(x, target, loss, &mut Sgd::new(lr))`.
    pub fn train_step<L: Loss<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        lr: F,
    ) -> Result<F> {
        self.train_step_with(x, target, loss, &mut Sgd::new(lr))
    }

    /// One training step on the batch (`x`, `target`): forward, `loss` (plus its L2 penalty
    /// `0.5·reg·(ΣW1² + ΣW2²)`, see [`Loss::l2`]), backward, and the update `opt`. Returns the
    /// loss before the update.
    ///
    /// With plain SGD ([`Optimizer::plain_sgd`]) backward and update are fused: the weight
    /// gradients are never stored, the two weight-gradient GEMMs write
    /// `W ← (1 − lr·reg)·W − lr·Xᵀ·dY1` straight into the weights (α = −lr, β = 1 − lr·reg)
    /// once `dH1` has been taken from the old `W2`. The step then costs the five GEMMs and a
    /// few passes over the batch, and [`gradients`](Self::gradients) is not updated by it.
    /// As it never sees the weight gradients, it first bounds them, from `max|X|`, `max|dY1|`,
    /// `max|H1|` and `max|dŷ|`, and fuses only when no entry of the update can overflow;
    /// otherwise (values within a few orders of `F::MAX`) it takes the unfused path.
    /// Any other optimizer gets the full gradients (L2 term included), left in `gradients`.
    ///
    /// A step whose learning rate, `Y1 = X·W1 + b1` (so, whose input `x`), loss, `dŷ`, `dY1`
    /// or weight gradients are not finite, or whose SGD update would overflow a parameter
    /// (`"update"`), is refused with [`Error::NonFinite`] before any parameter changes. Other
    /// errors: shapes as in [`forward`](Self::forward) and the loss, found before anything is
    /// written.
    ///
    /// Whatever the result, a training step consumes the cached forward pass (a following
    /// `backward` needs a new `forward`), and `step`/`step_with` need a new `backward`.
    pub fn train_step_with<L: Loss<F>, O: Optimizer<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        opt: &mut O,
    ) -> Result<F> {
        let sgd_lr = opt.plain_sgd();
        if !opt.learning_rate().is_finite() {
            return Err(Error::NonFinite { what: "lr" });
        }
        let n = self.batch_rows(&x)?;
        let (_, h, k) = self.params.dims();
        loss.check_target([n, k], target)?;
        self.ws.reserve(n, h, k)?;
        // From here on the workspace is overwritten: the cached forward pass is gone.
        self.ws.cached = None;
        self.grads_ready = false;
        let b = self.ws.rows(n, h, k);
        if !forward_pass(&self.params, &self.activation, x, b.y1, b.h1, b.yhat)? {
            return Err(Error::NonFinite { what: "y1" });
        }
        let reg = loss.l2();
        let mut l = loss.loss_and_grad(mat(b.yhat, n, k), target, mat_mut(b.dyhat, n, k))?;
        if reg != F::zero() {
            // The penalty's gradient is added below, by the update (SGD) or to the gradients.
            l += F::cast(0.5) * reg * l2_norm_sq(&self.params);
        }
        if !l.is_finite() {
            return Err(Error::NonFinite { what: "loss" });
        }
        let dyhat = mat(b.dyhat, n, k);
        if let Some(lr) = sgd_lr {
            let (a, y1, h1) = (&self.activation, &*b.y1, &*b.h1);
            let (p, w_bound) = (&mut self.params, &mut self.w_bound);
            if backward_sgd_pass(p, w_bound, a, x, y1, h1, dyhat, b.dy1, b.db1, b.db2, lr, reg)? {
                return Ok(l);
            }
            // The overflow check could not clear the fused update: take the general path,
            // which stores the gradients and checks them (and SGD checks the update).
        }
        self.w_bound = None;
        backward_pass(&self.params, &self.activation, x, b.y1, b.h1, dyhat, b.dy1, &mut self.grads, None)?;
        if reg != F::zero() {
            l2_backward(&self.params, &mut self.grads, reg);
        }
        if !self.grads.as_slice().iter().all(|g| g.is_finite()) {
            return Err(Error::NonFinite { what: "gradient" });
        }
        self.grads_ready = true;
        opt.step(&mut self.params, &self.grads)?;
        Ok(l)
    }
}

/// `ΣW1² + ΣW2²`, the weights' squared Frobenius norms.
fn l2_norm_sq<F: Scalar>(p: &Params<F>) -> F {
    let [w1, _, w2, _] = p.parts();
    w1.iter().chain(w2).map(|&w| w * w).sum()
}

/// `dW += reg·W` for both weight matrices: the gradient of `0.5·reg·ΣW²`.
fn l2_backward<F: Scalar>(p: &Params<F>, g: &mut Gradients<F>, reg: F) {
    let [w1, _, w2, _] = p.parts();
    let [dw1, _, dw2, _] = g.parts_mut();
    for (dw, &w) in dw1.iter_mut().zip(w1).chain(dw2.iter_mut().zip(w2)) {
        *dw += reg * w;
    }
}

/// `out[i, :] = b` for every row of the row-major `out` (N×len(b)): the first row, then
/// doubling copies of what is filled, so log₂ N `memcpy` calls rather than one per (short) row.
fn bias_forward<F: Scalar>(out: &mut [F], b: &[F]) {
    let Some(first) = out.get_mut(..b.len()) else { return };
    first.copy_from_slice(b);
    let mut filled = b.len();
    while filled < out.len() {
        let more = filled.min(out.len() - filled);
        out.copy_within(..more, filled);
        filled += more;
    }
}

/// `db = Σ_rows dout`, for the N×len(db) upstream gradient `dout` of any layout.
fn bias_backward<F: Scalar>(dout: ArrayView2<'_, F>, db: &mut [F]) {
    match dout.as_slice() {
        Some(s) => column_sums(db, s.len(), |acc| {
            for block in s.chunks(acc.len()) {
                for (a, &v) in acc.iter_mut().zip(block) {
                    *a += v;
                }
            }
        }),
        None => {
            db.fill(F::zero());
            for row in dout.rows() {
                for (a, &v) in db.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
    }
}

/// Accumulators per column sum: a narrow matrix is summed in blocks of whole rows at least
/// this long, so that its few columns do not each wait on one add chain.
const LANES: usize = 64;

/// `out = Σ_rows` of a row-major buffer of `len` scalars with `out.len()` columns, where
/// `add(acc)` adds the buffer into `acc` block by block (`for block in buf.chunks(acc.len())`,
/// elementwise). `acc` holds whole rows, `LANES` or more scalars unless the buffer is shorter,
/// so one pass sums any width at full speed.
fn column_sums<F: Scalar>(out: &mut [F], len: usize, add: impl FnOnce(&mut [F])) {
    let width = out.len();
    out.fill(F::zero());
    if width >= LANES {
        return add(out);
    }
    let mut lanes = [F::zero(); LANES];
    let acc = &mut lanes[..(LANES / width * width).min(len)];
    add(acc);
    for row in acc.chunks_exact(width) {
        for (o, &a) in out.iter_mut().zip(row) {
            *o += a;
        }
    }
}

/// `H1 = f(Y1)` elementwise; returns whether every `Y1` is finite (a saturating `f` can turn
/// ±∞ into a finite `H1`, so the check is on `Y1`).
fn activation_forward<F: Scalar, A: Activation>(f: &A, y1: &[F], h1: &mut [F]) -> bool {
    let mut finite = true;
    for (h, &y) in h1.iter_mut().zip(y1) {
        *h = f.forward(y);
        finite &= y.is_finite();
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

/// `Y1 = X·W1 + b1`, `H1 = f(Y1)`, `ŷ = H1·W2 + b2`, each bias seeded into its output and the
/// GEMM accumulated on top (β = 1). Returns whether `Y1` is finite: with finite parameters it
/// is exactly when `x` is (NaN or ±∞ in a row of `x` reaches every `Y1` of that row), short of
/// overflow.
fn forward_pass<F: Scalar, A: Activation>(
    p: &Params<F>,
    f: &A,
    x: ArrayView2<'_, F>,
    y1: &mut [F],
    h1: &mut [F],
    yhat: &mut [F],
) -> Result<bool> {
    let (n, (_, h, k)) = (x.nrows(), p.dims());
    let [_, b1, _, b2] = p.parts();
    bias_forward(y1, b1); //                                                  Y1 = b1
    gemm(F::one(), x, p.w1(), F::one(), mat_mut(y1, n, h))?; //               Y1 += X·W1
    let y1_finite = activation_forward(f, y1, h1); //                         H1 = f(Y1)
    bias_forward(yhat, b2); //                                                ŷ = b2
    gemm(F::one(), mat(h1, n, h), p.w2(), F::one(), mat_mut(yhat, n, k))?; // ŷ += H1·W2
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
    gemm(F::one(), mat(h1, n, h).t(), dyhat, F::zero(), mat_mut(dw2, h, k))?;
    bias_backward(dyhat, db2);
    gemm(F::one(), dyhat, p.w2().t(), F::zero(), mat_mut(dy1, n, h))?;
    activation_backward(f, y1, h1, dy1, db1, None);
    gemm(F::one(), x.t(), mat(dy1, n, h), F::zero(), mat_mut(dw1, d, h))?;
    if let Some(dx) = dx {
        gemm(F::one(), mat(dy1, n, h), p.w1().t(), F::zero(), dx)?;
    }
    Ok(())
}

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
    gemm(F::one(), dyhat, p.w2().t(), F::zero(), mat_mut(dy1, n, h))?;
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
    sgd([(b1, &*db1), (b2, &*db2)], lr)?;
    let decay = F::one() - lr * reg;
    gemm(-lr, mat(h1, n, h).t(), dyhat, decay, mat_mut(w2, h, k))?;
    gemm(-lr, x.t(), mat(dy1, n, h), decay, mat_mut(w1, d, h))?;
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
fn weights_max<F: Scalar>(p: &Params<F>) -> F {
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
fn fused_update_bound<F: Scalar>(n: usize, w_max: F, lr: F, reg: F, a_max: F, b_max: F) -> Option<F> {
    let (n, eps, half_max) = (F::cast(n as f64), F::epsilon(), F::max_value() * F::cast(0.5));
    if n * eps > F::cast(0.25) {
        return None;
    }
    let product = n * a_max * b_max;
    let gradient = product + reg.abs() * w_max;
    let t = (F::one() - lr * reg).abs() * w_max + lr.abs() * product;
    (gradient <= half_max && t <= half_max).then(|| t * (F::one() + (n + F::cast(16.0)) * eps))
}

#[cfg(test)]
mod tests;
