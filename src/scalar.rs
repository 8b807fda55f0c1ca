//! The element types the network computes in: `f32` and `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::Float;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A floating-point type with a CBLAS `?gemm`: implemented for `f32` (`cblas_sgemm`) and `f64`
/// (`cblas_dgemm`) only. The trait is sealed.
pub trait Scalar:
    Float
    + LinalgScalar
    + ScalarOperand
    + AddAssign
    + SubAssign
    + MulAssign
    + Sum
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + crate::blas::Gemm
{
    /// `"f32"` or `"f64"`.
    const NAME: &'static str;

    /// `x` rounded to this type (`x as f32` for `f32`).
    fn cast(x: f64) -> Self;

    /// `self` widened to `f64`.
    fn as_f64(self) -> f64;

    /// One draw from N(0, 1) in this type (rand_distr's `StandardNormal`).
    fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self;
}

impl Scalar for f32 {
    const NAME: &'static str = "f32";
    #[inline(always)]
    fn cast(x: f64) -> Self {
        x as f32
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        f64::from(self)
    }
    fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
        StandardNormal.sample(rng)
    }
}

impl Scalar for f64 {
    const NAME: &'static str = "f64";
    #[inline(always)]
    fn cast(x: f64) -> Self {
        x
    }
    #[inline(always)]
    fn as_f64(self) -> f64 {
        self
    }
    fn standard_normal<R: Rng + ?Sized>(rng: &mut R) -> Self {
        StandardNormal.sample(rng)
    }
}

/// A running `max |v|` over one or more slices of values already known to be finite (a NaN
/// may or may not be skipped), kept in 16 independent maxima so that it vectorizes: each
/// `if a > m { a } else { m }` is one `maxps`, where `Float::max`'s NaN rule costs three more
/// instructions. Adding a buffer block by block costs no more than one pass over it.
pub(crate) struct MaxAbs<F>([F; 16]);

impl<F: Scalar> MaxAbs<F> {
    pub(crate) fn new() -> Self {
        MaxAbs([F::zero(); 16])
    }

    /// Takes every `|v|` of `s` into the maxima.
    pub(crate) fn add(&mut self, s: &[F]) {
        let greater = |m: F, v: F| {
            let a = v.abs();
            if a > m { a } else { m }
        };
        // A local copy stays in registers through the loop.
        let mut lanes = self.0;
        let blocks = s.chunks_exact(16);
        let rest = blocks.remainder();
        for block in blocks {
            for (m, &v) in lanes.iter_mut().zip(block) {
                *m = greater(*m, v);
            }
        }
        for (m, &v) in lanes.iter_mut().zip(rest) {
            *m = greater(*m, v);
        }
        self.0 = lanes;
    }

    /// `max |v|` over everything added (0 if nothing was).
    pub(crate) fn get(&self) -> F {
        self.0.iter().fold(F::zero(), |m, &v| if v > m { v } else { m })
    }
}

/// `max |v|` over `s` (0 when empty): one [`MaxAbs`] pass.
pub(crate) fn max_abs<F: Scalar>(s: &[F]) -> F {
    let mut m = MaxAbs::new();
    m.add(s);
    m.get()
}
