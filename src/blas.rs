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
use std::marker::PhantomData;

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE};
use ndarray::{Array2, ArrayView2, ArrayViewMut2, LinalgScalar};

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

fn shape(v: &ArrayView2<'_, impl Sized>) -> Shape {
    [v.nrows(), v.ncols()]
}

/// A matrix as BLAS reads it: its first element, its dimensions (each fitting `c_int`) and
/// its [`Addressing`], proved once when it is made, so that each [`gemm_mat`] call on it
/// costs a few compares. Borrows its data for `'a`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mat<'a, F> {
    ptr: *const F,
    dims: [c_int; 2],
    at: Addressing,
    data: PhantomData<&'a [F]>,
}

/// [`Mat`] for the output of a product: borrows its data mutably for `'a`, so that it
/// overlaps no [`Mat`] alive at the same time.
#[derive(Debug)]
pub(crate) struct MatMut<'a, F> {
    ptr: *mut F,
    dims: [c_int; 2],
    at: Addressing,
    data: PhantomData<&'a mut [F]>,
}

/// The addressing of a dense row-major `rows × cols` matrix in `len` scalars.
///
/// Panics unless `len == rows·cols` and both dimensions fit `c_int`: for the crate's own
/// buffers, sized `rows·cols` from dimensions checked when the network and the batch were.
#[inline]
fn dense_rows(len: usize, rows: usize, cols: usize) -> ([c_int; 2], Addressing) {
    let (Ok(r), Ok(c)) = (c_int::try_from(rows), c_int::try_from(cols)) else {
        panic!("dimensions were checked for BLAS");
    };
    // Both below 2³¹: the product does not overflow.
    assert!(rows * cols == len, "a buffer holds rows·cols scalars");
    ([r, c], Addressing { order: Order::Row, ld: c.max(1) })
}

impl<'a, F> Mat<'a, F> {
    /// The `rows × cols` row-major matrix filling `s` (see [`dense_rows`]).
    pub(crate) fn rows(s: &'a [F], rows: usize, cols: usize) -> Self {
        let (dims, at) = dense_rows(s.len(), rows, cols);
        Mat { ptr: s.as_ptr(), dims, at, data: PhantomData }
    }

    /// `v` as it lies in memory, or `None` when BLAS cannot address it.
    fn view(v: ArrayView2<'a, F>) -> Option<Self> {
        let (rows, cols) = v.dim();
        let at = addressing(rows, cols, v.strides(), Order::Row)?;
        let dims = blas_int("", [rows, cols]).ok()?;
        Some(Mat { ptr: v.as_ptr(), dims, at, data: PhantomData })
    }

    /// Its number of rows.
    pub(crate) fn nrows(&self) -> usize {
        self.dims[0] as usize
    }

    /// The transpose, reading the same memory in the other order.
    pub(crate) fn t(self) -> Self {
        let order = match self.at.order {
            Order::Row => Order::Col,
            Order::Col => Order::Row,
        };
        let [rows, cols] = self.dims;
        Mat { dims: [cols, rows], at: Addressing { order, ..self.at }, ..self }
    }
}

impl<'a, F> MatMut<'a, F> {
    /// The `rows × cols` row-major matrix filling `s` (see [`dense_rows`]).
    pub(crate) fn rows(s: &'a mut [F], rows: usize, cols: usize) -> Self {
        let (dims, at) = dense_rows(s.len(), rows, cols);
        MatMut { ptr: s.as_mut_ptr(), dims, at, data: PhantomData }
    }

    /// `v` as it lies in memory, or `None` when BLAS cannot address it.
    fn view(mut v: ArrayViewMut2<'a, F>) -> Option<Self> {
        let (rows, cols) = v.dim();
        let at = addressing(rows, cols, v.strides(), Order::Row)?;
        let dims = blas_int("", [rows, cols]).ok()?;
        Some(MatMut { ptr: v.as_mut_ptr(), dims, at, data: PhantomData })
    }
}

/// A matrix operand from a view of any layout: the view itself when BLAS can address it, else
/// a dense row-major copy (the only allocation on the BLAS path).
pub(crate) enum Operand<'a, F> {
    View(Mat<'a, F>),
    Copy(Array2<F>),
}

impl<'a, F: Gemm> Operand<'a, F> {
    /// `v`, checked once for BLAS. Errors: [`Error::TooLarge`] naming `operand` when a
    /// dimension exceeds `c_int` or a needed copy does not fit in memory.
    pub(crate) fn new(operand: &'static str, v: ArrayView2<'a, F>) -> Result<Self> {
        blas_int(operand, shape(&v))?;
        match Mat::view(v) {
            Some(m) => Ok(Operand::View(m)),
            None => dense_copy(operand, v).map(Operand::Copy),
        }
    }

    /// The operand as BLAS reads it.
    pub(crate) fn mat(&self) -> Mat<'_, F> {
        match self {
            Operand::View(m) => *m,
            Operand::Copy(a) => Mat::view(a.view()).expect("a dense row-major copy is addressable"),
        }
    }
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
    blas_int("gemm a", [m, k])?;
    blas_int("gemm c", [m, n])?;
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
    let (a, b) = (Operand::new("gemm a", a)?, Operand::new("gemm b", b)?);
    match MatMut::view(c.view_mut()) {
        Some(cm) => gemm_mat(alpha, a.mat(), b.mat(), beta, cm),
        None => {
            // C fixes the layout of the call: one BLAS cannot address is computed in a copy.
            let mut tmp = dense_copy("gemm c", c.view())?;
            gemm_mat(alpha, a.mat(), b.mat(), beta, MatMut::view(tmp.view_mut()).expect("dense"))?;
            c.assign(&tmp);
            Ok(())
        }
    }
}

/// [`gemm`] over operands already checked for BLAS: only the dimensions are compared here.
///
/// Errors: [`Error::ShapeMismatch`] when the inner or outer dimensions disagree.
pub(crate) fn gemm_mat<F: Gemm>(
    alpha: F,
    a: Mat<'_, F>,
    b: Mat<'_, F>,
    beta: F,
    c: MatMut<'_, F>,
) -> Result<()> {
    let ([m, n], k) = (c.dims, a.dims[1]);
    let usize_dims = |d: [c_int; 2]| d.map(|v| v as usize);
    check_shape("gemm a", usize_dims(a.dims), usize_dims([m, k]))?;
    check_shape("gemm b", usize_dims(b.dims), usize_dims([k, n]))?;
    if m == 0 || n == 0 {
        return Ok(());
    }
    // Where the product overwrites C (β = 0) and `overwrite` says so, C is zeroed with a
    // memset and the product accumulated (β = 1). `c` is contiguous when its leading
    // dimension is its width.
    let contiguous = c.at.ld == c.dims[usize::from(c.at.order == Order::Row)];
    let accumulate = || overwrite(m as usize, n as usize, k as usize) == Overwrite::Accumulate;
    let beta = if beta == F::zero() && contiguous && accumulate() {
        // SAFETY: `c` is m×n with leading dimension n (row-major) or m (column-major), so
        // its elements are exactly the m·n scalars from `c.ptr`, uniquely borrowed; all-zero
        // bits are 0.0 for `f32` and `f64`.
        unsafe { std::ptr::write_bytes(c.ptr, 0, m as usize * n as usize) };
        F::one()
    } else {
        beta
    };
    let order = c.at.order;
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
    // SAFETY: `Mat`/`MatMut` were made only by `dense_rows` (a slice of exactly rows·cols
    // scalars, row-major, `ld = cols`) or `addressing` (strides proved to reach only the
    // view's elements), so BLAS, reading each matrix from its first element with the layout,
    // transpose flag and leading dimension passed here, touches exactly the elements of `a`
    // (m×k), `b` (k×n) and `c` (m×n), borrowed and alive for the call; every dimension and
    // leading dimension fits `c_int`; `c` holds a unique mutable borrow, so it overlaps
    // neither `a` nor `b`.
    unsafe {
        (F::CBLAS_GEMM)(
            layout,
            trans(a.at),
            trans(b.at),
            m,
            n,
            k,
            alpha,
            a.ptr,
            a.at.ld,
            b.ptr,
            b.at.ld,
            beta,
            c.ptr,
            c.at.ld,
        );
    }
    Ok(())
}

/// How this OpenBLAS best computes a product that overwrites its output, `C ← A·B` or
/// `C ← A·B + bias`; decided once per process from the kernels it picked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overwrite {
    /// Write C in a pass of our own (a memset, or the bias on every row), then accumulate the
    /// product with β = 1.
    Accumulate,
    /// Pass β = 0 (then add a bias in a pass after the product).
    Beta0,
}

/// The [`Overwrite`] strategy for an m×k by k×n product on this process's OpenBLAS.
///
/// OpenBLAS applies β ≠ 1 in a pass of its own before the product, one column of C at a time,
/// which is slow for a narrow row-major C (N×4 is N columns of 4 to it). So on most kernel
/// families [`Overwrite::Accumulate`]. Their SkylakeX kernels (also Cooperlake's and Sapphire
/// Rapids') send small products with β = 0 to `?gemm_small_kernel_b0_*`, about 2× faster than
/// the general-β path β = 1 takes there, except for the tiniest products, where the separate
/// bias pass costs more than the kernel saves: there [`Overwrite::Beta0`] from
/// [`BETA0_MIN_WORK`] multiply-adds up.
///
/// Measured by forcing each strategy, `step_timing` (one OpenBLAS thread, 3 interleaved
/// rounds; 2-core AMD EPYC Zen 4, OpenBLAS 0.3.21), median µs per step Accumulate against
/// Beta0, and their ratio:
///
/// | kernel | f64 2×3→4→2 | f32 64×3→4→2 | f32 1024×3→4→2 | f32 16384×3→4→2 | f32 32×784→256→10 |
/// | --- | --- | --- | --- | --- | --- |
/// | Cooperlake (this CPU's) | 0.56 / 0.67 (1.21) | 2.55 / 1.57 (0.62) | 26.2 / 12.2 (0.42) | 417 / 183 (0.45) | 414 / 445 (1.07) |
/// | Haswell | 0.89 / 1.11 (1.25) | 1.63 / 2.16 (1.18) | 17.6 / 18.4 (1.13) | 342 / 353 (1.03) | |
/// | Sandybridge | | | | 487 / 551 (1.14) | 560 / 565 (1.01) |
/// | Prescott | 0.86 / 1.06 (1.24) | 2.54 / 3.23 (1.29) | 25.3 / 29.4 (1.17) | 274 / 347 (1.24) | 719 / 871 (1.21) |
///
/// and on Cooperlake and SkylakeX kernels by batch at 3→4→2: N = 2 1.19–1.28, N = 8 and 16
/// 0.92–1.08 (a tie), N = 32 0.63–0.83, N = 128 0.56–0.71; at 784→256→10, N = 1 0.85–0.89.
/// Another CBLAS than OpenBLAS: `Accumulate`.
pub(crate) fn overwrite(m: usize, n: usize, k: usize) -> Overwrite {
    overwrite_on(b0_kernels(), m, n, k)
}

/// [`overwrite`] on kernels with (`b0_kernels`) or without fast β = 0 small-matrix paths.
fn overwrite_on(b0_kernels: bool, m: usize, n: usize, k: usize) -> Overwrite {
    let work = m.saturating_mul(n).saturating_mul(k);
    if b0_kernels && work >= BETA0_MIN_WORK { Overwrite::Beta0 } else { Overwrite::Accumulate }
}

/// The products (m·n·k multiply-adds) from which β = 0 pays on SkylakeX-family kernels: the
/// reference note's N = 2 step (every product ≤ 24) stays below, N = 32 (≥ 256) above.
const BETA0_MIN_WORK: usize = 128;

/// Whether this OpenBLAS runs kernels with fast β = 0 small-matrix paths (decided once).
fn b0_kernels() -> bool {
    #[cfg(feature = "openblas")]
    {
        static B0: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *B0.get_or_init(|| {
            let core = openblas::openblas_corename().to_ascii_lowercase();
            ["skylakex", "cooperlake", "sapphirerapids"].contains(&core.as_str())
        })
    }
    #[cfg(not(feature = "openblas"))]
    false
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
        fn openblas_get_corename() -> *const c_char;
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

    /// The kernel set OpenBLAS runs (`"Cooperlake"`, `"Haswell"`, `"Prescott"` …): chosen
    /// once when the library loaded, from the CPU or from `OPENBLAS_CORETYPE`.
    pub(crate) fn openblas_corename() -> String {
        // SAFETY: OpenBLAS returns a pointer to a static NUL-terminated string.
        let s = unsafe { CStr::from_ptr(openblas_get_corename()) };
        s.to_string_lossy().trim().to_owned()
    }
}

#[cfg(feature = "openblas")]
pub(crate) use openblas::openblas_corename;
#[cfg(feature = "openblas")]
pub use openblas::{num_threads, openblas_config, set_num_threads};

pub(crate) mod simd;

#[cfg(test)]
pub(crate) mod tests;
