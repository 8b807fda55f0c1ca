//! Weight initializations. Biases always start at zero.

use rand::Rng;

#[cfg(feature = "linalg")]
use crate::error::Error;
use crate::error::{Result, check_setting};
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
    /// Orthogonal, as PyTorch's `nn.init.orthogonal_`: the Q of the QR factorization of a
    /// Gaussian matrix (of the taller orientation), columns' signs set so `diag(R) > 0`, times
    /// `gain`. Columns (if fan_in ≥ fan_out) or rows (otherwise) are orthonormal·gain.
    /// Needs the `linalg` feature.
    #[cfg(feature = "linalg")]
    Orthogonal {
        /// The scale, 1 for a plain orthogonal matrix.
        gain: f64,
    },
}

impl Init {
    /// σ of the normal distribution for a weight matrix of shape `fan_in × fan_out`
    /// (for `Orthogonal`, that of the Gaussian matrix it starts from).
    pub fn std(&self, fan_in: usize, fan_out: usize) -> f64 {
        match *self {
            Init::StandardNormal => 1.0,
            #[cfg(feature = "linalg")]
            Init::Orthogonal { .. } => 1.0,
            Init::Normal { std } => std,
            Init::He => (2.0 / fan_in as f64).sqrt(),
            Init::Xavier => (2.0 / (fan_in + fan_out) as f64).sqrt(),
        }
    }

    /// Fills the row-major `fan_in × fan_out` matrix `w` with draws from N(0, σ²)
    /// (orthogonalized for `Orthogonal`).
    ///
    /// Errors: [`Error::InvalidSetting`](crate::Error::InvalidSetting) (`"init"`) for a σ that
    /// is negative or not finite (PyTorch's `normal_` refuses a negative one), checked before
    /// any draw, or weights that are not finite in `F` (σ = 1e39 in `f32`, a NaN gain).
    pub(crate) fn fill<F: Scalar, R: Rng + ?Sized>(
        &self,
        w: &mut [F],
        fan_in: usize,
        fan_out: usize,
        rng: &mut R,
    ) -> Result<()> {
        let std = self.std(fan_in, fan_out);
        let expected = "a σ ≥ 0 (and gain) giving finite weights in the network's type";
        check_setting("init", expected, self, std >= 0.0 && std.is_finite())?;
        for v in w.iter_mut() {
            let z = F::standard_normal(rng);
            *v = if std == 1.0 { z } else { z * F::cast(std) };
        }
        #[cfg(feature = "linalg")]
        if let Init::Orthogonal { gain } = *self {
            orthogonalize(w, fan_in, fan_out, gain)?;
        }
        check_setting("init", expected, self, w.iter().all(|v| v.is_finite()))
    }
}

/// Replaces the Gaussian `rows × cols` matrix in `w` by `gain·Q`, Q from its QR factorization
/// (of its transpose when it is wide), with `Q`'s columns flipped so that `diag(R) > 0`.
#[cfg(feature = "linalg")]
fn orthogonalize<F: Scalar>(w: &mut [F], rows: usize, cols: usize, gain: f64) -> Result<()> {
    use ndarray::Array2;
    use ndarray_linalg::QR;

    let (tall_rows, m) = (rows.max(cols), rows.min(cols));
    let g = Array2::from_shape_fn((rows, cols), |(i, j)| w[i * cols + j].as_f64());
    let tall = if rows >= cols { g } else { g.reversed_axes() };
    let (q, r) =
        tall.qr().map_err(|_| Error::TooLarge { operand: "orthogonal init", actual: [rows, cols] })?;
    // q: tall_rows × m with orthonormal columns; flip column j when R[j, j] < 0.
    for i in 0..tall_rows {
        for j in 0..m {
            let v = if r[[j, j]] < 0.0 { -q[[i, j]] } else { q[[i, j]] };
            let (wi, wj) = if rows >= cols { (i, j) } else { (j, i) };
            w[wi * cols + wj] = F::cast(gain * v);
        }
    }
    Ok(())
}
