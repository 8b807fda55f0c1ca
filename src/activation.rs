//! Hidden-layer activations `H1 = f(Y1)`, applied elementwise, and their backward
//! `dY1 = dH1 ⊙ f'(Y1)`.
//!
//! Implement [`Activation`] for your own type and the network uses it on the same fused,
//! allocation-free path as the built-in ones: the forward is one pass over `Y1` writing `H1`,
//! the backward one pass over `dH1` that also sums `db1`.

use std::fmt::Debug;

use crate::scalar::Scalar;

/// An elementwise function `f` with its derivative.
///
/// `f` should map NaN to NaN: a NaN in the input then reaches the loss, and a training step
/// refuses it instead of writing NaN into the weights.
///
/// The backward receives both `y` and `h = f(y)`, so `f'` can be written from whichever is
/// cheaper (`h·(1 − h)` for the sigmoid, `1(y > 0)` for ReLU).
///
/// ```
/// use two_layer_net::{Activation, Scalar};
///
/// /// softplus: f(y) = ln(1 + eʸ), f'(y) = 1 / (1 + e⁻ʸ)
/// #[derive(Clone, Copy, Debug, Default)]
/// struct Softplus;
///
/// impl Activation for Softplus {
///     const NAME: &'static str = "softplus";
///     fn forward<F: Scalar>(&self, y: F) -> F {
///         y.max(F::zero()) + (-y.abs()).exp().ln_1p()
///     }
///     fn backward<F: Scalar>(&self, y: F, _h: F, dh: F) -> F {
///         dh / (F::one() + (-y).exp())
///     }
/// }
/// assert!((Softplus.forward(0.0_f64) - 2f64.ln()).abs() < 1e-15);
/// ```
pub trait Activation: Clone + Debug + Send + Sync + 'static {
    /// A short lowercase name, e.g. `"relu"`.
    const NAME: &'static str;

    /// The name with any parameters, e.g. `"leaky_relu(slope=0.1)"`: what a checkpoint records,
    /// and must match when it is loaded.
    fn describe(&self) -> String {
        Self::NAME.to_owned()
    }

    /// `h = f(y)`.
    fn forward<F: Scalar>(&self, y: F) -> F;

    /// `dy = dh · f'(y)`, given `y` and `h = f(y)`.
    fn backward<F: Scalar>(&self, y: F, h: F, dh: F) -> F;
}

/// `f(y) = max(y, 0)`, `f'(y) = 1(y > 0)`: strictly greater, so `f'(0) = 0`. NaN stays NaN.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Relu;

impl Activation for Relu {
    const NAME: &'static str = "relu";
    #[inline(always)]
    fn forward<F: Scalar>(&self, y: F) -> F {
        // Not `y.max(0)`, which maps NaN to 0: NaN must reach the loss, where a training step
        // refuses it.
        if y <= F::zero() { F::zero() } else { y }
    }
    #[inline(always)]
    fn backward<F: Scalar>(&self, y: F, _h: F, dh: F) -> F {
        if y > F::zero() { dh } else { F::zero() }
    }
}

/// `f(y) = y` for `y > 0`, `slope·y` otherwise; `f'(y) = 1(y > 0) + slope·1(y ≤ 0)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyRelu {
    /// The slope for `y ≤ 0`.
    pub slope: f64,
}

impl Default for LeakyRelu {
    /// `slope = 0.01`, as PyTorch's `nn.LeakyReLU`.
    fn default() -> Self {
        LeakyRelu { slope: 0.01 }
    }
}

impl Activation for LeakyRelu {
    const NAME: &'static str = "leaky_relu";
    fn describe(&self) -> String {
        format!("{}(slope={})", Self::NAME, self.slope)
    }
    #[inline(always)]
    fn forward<F: Scalar>(&self, y: F) -> F {
        if y > F::zero() { y } else { F::cast(self.slope) * y }
    }
    #[inline(always)]
    fn backward<F: Scalar>(&self, y: F, _h: F, dh: F) -> F {
        if y > F::zero() { dh } else { F::cast(self.slope) * dh }
    }
}

/// `f(y) = 1 / (1 + e⁻ʸ)`, `f'(y) = f(y)·(1 − f(y))`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Sigmoid;

impl Activation for Sigmoid {
    const NAME: &'static str = "sigmoid";
    #[inline(always)]
    fn forward<F: Scalar>(&self, y: F) -> F {
        // Written so that neither branch overflows: e^(−|y|) ≤ 1.
        let e = (-y.abs()).exp();
        if y >= F::zero() { F::one() / (F::one() + e) } else { e / (F::one() + e) }
    }
    #[inline(always)]
    fn backward<F: Scalar>(&self, _y: F, h: F, dh: F) -> F {
        dh * h * (F::one() - h)
    }
}

/// `f(y) = tanh(y)`, `f'(y) = 1 − tanh²(y)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tanh;

impl Activation for Tanh {
    const NAME: &'static str = "tanh";
    #[inline(always)]
    fn forward<F: Scalar>(&self, y: F) -> F {
        y.tanh()
    }
    #[inline(always)]
    fn backward<F: Scalar>(&self, _y: F, h: F, dh: F) -> F {
        dh * (F::one() - h * h)
    }
}

/// `f(y) = y`, `f'(y) = 1`: the network becomes linear (two stacked affine maps).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Identity;

impl Activation for Identity {
    const NAME: &'static str = "identity";
    #[inline(always)]
    fn forward<F: Scalar>(&self, y: F) -> F {
        y
    }
    #[inline(always)]
    fn backward<F: Scalar>(&self, _y: F, _h: F, dh: F) -> F {
        dh
    }
}
