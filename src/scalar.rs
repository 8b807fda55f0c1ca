//! The element types the network computes in: `f32` and `f64`.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, MulAssign, SubAssign};

use ndarray::{LinalgScalar, ScalarOperand};
use num_traits::Float;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// Implemented for `f32` and `f64` only, so that no other crate can implement [`Scalar`].
mod sealed {
    pub trait Sealed {}
    impl Sealed for f32 {}
    impl Sealed for f64 {}
}

/// A floating-point type with a CBLAS `?gemm`: implemented for `f32` (`cblas_sgemm`) and `f64`
/// (`cblas_dgemm`) only. The trait is sealed.
pub trait Scalar:
    sealed::Sealed
    + Float
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
