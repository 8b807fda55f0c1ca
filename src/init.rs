//! Weight initializations. Biases always start at zero.

use rand::Rng;

use crate::scalar::Scalar;

/// How the weights `W1` (D×H) and `W2` (H×K) are drawn; every one is a normal distribution
/// N(0, σ²), sampled with rand_distr, `W1` first, each row-major.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
#[non_exhaustive]
pub enum Init {
    /// σ = 1: the reference note's `W = randn(D, H)`.
    #[default]
    StandardNormal,
    /// A given σ, e.g. CS231n's `0.01·randn`.
    Normal {
        /// The standard deviation.
        std: f64,
    },
    /// He / Kaiming normal, for ReLU: σ = √(2 / fan_in).
    He,
    /// Xavier / Glorot normal: σ = √(2 / (fan_in + fan_out)).
    Xavier,
}

impl Init {
    /// σ for a weight matrix of shape `fan_in × fan_out`.
    pub fn std(&self, fan_in: usize, fan_out: usize) -> f64 {
        match *self {
            Init::StandardNormal => 1.0,
            Init::Normal { std } => std,
            Init::He => (2.0 / fan_in as f64).sqrt(),
            Init::Xavier => (2.0 / (fan_in + fan_out) as f64).sqrt(),
        }
    }

    /// Fills the row-major `fan_in × fan_out` matrix `w` with draws from N(0, σ²).
    pub(crate) fn fill<F: Scalar, R: Rng + ?Sized>(
        &self,
        w: &mut [F],
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) {
        let std = self.std(fan_in, fan_out);
        for v in w {
            let z = F::standard_normal(rng);
            *v = if std == 1.0 { z } else { z * F::cast(std) };
        }
    }
}
