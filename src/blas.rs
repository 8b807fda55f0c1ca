//! The BLAS boundary, and the only `unsafe` in the crate (the crate root denies it elsewhere).
//! It depends on nothing of the crate's but the error type.
//!
//! [`gemm`] computes `C ← α·A·B + β·C` over ndarray views with one call to `cblas_sgemm` or
//! `cblas_dgemm`, at every size. Each view is handed to BLAS as it lies in memory: a view whose
//! rows are contiguous (`strides = [ld, 1]`) is row-major, one whose columns are contiguous
//! (`strides = [1, ld]`, such as `x.t()`) is column-major, and the transpose flags and leading
//! dimensions follow from that. A transpose is therefore never materialized: pass `h1.t()` and
//! BLAS reads `h1` with `CblasTrans`. Only a view that BLAS cannot address at all (negative,
//! zero or overlapping strides, or neither axis contiguous) is copied first.

#![allow(unsafe_code)]

use std::ffi::c_int;

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, CowArray, Ix2, LinalgScalar};

use crate::error::{Error, Result, Shape, blas_int, check_shape};

/// Which axis of a matrix is contiguous in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Order {
    /// Rows are contiguous: `strides = [ld, 1]`.
    Row,
    /// Columns are contiguous: `strides = [1, ld]`.
    Col,
}

/// How BLAS can read a matrix: its order, and the stride of the non-contiguous axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Addressing {
    order: Order,
    ld: c_int,
}

/// The way BLAS can address a `rows × cols` matrix with element strides `strides`, preferring
/// `prefer` when both layouts work (a vector or a single element); `None` when it cannot.
fn addressing(rows: usize, cols: usize, strides: &[isize], prefer: Order) -> Option<Addressing> {
    let fits = |ld: usize, min: usize| ld >= min.max(1) && c_int::try_from(ld).is_ok();
    // Row-major: each row contiguous, rows `ld` apart (a single row needs only `ld ≥ cols`).
    let row = {
        let ld = if rows <= 1 { cols.max(1) } else { usize::try_from(strides[0]).unwrap_or(0) };
        ((cols <= 1 || strides[1] == 1) && fits(ld, cols)).then_some(ld)
    };
    // Column-major: each column contiguous, columns `ld` apart.
    let col = {
        let ld = if cols <= 1 { rows.max(1) } else { usize::try_from(strides[1]).unwrap_or(0) };
        ((rows <= 1 || strides[0] == 1) && fits(ld, rows)).then_some(ld)
    };
    // `fits` has checked that `ld` fits `c_int`.
    let pick = |order, ld: usize| Some(Addressing { order, ld: ld as c_int });
    match (row, col, prefer) {
        (Some(ld), _, Order::Row) | (Some(ld), None, _) => pick(Order::Row, ld),
        (_, Some(ld), _) => pick(Order::Col, ld),
        (None, None, _) => None,
    }
}

/// A row-major copy of `v`, for a view BLAS cannot address; [`Error::TooLarge`] instead of an
/// abort when it does not fit in memory (a broadcast view can stand for far more than it holds).
fn dense_copy<F: Gemm>(operand: &'static str, v: ArrayView2<'_, F>) -> Result<Array2<F>> {
    let too_large = || Error::TooLarge { operand, actual: shape(&v) };
    let mut data = Vec::new();
    data.try_reserve_exact(v.len()).map_err(|_| too_large())?;
    data.extend(v.iter().copied());
    Array2::from_shape_vec(v.raw_dim(), data).map_err(|_| too_large())
}

/// `v` and how BLAS reads it with C in `order`: the view itself, or a dense copy of it when
/// BLAS cannot address it.
fn readable<'a, F: Gemm>(
    operand: &'static str,
    v: ArrayView2<'a, F>,
    order: Order,
) -> Result<(CowArray<'a, F, Ix2>, Addressing)> {
    let (rows, cols) = v.dim();
    if let Some(at) = addressing(rows, cols, v.strides(), order) {
        return Ok((v.into(), at));
    }
    let copy = dense_copy(operand, v)?;
    let at = addressing(rows, cols, copy.strides(), order)
        .ok_or(Error::TooLarge { operand, actual: [rows, cols] })?;
    Ok((copy.into(), at))
}

fn shape(v: &ArrayView2<'_, impl Sized>) -> Shape {
    [v.nrows(), v.ncols()]
}

/// `C ← alpha·A·B + beta·C` through one CBLAS `?gemm` call.
///
/// Shapes: `a` is m×k, `b` is k×n, `c` is m×n; any strides. With `beta == 0` the old contents
/// of `c` are not read (NaN in `c` does not propagate). Errors: [`Error::ShapeMismatch`] when the
/// inner or outer dimensions disagree, [`Error::TooLarge`] when a dimension exceeds `c_int`.
pub fn gemm<F: Gemm>(
    alpha: F,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    beta: F,
    mut c: ArrayViewMut2<'_, F>,
) -> Result<()> {
    let (m, n, k) = (c.nrows(), c.ncols(), a.ncols());
    check_shape("gemm a", shape(&a), [m, k])?;
    check_shape("gemm b", shape(&b), [k, n])?;
    let [mi, ki] = blas_int("gemm a", [m, k])?;
    let [_, ni] = blas_int("gemm c", [m, n])?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        // An empty sum: C ← beta·C, without reading C when beta is zero.
        if beta == F::zero() {
            c.fill(F::zero());
        } else {
            c.map_inplace(|v| *v = beta * *v);
        }
        return Ok(());
    }

    // C fixes the layout of the call; A and B are read in whatever layout they have.
    let Some(c_at) = addressing(m, n, c.strides(), Order::Row) else {
        let mut tmp = dense_copy("gemm c", c.view())?;
        gemm(alpha, a, b, beta, tmp.view_mut())?;
        c.assign(&tmp);
        return Ok(());
    };
    let order = c_at.order;
    let (a, a_at) = readable("gemm a", a, order)?;
    let (b, b_at) = readable("gemm b", b, order)?;
    // OpenBLAS applies β ≠ 1 in a pass of its own, one column at a time, which is slow for a
    // narrow row-major C (N×4 is N columns of 4 to it). Zeroing C with a memset and passing
    // β = 1 gives the same C at memset speed.
    let beta = match c.as_slice_memory_order_mut() {
        Some(s) if beta == F::zero() => {
            s.fill(F::zero());
            F::one()
        }
        _ => beta,
    };
    let layout = match order {
        Order::Row => CBLAS_LAYOUT::CblasRowMajor,
        Order::Col => CBLAS_LAYOUT::CblasColMajor,
    };
    // An operand stored in the other order than C is its transpose in C's order.
    let trans = |at: Addressing| {
        if at.order == order { CBLAS_TRANSPOSE::CblasNoTrans } else { CBLAS_TRANSPOSE::CblasTrans }
    };
    #[cfg(test)]
    tests::count_call();
    // SAFETY: `addressing` proved that BLAS, reading each matrix from its first element with
    // the layout, transpose flag and leading dimension passed here, touches exactly the
    // elements of the views `a` (m×k), `b` (k×n) and `c` (m×n), which are in bounds and live
    // for the call; all dimensions and leading dimensions fit `c_int`; `c` is a unique
    // mutable borrow, so it overlaps neither `a` nor `b`.
    unsafe {
        (F::CBLAS_GEMM)(
            layout,
            trans(a_at),
            trans(b_at),
            mi,
            ni,
            ki,
            alpha,
            a.as_ptr(),
            a_at.ld,
            b.as_ptr(),
            b_at.ld,
            beta,
            c.as_mut_ptr(),
            c_at.ld,
        );
    }
    Ok(())
}

/// `cblas_?gemm`'s signature, over the element type `F`.
type CblasGemm<F> = unsafe extern "C" fn(
    CBLAS_LAYOUT,
    CBLAS_TRANSPOSE,
    CBLAS_TRANSPOSE,
    c_int,
    c_int,
    c_int,
    F,
    *const F,
    c_int,
    *const F,
    c_int,
    F,
    *mut F,
    c_int,
);

/// The element types with a CBLAS `?gemm`: `f32` and `f64`. Public only inside this private
/// module, so no other crate can implement it.
pub trait Gemm: LinalgScalar + PartialEq {
    /// `cblas_sgemm` or `cblas_dgemm`. Calling it is sound only with pointers, dimensions
    /// and leading dimensions that describe matrices in live memory, `c` overlapping neither
    /// `a` nor `b`: what [`gemm`] checks.
    const CBLAS_GEMM: CblasGemm<Self>;
}

impl Gemm for f32 {
    const CBLAS_GEMM: CblasGemm<f32> = cblas_sys::cblas_sgemm;
}

impl Gemm for f64 {
    const CBLAS_GEMM: CblasGemm<f64> = cblas_sys::cblas_dgemm;
}

#[cfg(feature = "openblas")]
mod openblas {
    use std::ffi::{CStr, c_char, c_int};

    unsafe extern "C" {
        fn openblas_set_num_threads(n: c_int);
        fn openblas_get_num_threads() -> c_int;
        fn openblas_get_config() -> *const c_char;
    }

    /// Sets the number of threads OpenBLAS uses for one GEMM (process-wide; `n` is clamped to
    /// at least 1). Overrides `OPENBLAS_NUM_THREADS`.
    ///
    /// When you run several networks at once on your own threads (rayon, `std::thread`), set
    /// this to 1: each OpenBLAS call would otherwise start its own workers and the two pools
    /// oversubscribe the cores. OpenBLAS already runs small products single-threaded.
    pub fn set_num_threads(n: usize) {
        let n = c_int::try_from(n.max(1)).unwrap_or(c_int::MAX);
        // SAFETY: a plain setter in OpenBLAS, valid for any positive count and any thread.
        unsafe { openblas_set_num_threads(n) }
    }

    /// The number of threads OpenBLAS uses for one GEMM.
    pub fn num_threads() -> usize {
        // SAFETY: a plain getter in OpenBLAS with no preconditions.
        let n = unsafe { openblas_get_num_threads() };
        usize::try_from(n).unwrap_or(1)
    }

    /// OpenBLAS's build description, e.g. `"OpenBLAS 0.3.21 DYNAMIC_ARCH NO_AFFINITY Zen MAX_THREADS=64"`.
    pub fn openblas_config() -> String {
        // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(openblas_get_config()) };
        s.to_string_lossy().trim().to_owned()
    }
}

#[cfg(feature = "openblas")]
pub use openblas::{num_threads, openblas_config, set_num_threads};

#[cfg(test)]
pub(crate) mod tests;
