//! Tests of the BLAS boundary.

use std::cell::Cell;

thread_local! {
    static CALLS: Cell<usize> = const { Cell::new(0) };
}

/// Called by `gemm` (in test builds) right before each CBLAS call.
pub(crate) fn count_call() {
    CALLS.with(|c| c.set(c.get() + 1));
}

/// CBLAS `?gemm` calls made on this thread so far.
pub(crate) fn calls() -> usize {
    CALLS.with(Cell::get)
}

// ---------------------------------------------------------------------------------------------
// Property tests of `gemm` against a triple-loop reference, over every way a view can lie in
// memory, and unit tests of `addressing`.

use ndarray::{Array1, Array2, ArrayBase, ArrayView2, ArrayViewMut2, Axis, Ix2, RawData, ShapeBuilder, s};
use proptest::prelude::*;

use super::{Addressing, Order, addressing, gemm};
use crate::error::Error;
use crate::scalar::Scalar;

/// What the parts of a backing buffer outside the view hold; must survive every call.
const SENTINEL: f64 = 7777.0;

/// How a matrix lies in a backing array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// A standard (row-major) array.
    Row,
    /// A column-major array: `Array2::zeros((r, c).f())`.
    ColF,
    /// `.t()` of a standard `c × r` array (column-major).
    Transposed,
    /// Every other row of a `2r × c` array: `s![..;2, ..]` (row-major, `ld = 2c`).
    RowStep2,
    /// Every other column of an `r × 2c` array: `s![.., ..;2]` (BLAS cannot address it).
    ColStep2,
    /// The block `[1..r+1, 2..c+2]` of an `(r+3) × (c+2)` array (offset, `ld > cols`).
    SubBlock,
    /// `.t()` of a sub-block: column-major with an offset and `ld > rows`.
    SubBlockT,
    /// `.t()` of every other row of a `2c × r` array (column-major, `ld = 2r`).
    TransposedStep2,
    /// `s![..;-1, ..]`: a negative row stride.
    RevRows,
    /// `s![.., ..;-1]`: a negative column stride.
    RevCols,
    /// Both axes reversed.
    RevBoth,
}

const LAYOUTS: [Layout; 11] = [
    Layout::Row,
    Layout::ColF,
    Layout::Transposed,
    Layout::RowStep2,
    Layout::ColStep2,
    Layout::SubBlock,
    Layout::SubBlockT,
    Layout::TransposedStep2,
    Layout::RevRows,
    Layout::RevCols,
    Layout::RevBoth,
];

/// Where a `rows × cols` matrix lies in a flat backing buffer of `len()` elements. The same
/// place cut from several buffers (the operand, the expected values, a mask) lines them up.
#[derive(Clone, Debug)]
enum Place {
    /// Cut by ndarray operations (`.t()`, `slice`) from a standard or Fortran-order backing array.
    Laid { layout: Layout, rows: usize, cols: usize },
    /// Explicit non-negative strides over the buffer, then the `flip`ped axes inverted. Read-only
    /// views may overlap or broadcast (stride 0).
    Strided { rows: usize, cols: usize, strides: [usize; 2], flip: [bool; 2] },
}

/// Applies `layout` to a view of the backing array (shape from [`backing_shape`]).
fn lay<S: RawData>(layout: Layout, rows: usize, cols: usize, v: ArrayBase<S, Ix2>) -> ArrayBase<S, Ix2> {
    match layout {
        Layout::Row | Layout::ColF => v,
        Layout::Transposed => v.reversed_axes(),
        Layout::RowStep2 => v.slice_move(s![..;2, ..]),
        Layout::ColStep2 => v.slice_move(s![.., ..;2]),
        Layout::SubBlock => v.slice_move(s![1..rows + 1, 2..cols + 2]),
        Layout::SubBlockT => v.slice_move(s![2..cols + 2, 1..rows + 1]).reversed_axes(),
        Layout::TransposedStep2 => v.slice_move(s![..;2, ..]).reversed_axes(),
        Layout::RevRows => v.slice_move(s![..;-1, ..]),
        Layout::RevCols => v.slice_move(s![.., ..;-1]),
        Layout::RevBoth => v.slice_move(s![..;-1, ..;-1]),
    }
}

/// Shape of the backing array for `layout`, and whether it is in Fortran order.
fn backing_shape(layout: Layout, rows: usize, cols: usize) -> (usize, usize, bool) {
    let (r, c) = (rows, cols);
    match layout {
        Layout::Row | Layout::RevRows | Layout::RevCols | Layout::RevBoth => (r, c, false),
        Layout::ColF => (r, c, true),
        Layout::Transposed => (c, r, false),
        Layout::RowStep2 => (2 * r, c, false),
        Layout::ColStep2 => (r, 2 * c, false),
        Layout::SubBlock => (r + 3, c + 2, false),
        Layout::SubBlockT => (c + 2, r + 3, false),
        Layout::TransposedStep2 => (2 * c, r, false),
    }
}

fn flip<S: RawData>(mut v: ArrayBase<S, Ix2>, flip: [bool; 2]) -> ArrayBase<S, Ix2> {
    for (axis, &f) in flip.iter().enumerate() {
        if f {
            v.invert_axis(Axis(axis));
        }
    }
    v
}

impl Place {
    fn shape(&self) -> (usize, usize) {
        match *self {
            Place::Laid { rows, cols, .. } | Place::Strided { rows, cols, .. } => (rows, cols),
        }
    }

    /// Elements of the backing buffer.
    fn len(&self) -> usize {
        match *self {
            Place::Laid { layout, rows, cols } => {
                let (br, bc, _) = backing_shape(layout, rows, cols);
                br * bc
            }
            Place::Strided { rows, cols, strides, .. } => {
                let span = if rows == 0 || cols == 0 {
                    0
                } else {
                    (rows - 1) * strides[0] + (cols - 1) * strides[1] + 1
                };
                span + 2 // two elements past the view
            }
        }
    }

    fn cut<'a, A>(&self, data: &'a [A]) -> ArrayView2<'a, A> {
        match *self {
            Place::Laid { layout, rows, cols } => {
                let (br, bc, fortran) = backing_shape(layout, rows, cols);
                let base = if fortran {
                    ArrayView2::from_shape((br, bc).f(), data)
                } else {
                    ArrayView2::from_shape((br, bc), data)
                };
                lay(layout, rows, cols, base.unwrap())
            }
            Place::Strided { rows, cols, strides, flip: f } => {
                let v = ArrayView2::from_shape((rows, cols).strides((strides[0], strides[1])), data);
                flip(v.unwrap(), f)
            }
        }
    }

    fn cut_mut<'a, A>(&self, data: &'a mut [A]) -> ArrayViewMut2<'a, A> {
        match *self {
            Place::Laid { layout, rows, cols } => {
                let (br, bc, fortran) = backing_shape(layout, rows, cols);
                let base = if fortran {
                    ArrayViewMut2::from_shape((br, bc).f(), data)
                } else {
                    ArrayViewMut2::from_shape((br, bc), data)
                };
                lay(layout, rows, cols, base.unwrap())
            }
            Place::Strided { rows, cols, strides, flip: f } => {
                let v = ArrayViewMut2::from_shape((rows, cols).strides((strides[0], strides[1])), data);
                flip(v.expect("a mutable strided place must not overlap"), f)
            }
        }
    }
}

/// A small deterministic generator (SplitMix64), so that proptest draws one seed per case
/// rather than thousands of floats.
struct SplitMix(u64);

impl SplitMix {
    /// Uniform in `[-1, 1)`.
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    }
}

/// Relative tolerance of one product, per element type.
fn rel_tol<F: Scalar>() -> f64 {
    if F::NAME == "f32" { 1e-4 } else { 1e-12 }
}

/// `alpha·A·B + beta·C` by the definition, accumulated in `f64`; `C` is not read when
/// `beta == 0`.
fn reference<F: Scalar>(
    alpha: f64,
    a: &ArrayView2<F>,
    b: &ArrayView2<F>,
    beta: f64,
    c: &ArrayView2<F>,
) -> Array2<f64> {
    let k = a.ncols();
    Array2::from_shape_fn(c.raw_dim(), |(i, j)| {
        let mut dot = 0.0;
        for l in 0..k {
            dot += a[[i, l]].as_f64() * b[[l, j]].as_f64();
        }
        let old = if beta == 0.0 { 0.0 } else { beta * c[[i, j]].as_f64() };
        alpha * dot + old
    })
}

fn max_abs<F: Scalar>(v: &ArrayView2<F>) -> f64 {
    v.iter().fold(0.0, |m, x| m.max(x.as_f64().abs()))
}

/// Fills A and B (the whole buffers) and the view of C with values from `seed` (C with NaN when
/// `beta == 0`, the rest of C's buffer with [`SENTINEL`]), runs `gemm`, and checks the result
/// against [`reference`], the buffer of C outside the view, and the CBLAS call count.
fn check_gemm<F: Scalar>(
    alpha: f64,
    a: &Place,
    b: &Place,
    beta: f64,
    c: &Place,
    seed: u64,
) -> Result<(), TestCaseError> {
    let ((m, k), (kb, n)) = (a.shape(), b.shape());
    assert_eq!((kb, (m, n)), (k, c.shape()), "test bug: shapes do not chain");
    let (alpha, beta) = (F::cast(alpha), F::cast(beta));
    let mut rng = SplitMix(seed);
    let a_data: Vec<F> = (0..a.len()).map(|_| F::cast(rng.uniform())).collect();
    let b_data: Vec<F> = (0..b.len()).map(|_| F::cast(rng.uniform())).collect();
    let mut c_data = vec![F::cast(SENTINEL); c.len()];
    c.cut_mut(&mut c_data).map_inplace(|x| {
        *x = if beta == F::zero() { F::nan() } else { F::cast(rng.uniform()) };
    });

    let (av, bv) = (a.cut(&a_data), b.cut(&b_data));
    let want = reference(alpha.as_f64(), &av, &bv, beta.as_f64(), &c.cut(&c_data));
    let mut expected: Vec<f64> = c_data.iter().map(|x| x.as_f64()).collect();
    c.cut_mut(&mut expected).assign(&want);
    let mut inside = vec![false; c.len()];
    c.cut_mut(&mut inside).fill(true);
    let scale = alpha.as_f64().abs() * k as f64 * max_abs(&av) * max_abs(&bv)
        + beta.as_f64().abs() * max_abs(&c.cut(&c_data));
    let tol = rel_tol::<F>() * scale;

    let before = calls();
    let result = gemm(alpha, av, bv, beta, c.cut_mut(&mut c_data));
    let made = calls() - before;

    prop_assert_eq!(result, Ok(()));
    if m > 0 && n > 0 && k > 0 {
        prop_assert_eq!(made, 1, "one CBLAS call per product, copies or not");
    } else {
        prop_assert!(made <= 1, "{} CBLAS calls for an empty product", made);
    }
    for (idx, ((got, want), inside)) in c_data.iter().zip(&expected).zip(&inside).enumerate() {
        let got = got.as_f64();
        if *inside {
            prop_assert!(
                got.is_finite() && (got - want).abs() <= tol,
                "C buffer[{}]: got {}, want {} (tol {})",
                idx,
                got,
                want,
                tol
            );
        } else {
            prop_assert!(got == *want, "C buffer[{}] outside the view: {} became {}", idx, want, got);
        }
    }
    Ok(())
}

fn layout() -> impl Strategy<Value = Layout> {
    proptest::sample::select(LAYOUTS.to_vec())
}

/// 1..=70, with 1 and the smallest sizes drawn often.
fn dim() -> impl Strategy<Value = usize> {
    prop_oneof![1 => Just(1usize), 1 => 2..=3usize, 4 => 1..=70usize]
}

fn alpha() -> impl Strategy<Value = f64> {
    prop_oneof![Just(1.0), Just(-1.0), Just(0.0), -2.0..2.0f64]
}

/// Zero often: then C holds NaN and must not be read.
fn beta() -> impl Strategy<Value = f64> {
    prop_oneof![2 => Just(0.0), 1 => Just(1.0), 2 => -2.0..2.0f64]
}

/// Non-negative strides for a read-only view (any value, so overlapping rows, broadcasting
/// and strides on length-1 axes far larger than the buffer's other axis), and axis flips.
fn any_strides() -> impl Strategy<Value = ([usize; 2], [bool; 2])> {
    let stride = || prop_oneof![4 => 0..=9usize, 1 => Just(1000usize)];
    ([stride(), stride()], [any::<bool>(), any::<bool>()])
}

/// Strides for a mutable `rows × cols` view that never overlaps: a minor axis with stride
/// `minor`, a major one past the minor's span by `extra`, and arbitrary strides (`unit`) on
/// axes of length 1.
#[derive(Clone, Debug)]
struct MutStrides {
    col_major: bool,
    minor: usize,
    extra: usize,
    unit: [usize; 2],
    flip: [bool; 2],
}

fn mut_strides() -> impl Strategy<Value = MutStrides> {
    let unit = || prop_oneof![Just(0usize), Just(1usize), Just(5usize), Just(1000usize)];
    (any::<bool>(), 1..=3usize, 0..=3usize, [unit(), unit()], [any::<bool>(), any::<bool>()])
        .prop_map(|(col_major, minor, extra, unit, flip)| MutStrides { col_major, minor, extra, unit, flip })
}

impl MutStrides {
    fn place(&self, rows: usize, cols: usize) -> Place {
        let (minor_ax, major_ax) = if self.col_major { (0, 1) } else { (1, 0) };
        let len = [rows, cols];
        let mut strides = [0; 2];
        strides[minor_ax] = if len[minor_ax] == 1 { self.unit[minor_ax] } else { self.minor };
        strides[major_ax] = if len[major_ax] == 1 {
            self.unit[major_ax]
        } else {
            len[minor_ax].saturating_sub(1) * strides[minor_ax] + 1 + self.extra
        };
        Place::Strided { rows, cols, strides, flip: self.flip }
    }
}

fn laid(layout: Layout, rows: usize, cols: usize) -> Place {
    Place::Laid { layout, rows, cols }
}

proptest! {
    // No regression files: the tree is shared, and a failure is reported with its input.
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(64) })]

    /// Every combination of layouts for A, B and C, against the reference (f64).
    #[test]
    fn gemm_f64_matches_reference_in_every_layout(
        (m, n, k) in (dim(), dim(), dim()),
        (la, lb, lc) in (layout(), layout(), layout()),
        alpha in alpha(),
        beta in beta(),
        seed in any::<u64>(),
    ) {
        check_gemm::<f64>(alpha, &laid(la, m, k), &laid(lb, k, n), beta, &laid(lc, m, n), seed)?;
    }

    /// Every combination of layouts for A, B and C, against the reference (f32).
    #[test]
    fn gemm_f32_matches_reference_in_every_layout(
        (m, n, k) in (dim(), dim(), dim()),
        (la, lb, lc) in (layout(), layout(), layout()),
        alpha in alpha(),
        beta in beta(),
        seed in any::<u64>(),
    ) {
        check_gemm::<f32>(alpha, &laid(la, m, k), &laid(lb, k, n), beta, &laid(lc, m, n), seed)?;
    }

    /// Arbitrary strides: A and B overlapping, broadcast (stride 0), reversed, with any stride
    /// on length-1 axes; C with any non-overlapping strides (gaps, either order, reversed,
    /// any stride on length-1 axes). Small sizes so that vectors and 1×1 are frequent.
    #[test]
    fn gemm_with_arbitrary_strides(
        (m, n, k) in (1..=9usize, 1..=9usize, 1..=9usize).prop_map(|(m, n, k)| (m % 5 + 1, n % 6 + 1, k % 7 + 1)),
        (sa, fa) in any_strides(),
        (sb, fb) in any_strides(),
        sc in mut_strides(),
        alpha in alpha(),
        beta in beta(),
        seed in any::<u64>(),
        single in any::<bool>(),
    ) {
        let a = Place::Strided { rows: m, cols: k, strides: sa, flip: fa };
        let b = Place::Strided { rows: k, cols: n, strides: sb, flip: fb };
        let c = sc.place(m, n);
        if single {
            check_gemm::<f32>(alpha, &a, &b, beta, &c, seed)?;
        } else {
            check_gemm::<f64>(alpha, &a, &b, beta, &c, seed)?;
        }
    }

    /// m = 0, n = 0 or k = 0, in every layout: Ok, C ← β·C (zeros for β = 0 even over NaN),
    /// nothing outside C's view touched.
    #[test]
    fn gemm_degenerate_sizes(
        (m, n, k) in (0..=6usize, 0..=6usize, 0..=6usize, 0..3usize).prop_map(|(m, n, k, zero)| match zero {
            0 => (0, n, k),
            1 => (m, 0, k),
            _ => (m, n, 0),
        }),
        (la, lb, lc) in (layout(), layout(), layout()),
        alpha in alpha(),
        beta in beta(),
        seed in any::<u64>(),
    ) {
        check_gemm::<f64>(alpha, &laid(la, m, k), &laid(lb, k, n), beta, &laid(lc, m, n), seed)?;
        check_gemm::<f32>(alpha, &laid(la, m, k), &laid(lb, k, n), beta, &laid(lc, m, n), seed)?;
    }

    /// A shape mismatch (A's rows, the inner dimension, or B's columns) is a `ShapeMismatch`
    /// naming the operand, makes no CBLAS call and leaves C exactly as it was.
    #[test]
    fn gemm_shape_mismatch_leaves_c_unchanged(
        (m, n, k) in (1..=8usize, 1..=8usize, 1..=8usize),
        which in 0..3usize,
        wrong in 0..=9usize,
        (la, lb, lc) in (layout(), layout(), layout()),
        seed in any::<u64>(),
    ) {
        let right = [m, k, n][which];
        prop_assume!(wrong != right);
        let (a_shape, b_shape, want) = match which {
            0 => ((wrong, k), (k, n), ("gemm a", [m, k], [wrong, k])),
            1 => ((m, k), (wrong, n), ("gemm b", [k, n], [wrong, n])),
            _ => ((m, k), (k, wrong), ("gemm b", [k, n], [k, wrong])),
        };
        let (a, b, c) = (laid(la, a_shape.0, a_shape.1), laid(lb, b_shape.0, b_shape.1), laid(lc, m, n));
        let mut rng = SplitMix(seed);
        let a_data: Vec<f64> = (0..a.len()).map(|_| rng.uniform()).collect();
        let b_data: Vec<f64> = (0..b.len()).map(|_| rng.uniform()).collect();
        let mut c_data: Vec<f64> = (0..c.len()).map(|_| rng.uniform()).collect();
        c.cut_mut(&mut c_data)[[0, 0]] = f64::NAN;
        let before_data = c_data.clone();

        let before = calls();
        let result = gemm(1.5, a.cut(&a_data), b.cut(&b_data), 0.5, c.cut_mut(&mut c_data));
        prop_assert_eq!(calls() - before, 0);
        let (operand, expected, actual) = want;
        prop_assert_eq!(result, Err(Error::ShapeMismatch { operand, expected, actual }));
        let same = before_data.iter().zip(&c_data).all(|(x, y)| x.to_bits() == y.to_bits());
        prop_assert!(same, "C changed by a failed call");
    }

    /// Vectors made the ways callers make them: `insert_axis` of a 1-D array (contiguous,
    /// stepped or reversed), a single row or column sliced out of a bigger matrix, and their
    /// transposes; row × matrix, matrix × column, outer product (k = 1), dot product (1×1).
    #[test]
    fn gemm_vectors_from_insert_axis_and_slices(
        len in (1..=40usize, 1..=40usize),
        kind in 0..4usize,
        how in (0..5usize, 0..5usize, 0..5usize),
        alpha in alpha(),
        beta in beta(),
        seed in any::<u64>(),
    ) {
        let (p, q) = len;
        // (m, n, k) with the ones the kind calls for.
        let (m, n, k) = match kind {
            0 => (1, p, q), // row · matrix
            1 => (p, 1, q), // matrix · column
            2 => (p, q, 1), // outer product
            _ => (1, 1, p), // dot product
        };
        let mut rng = SplitMix(seed);
        // Backing stores: a 1-D array (stepped/reversed views of it) and a bigger matrix.
        let mut fill = |len: usize| Array1::from_shape_fn(len, |_| rng.uniform());
        // Square, so that a row or column of it can be read either way round.
        let side = 2 * (m.max(n).max(k) + 2);
        let (a_vec, b_vec, big_a, big_b) = (fill(2 * m * k), fill(2 * k * n), fill(side * side), fill(side * side));
        let big_a = big_a.into_shape_with_order((side, side)).unwrap();
        let big_b = big_b.into_shape_with_order((side, side)).unwrap();
        let a = vector_view(how.0, m, k, &a_vec, &big_a);
        let b = vector_view(how.1, k, n, &b_vec, &big_b);
        let beta = if beta == 0.0 { 0.0 } else { beta };
        let mut c_vec = Array1::from_elem(2 * m * n + 3, SENTINEL);
        let mut c_big = Array2::from_elem((side, side), SENTINEL);
        let mut c = vector_view_mut(how.2, m, n, &mut c_vec, &mut c_big);
        c.map_inplace(|x| *x = if beta == 0.0 { f64::NAN } else { rng.uniform() });
        let want = reference(alpha, &a, &b, beta, &c.view());
        let scale = alpha.abs() * k as f64 * max_abs(&a) * max_abs(&b) + beta.abs() * max_abs(&c.view());

        let before = calls();
        prop_assert_eq!(gemm(alpha, a, b, beta, c.view_mut()), Ok(()));
        prop_assert_eq!(calls() - before, 1);
        for (got, want) in c.iter().zip(&want) {
            prop_assert!(got.is_finite() && (got - want).abs() <= 1e-12 * scale, "got {}, want {}", got, want);
        }
        let touched = c_vec.iter().chain(&c_big).filter(|&&x| x != SENTINEL).count();
        prop_assert_eq!(touched, m * n, "elements written outside C");
    }
}

/// A `rows × cols` view; a vector (`rows == 1` or `cols == 1`) is made the `how`-th way: from the 1-D
/// `vec` by `insert_axis` (contiguous, every other element, reversed), or sliced out of `big`
/// (a row or column of it, at an offset, transposed when that gives the shape). A matrix is a
/// sub-block of `big`.
fn vector_view<'a>(
    how: usize,
    rows: usize,
    cols: usize,
    vec: &'a Array1<f64>,
    big: &'a Array2<f64>,
) -> ArrayView2<'a, f64> {
    let len = rows * cols;
    let axis = if rows == 1 { Axis(0) } else { Axis(1) };
    match how {
        _ if rows > 1 && cols > 1 => big.slice(s![1..1 + rows, 2..2 + cols]),
        0 => vec.slice(s![..len]).insert_axis(axis),
        1 => vec.slice(s![..2 * len;2]).insert_axis(axis),
        2 => vec.slice(s![..len;-1]).insert_axis(axis),
        3 if rows == 1 => big.slice(s![1..2, 2..2 + cols]),
        3 => big.slice(s![1..1 + rows, 2..3]),
        _ if rows == 1 => big.slice(s![2..2 + cols, 1..2]).reversed_axes(),
        _ => big.slice(s![1..2, 2..2 + rows]).reversed_axes(),
    }
}

/// [`vector_view`] for C.
fn vector_view_mut<'a>(
    how: usize,
    rows: usize,
    cols: usize,
    vec: &'a mut Array1<f64>,
    big: &'a mut Array2<f64>,
) -> ArrayViewMut2<'a, f64> {
    let len = rows * cols;
    let axis = if rows == 1 { Axis(0) } else { Axis(1) };
    match how {
        _ if rows > 1 && cols > 1 => big.slice_mut(s![1..1 + rows, 2..2 + cols]),
        0 => vec.slice_mut(s![1..1 + len]).insert_axis(axis),
        1 => vec.slice_mut(s![1..1 + 2 * len;2]).insert_axis(axis),
        2 => vec.slice_mut(s![1..1 + len;-1]).insert_axis(axis),
        3 if rows == 1 => big.slice_mut(s![1..2, 2..2 + cols]),
        3 => big.slice_mut(s![1..1 + rows, 2..3]),
        _ if rows == 1 => big.slice_mut(s![2..2 + cols, 1..2]).reversed_axes(),
        _ => big.slice_mut(s![1..2, 2..2 + rows]).reversed_axes(),
    }
}

// ---- `addressing` -------------------------------------------------------------------------------

fn at(order: Order, ld: i32) -> Option<Addressing> {
    Some(Addressing { order, ld })
}

#[test]
fn addressing_plain_matrices() {
    use Order::{Col, Row};
    for prefer in [Row, Col] {
        assert_eq!(addressing(3, 4, &[4, 1], prefer), at(Row, 4), "standard");
        assert_eq!(addressing(3, 4, &[6, 1], prefer), at(Row, 6), "row-major sub-block");
        assert_eq!(addressing(3, 4, &[1, 3], prefer), at(Col, 3), "column-major");
        assert_eq!(addressing(3, 4, &[1, 5], prefer), at(Col, 5), "column-major sub-block");
        assert_eq!(addressing(3, 4, &[8, 2], prefer), None, "neither axis contiguous");
        let max = i32::MAX as isize;
        assert_eq!(addressing(2, 3, &[max, 1], prefer), at(Row, i32::MAX), "ld = c_int::MAX");
        assert_eq!(addressing(2, 3, &[max + 1, 1], prefer), None, "ld beyond c_int");
        assert_eq!(addressing(3, 2, &[1, max + 1], prefer), None, "ld beyond c_int");
    }
}

#[test]
fn addressing_length_one_axes_ignore_their_stride() {
    use Order::{Col, Row};
    // A single row: its row stride is meaningless (insert_axis, slicing, broadcasting).
    for s0 in [0, 1, 5, 999, -3, isize::MAX, isize::MIN] {
        assert_eq!(addressing(1, 5, &[s0, 1], Row), at(Row, 5), "row, s0 = {s0}");
        assert_eq!(addressing(1, 5, &[s0, 1], Col), at(Col, 1), "row read as a 1×5 column-major, s0 = {s0}");
        assert_eq!(addressing(1, 5, &[s0, 3], Row), at(Col, 3), "stepped row, s0 = {s0}");
        assert_eq!(addressing(5, 1, &[1, s0], Row), at(Row, 1), "column, s1 = {s0}");
        assert_eq!(addressing(5, 1, &[1, s0], Col), at(Col, 5), "column, s1 = {s0}");
        assert_eq!(addressing(5, 1, &[7, s0], Col), at(Row, 7), "stepped column, s1 = {s0}");
        for s1 in [0, 1, 7, -1, isize::MIN] {
            assert_eq!(addressing(1, 1, &[s0, s1], Row), at(Row, 1), "1×1, strides [{s0}, {s1}]");
            assert_eq!(addressing(1, 1, &[s0, s1], Col), at(Col, 1), "1×1, strides [{s0}, {s1}]");
        }
    }
}

#[test]
fn addressing_rejects_broadcast_negative_and_overlapping_strides() {
    use Order::{Col, Row};
    for prefer in [Row, Col] {
        // Zero stride (broadcast).
        assert_eq!(addressing(3, 4, &[0, 1], prefer), None);
        assert_eq!(addressing(3, 4, &[1, 0], prefer), None);
        assert_eq!(addressing(3, 4, &[0, 0], prefer), None);
        assert_eq!(addressing(1, 4, &[4, 0], prefer), None, "a broadcast row");
        assert_eq!(addressing(4, 1, &[0, 1], prefer), None, "a broadcast column");
        // Negative strides.
        assert_eq!(addressing(3, 4, &[-4, 1], prefer), None);
        assert_eq!(addressing(3, 4, &[4, -1], prefer), None);
        assert_eq!(addressing(3, 4, &[1, -3], prefer), None);
        assert_eq!(addressing(1, 4, &[4, -1], prefer), None, "a reversed row");
        assert_eq!(addressing(4, 1, &[-1, 1], prefer), None, "a reversed column");
        // Overlapping rows or columns (ld smaller than the contiguous axis).
        assert_eq!(addressing(3, 4, &[3, 1], prefer), None);
        assert_eq!(addressing(3, 4, &[1, 1], prefer), None);
        assert_eq!(addressing(3, 4, &[1, 2], prefer), None);
        assert_eq!(addressing(4, 3, &[2, 1], prefer), None);
    }
}

/// β = 0 only on kernels with fast β = 0 small-matrix paths, and there only from
/// `BETA0_MIN_WORK` multiply-adds up: the reference note's N = 2 products stay on memset +
/// β = 1, where the measurements found it faster on every family.
#[test]
fn overwrite_takes_beta0_only_where_it_was_measured_faster() {
    use super::{Overwrite, overwrite_on};
    // The N = 2 step of 3→4→2: X·W1 (2×3·3×4), H1ᵀ·dŷ (4×2·2×2), Xᵀ·dY1 (3×2·2×4).
    for (m, n, k) in [(2, 4, 3), (2, 2, 4), (4, 2, 2), (3, 4, 2), (2, 4, 2)] {
        assert_eq!(overwrite_on(true, m, n, k), Overwrite::Accumulate, "{m}x{n}x{k}");
    }
    // N = 32 at 3→4→2, and 784→256→10 at N = 1.
    for (m, n, k) in [(32, 4, 3), (32, 2, 4), (1, 256, 784), (usize::MAX, usize::MAX, 2)] {
        assert_eq!(overwrite_on(true, m, n, k), Overwrite::Beta0, "{m}x{n}x{k}");
        assert_eq!(overwrite_on(false, m, n, k), Overwrite::Accumulate, "{m}x{n}x{k}");
    }
}
