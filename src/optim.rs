//! Optimizers: update rules over the flat parameter buffer, from the gradient buffer of the
//! same layout, in one pass and without allocation after their state is sized (on the first
//! step).

use crate::error::{Error, Result, check_shape};
use crate::params::{Gradients, Params};
use crate::scalar::Scalar;

/// An update rule `θ ← update(θ, dθ)` over all parameters.
pub trait Optimizer<F: Scalar> {
    /// Updates `params` from `grads` (same layout).
    fn step(&mut self, params: &mut Params<F>, grads: &Gradients<F>) -> Result<()>;

    /// The learning rate.
    fn learning_rate(&self) -> F;

    /// Sets the learning rate (for a schedule).
    fn set_learning_rate(&mut self, lr: F);

    /// `Some(lr)` when the update is exactly `θ ← θ − lr·dθ`. The network then fuses it into
    /// the backward GEMMs (`W ← W − lr·Xᵀ·dY1` in one call) and never stores the weight
    /// gradients. `None` by default.
    fn plain_sgd(&self) -> Option<F> {
        None
    }
}

/// `θ ← θ − lr·dθ` elementwise for every pair `(θ, dθ)` of buffers of the same layout, all or
/// nothing: if any new `θ` would not be finite (the step overflows), nothing is written and
/// the result is [`Error::NonFinite`]` { what: "update" }`.
pub(crate) fn sgd<F: Scalar, const P: usize>(parts: [(&mut [F], &[F]); P], lr: F) -> Result<()> {
    let finite = |(theta, dtheta): &(&mut [F], &[F])| {
        theta.iter().zip(*dtheta).all(|(&t, &d)| (t - lr * d).is_finite())
    };
    if !parts.iter().all(finite) {
        return Err(Error::NonFinite { what: "update" });
    }
    for (theta, dtheta) in parts {
        for (t, &d) in theta.iter_mut().zip(dtheta) {
            *t -= lr * d;
        }
    }
    Ok(())
}

/// Plain stochastic gradient descent, the reference note's update: `θ ← θ − lr·dθ`.
///
/// A step that would overflow a parameter to ±∞ is refused whole
/// ([`Error::NonFinite`]` { what: "update" }`), leaving every parameter as it was.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd<F> {
    /// The learning rate.
    pub lr: F,
}

impl<F> Sgd<F> {
    /// SGD with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Sgd { lr }
    }
}

impl<F: Scalar> Optimizer<F> for Sgd<F> {
    fn step(&mut self, params: &mut Params<F>, grads: &Gradients<F>) -> Result<()> {
        check_layout(params, grads)?;
        sgd([(params.as_slice_mut(), grads.as_slice())], self.lr)
    }
    fn learning_rate(&self) -> F {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.lr = lr;
    }
    fn plain_sgd(&self) -> Option<F> {
        Some(self.lr)
    }
}

/// SGD with momentum, as PyTorch's `optim.SGD(momentum=μ, nesterov=…)`:
///
/// `v ← μ·v + dθ`, then `θ ← θ − lr·v`, or with Nesterov `θ ← θ − lr·(dθ + μ·v)`; `v = 0` at
/// the start.
#[derive(Clone, Debug, PartialEq)]
pub struct Momentum<F> {
    /// The learning rate.
    pub lr: F,
    /// μ, e.g. 0.9.
    pub momentum: F,
    /// Use the Nesterov form.
    pub nesterov: bool,
    velocity: Vec<F>,
}

impl<F: Scalar> Momentum<F> {
    /// Classical momentum μ with learning rate `lr`.
    pub fn new(lr: F, momentum: F) -> Self {
        Momentum { lr, momentum, nesterov: false, velocity: Vec::new() }
    }

    /// Nesterov momentum μ with learning rate `lr`.
    pub fn nesterov(lr: F, momentum: F) -> Self {
        Momentum { nesterov: true, ..Self::new(lr, momentum) }
    }
}

impl<F: Scalar> Optimizer<F> for Momentum<F> {
    fn step(&mut self, params: &mut Params<F>, grads: &Gradients<F>) -> Result<()> {
        check_layout(params, grads)?;
        state(&mut self.velocity, params.len())?;
        let (lr, mu) = (self.lr, self.momentum);
        for ((t, &g), v) in params.as_slice_mut().iter_mut().zip(grads.as_slice()).zip(&mut self.velocity) {
            *v = mu * *v + g;
            *t -= if self.nesterov { lr * (g + mu * *v) } else { lr * *v };
        }
        Ok(())
    }
    fn learning_rate(&self) -> F {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.lr = lr;
    }
}

/// Adam (Kingma & Ba), as PyTorch's `optim.Adam`: at step t = 1, 2, …
///
/// `m ← β1·m + (1−β1)·dθ`, `v ← β2·v + (1−β2)·dθ²`, `m̂ = m/(1−β1ᵗ)`, `v̂ = v/(1−β2ᵗ)`,
/// `θ ← θ − lr·m̂/(√v̂ + ε)`.
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<F> {
    /// The learning rate.
    pub lr: F,
    /// β1, default 0.9.
    pub beta1: F,
    /// β2, default 0.999.
    pub beta2: F,
    /// ε, default 1e-8.
    pub eps: F,
    t: i32,
    m: Vec<F>,
    v: Vec<F>,
}

impl<F: Scalar> Adam<F> {
    /// Adam with learning rate `lr` and PyTorch's defaults β1 = 0.9, β2 = 0.999, ε = 1e-8.
    pub fn new(lr: F) -> Self {
        Adam {
            lr,
            beta1: F::cast(0.9),
            beta2: F::cast(0.999),
            eps: F::cast(1e-8),
            t: 0,
            m: Vec::new(),
            v: Vec::new(),
        }
    }

    /// One Adam step; weights (not biases) first shrink by `1 − lr·weight_decay`.
    fn update(&mut self, params: &mut Params<F>, grads: &Gradients<F>, weight_decay: F) -> Result<()> {
        check_layout(params, grads)?;
        state(&mut self.m, params.len())?;
        state(&mut self.v, params.len())?;
        self.t = self.t.saturating_add(1);
        let (b1, b2, eps, lr) = (self.beta1, self.beta2, self.eps, self.lr);
        let bc1 = F::one() - b1.powi(self.t);
        let bc2 = F::one() - b2.powi(self.t);
        let (mut m, mut v) = (&mut self.m[..], &mut self.v[..]);
        let is_weight = [true, false, true, false];
        for ((theta, g), weight) in params.parts_mut().into_iter().zip(grads.parts()).zip(is_weight) {
            let (m_part, m_rest) = m.split_at_mut(theta.len());
            let (v_part, v_rest) = v.split_at_mut(theta.len());
            (m, v) = (m_rest, v_rest);
            let shrink = if weight { F::one() - lr * weight_decay } else { F::one() };
            for (((t, &g), m), v) in theta.iter_mut().zip(g).zip(m_part).zip(v_part) {
                *m = b1 * *m + (F::one() - b1) * g;
                *v = b2 * *v + (F::one() - b2) * g * g;
                *t = shrink * *t - lr * (*m / bc1) / ((*v / bc2).sqrt() + eps);
            }
        }
        Ok(())
    }
}

impl<F: Scalar> Optimizer<F> for Adam<F> {
    fn step(&mut self, params: &mut Params<F>, grads: &Gradients<F>) -> Result<()> {
        self.update(params, grads, F::zero())
    }
    fn learning_rate(&self) -> F {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.lr = lr;
    }
}

/// AdamW (Loshchilov & Hutter), as PyTorch's `optim.AdamW`: Adam with decoupled weight decay,
/// `θ ← θ − lr·weight_decay·θ` before the Adam update, applied to `W1` and `W2` only (biases
/// are not decayed, unlike PyTorch's default parameter group).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<F> {
    /// The Adam update and its settings (`lr`, `beta1`, `beta2`, `eps`).
    pub adam: Adam<F>,
    /// The decoupled weight decay, PyTorch's default 0.01.
    pub weight_decay: F,
}

impl<F: Scalar> AdamW<F> {
    /// AdamW with learning rate `lr`, decay `weight_decay`, and Adam's defaults.
    pub fn new(lr: F, weight_decay: F) -> Self {
        AdamW { adam: Adam::new(lr), weight_decay }
    }
}

impl<F: Scalar> Optimizer<F> for AdamW<F> {
    fn step(&mut self, params: &mut Params<F>, grads: &Gradients<F>) -> Result<()> {
        self.adam.update(params, grads, self.weight_decay)
    }
    fn learning_rate(&self) -> F {
        self.adam.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.adam.lr = lr;
    }
}

/// `params` and `grads` describe the same network.
fn check_layout<F: Scalar>(params: &Params<F>, grads: &Gradients<F>) -> Result<()> {
    let (d, h, k) = params.dims();
    let (gd, gh, gk) = grads.dims();
    check_shape("grads w1", [gd, gh], [d, h])?;
    check_shape("grads w2", [gh, gk], [h, k])
}

/// Sizes an optimizer's state buffer (zeros) on first use; afterwards it must already fit.
fn state<F: Scalar>(buf: &mut Vec<F>, len: usize) -> Result<()> {
    if buf.is_empty() {
        buf.try_reserve_exact(len)
            .map_err(|_| Error::TooLarge { operand: "optimizer state", actual: [1, len] })?;
        buf.resize(len, F::zero());
    }
    check_shape("optimizer state", [1, buf.len()], [1, len])
}
