//! The BLAS boundary: `gemm(alpha, a, b, beta, c)` (C ← α·A·B + β·C through one CBLAS call) on
//! small matrices laid out every way an ndarray view can be: row- or column-major, transposed,
//! sliced with positive, negative and zero-length steps, arbitrary (even overlapping or zero)
//! strides for the read-only operands, any stride on an axis of length 1, and broadcasts; with
//! shapes that agree or not, and dimensions beyond BLAS's 32-bit int (as broadcast or empty
//! views: nothing that large is allocated).
//!
//! Checked: either `Ok` and `c` equals a triple loop over the views' logical elements exactly
//! (the values are small integers times powers of two, so every order of summation rounds the
//! same), or a typed error (`ShapeMismatch` exactly when the shapes disagree, `TooLarge`
//! exactly when a dimension exceeds `i32::MAX`) with `c` untouched. The elements of `c`'s
//! backing buffer outside the view are never written. With β = 0, NaN in `c` is not read.
//!
//! Input format (one byte per field, missing bytes read as 0): flags (bit 0: f32, bit 1:
//! independent shapes, bit 2: a huge dimension), m, n, k, α, β, then per operand (a, b, c) its
//! layout (`Layout::decode`) and 8 values; see `run`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use two_layer_net::fuzzing::gemm;
use two_layer_net::ndarray::{Array2, ArrayView2, ArrayViewMut2, ShapeBuilder, s};
use two_layer_net::{Error, Scalar};

#[path = "../common/bytes.rs"]
mod bytes;
use bytes::Bytes;

/// Strides for one axis, including ones that only a length-1 axis can have (BLAS must then
/// ignore them) and ones beyond `i32`.
const STRIDES: [isize; 16] = [1, 2, 3, 5, -1, -2, -3, 0, 4, 7, -5, 1 << 31, (1 << 31) - 1, -(1 << 40), 9, 11];

const ALPHAS: [f64; 8] = [1.0, -1.0, 2.0, 0.5, 0.0, -0.25, 3.0, -2.0];
const BETAS: [f64; 8] = [0.0, 1.0, -1.0, 2.0, 0.5, 0.0, -0.5, 1.0];

/// How an operand lies in memory.
#[derive(Clone, Copy, Debug)]
enum Layout {
    /// A standard (row-major) array.
    Row,
    /// Column-major: `.t()` of a standard `cols × rows` array.
    Transposed,
    /// `s![r0..;sr, c0..;sc]` of a larger array, steps in ±1..±3 (negative = reversed).
    Sliced { r0: usize, c0: usize, sr: isize, sc: isize },
    /// `from_shape` with custom strides over a buffer just large enough (read-only operands may
    /// overlap; `c` may not, and falls back to `Sliced` when its strides would).
    Strided { s0: isize, s1: isize },
    /// A 1×1, 1×cols or rows×1 array broadcast to rows×cols (read-only operands only).
    Broadcast { axis: u8 },
}

impl Layout {
    fn decode(b: &mut Bytes<'_>) -> Layout {
        let step = |v: u8| [1, 2, 3, -1, -2, -3][usize::from(v) % 6];
        match b.below(5) {
            0 => Layout::Row,
            1 => Layout::Transposed,
            2 => Layout::Sliced { r0: b.below(3), c0: b.below(3), sr: step(b.u8()), sc: step(b.u8()) },
            3 => Layout::Strided { s0: STRIDES[b.below(16)], s1: STRIDES[b.below(16)] },
            _ => Layout::Broadcast { axis: b.u8() % 3 },
        }
    }
}

/// One operand: its logical shape, layout and values (small integers; NaN where asked).
struct Operand {
    rows: usize,
    cols: usize,
    layout: Layout,
    values: Vec<f64>,
}

impl Operand {
    fn decode(b: &mut Bytes<'_>, rows: usize, cols: usize, nan_ok: bool) -> Operand {
        let layout = Layout::decode(b);
        // Enough values for any layout's backing buffer, cycled.
        let mut values: Vec<f64> = (0..8).map(|_| value(b.u8(), nan_ok)).collect();
        if values.iter().all(|v| *v == 0.0) {
            values[0] = 1.0;
        }
        Operand { rows, cols, layout, values }
    }

    fn val(&self, i: usize) -> f64 {
        self.values[i % self.values.len()]
    }
}

/// A byte as a small integer in -4..=4 (exact in f32 and f64, as are all their products and
/// sums here), or NaN (`c` only, to check that β = 0 does not read it).
fn value(byte: u8, nan_ok: bool) -> f64 {
    if nan_ok && byte >= 250 { f64::NAN } else { f64::from(byte % 9) - 4.0 }
}

/// The rows × cols view of `op` in its layout, over storage kept in `store`.
fn view<'a, F: Scalar>(op: &Operand, store: &'a mut Vec<F>) -> ArrayView2<'a, F> {
    let (r, c) = (op.rows, op.cols);
    let fill = |store: &mut Vec<F>, len: usize| {
        store.clear();
        store.extend((0..len).map(|i| F::cast(op.val(i))));
    };
    match op.layout {
        Layout::Row => {
            fill(store, r * c);
            ArrayView2::from_shape((r, c), &store[..]).unwrap()
        }
        Layout::Transposed => {
            fill(store, r * c);
            ArrayView2::from_shape((c, r), &store[..]).unwrap().reversed_axes()
        }
        Layout::Sliced { r0, c0, sr, sc } => {
            let (br, bc) = (r0 + r * sr.unsigned_abs(), c0 + c * sc.unsigned_abs());
            fill(store, br * bc);
            let base = ArrayView2::from_shape((br, bc), &store[..]).unwrap();
            // Negative steps count from the end: take the last `r` rows (every |sr|-th), reversed.
            let (r0, c0) = if sr < 0 { (br - r * sr.unsigned_abs(), c0) } else { (r0, c0) };
            let (r0, c0) = if sc < 0 { (r0, bc - c * sc.unsigned_abs()) } else { (r0, c0) };
            let v = base.slice_move(s![r0 as isize..;sr, c0 as isize..;sc]);
            assert_eq!(v.dim(), (r, c), "slicing {:?}", op.layout);
            v
        }
        Layout::Strided { s0, s1 } => {
            let span = |len: usize, s: isize| len.saturating_sub(1).saturating_mul(s.unsigned_abs());
            let need = span(r, s0).saturating_add(span(c, s1)).saturating_add(1);
            if need <= 4096 {
                fill(store, need);
                let shape = (r, c).strides((s0 as usize, s1 as usize));
                if ArrayView2::from_shape(shape, &store[..]).is_ok() {
                    return ArrayView2::from_shape(shape, &store[..]).unwrap();
                }
            }
            let row = Operand { layout: Layout::Row, values: op.values.clone(), ..*op };
            view(&row, store)
        }
        Layout::Broadcast { axis } => {
            // A 1×1, 1×cols or rows×1 array repeated along the other axes: stride 0 there.
            let (len, strides) = match axis {
                0 => (1, (0, 0)),
                1 => (c, (0, 1)),
                _ => (r, (1, 0)),
            };
            fill(store, len.max(1));
            ArrayView2::from_shape((r, c).strides(strides), &store[..]).unwrap()
        }
    }
}

/// The rows × cols mutable view of `op` in its layout, over `store`, its elements set to `op`'s
/// values and the rest of `store` to the sentinel 77.
fn view_mut<'a, F: Scalar>(op: &Operand, store: &'a mut Vec<F>) -> ArrayViewMut2<'a, F> {
    let (r, c) = (op.rows, op.cols);
    let sentinel = F::cast(77.0);
    let sliced = |store: &'a mut Vec<F>, r0: usize, c0: usize, sr: isize, sc: isize| {
        let (br, bc) = (r0 + r * sr.unsigned_abs(), c0 + c * sc.unsigned_abs());
        store.clear();
        store.resize(br * bc, sentinel);
        let base = ArrayViewMut2::from_shape((br, bc), &mut store[..]).unwrap();
        let (r0, c0) = if sr < 0 { (br - r * sr.unsigned_abs(), c0) } else { (r0, c0) };
        let (r0, c0) = if sc < 0 { (r0, bc - c * sc.unsigned_abs()) } else { (r0, c0) };
        base.slice_move(s![r0 as isize..;sr, c0 as isize..;sc])
    };
    let mut v = match op.layout {
        Layout::Row | Layout::Broadcast { .. } => sliced(store, 0, 0, 1, 1),
        Layout::Transposed => {
            store.clear();
            store.resize(r * c, sentinel);
            ArrayViewMut2::from_shape((c, r), &mut store[..]).unwrap().reversed_axes()
        }
        Layout::Sliced { r0, c0, sr, sc } => sliced(store, r0, c0, sr, sc),
        Layout::Strided { s0, s1 } => {
            let span = |len: usize, s: isize| len.saturating_sub(1).saturating_mul(s.unsigned_abs());
            let need = span(r, s0).saturating_add(span(c, s1)).saturating_add(1);
            let ok = need <= 4096 && {
                let shape = (r, c).strides((s0 as usize, s1 as usize));
                store.clear();
                store.resize(need, sentinel);
                ArrayViewMut2::from_shape(shape, &mut store[..]).is_ok()
            };
            if ok {
                let shape = (r, c).strides((s0 as usize, s1 as usize));
                ArrayViewMut2::from_shape(shape, &mut store[..]).unwrap()
            } else {
                sliced(store, 1, 0, 2, -1)
            }
        }
    };
    for (i, x) in v.iter_mut().enumerate() {
        *x = F::cast(op.val(i));
    }
    v
}

fn same(x: f64, y: f64) -> bool {
    x == y || (x.is_nan() && y.is_nan())
}

fuzz_target!(|data: &[u8]| {
    let mut b = Bytes(data);
    let flags = b.u8();
    if flags & 1 == 0 { run::<f64>(flags, &mut b) } else { run::<f32>(flags, &mut b) }
});

fn run<F: Scalar>(flags: u8, b: &mut Bytes<'_>) {
    let (mut m, mut n, mut k) = (b.below(8), b.below(8), b.below(8));
    let alpha = ALPHAS[b.below(8)];
    let beta = BETAS[b.below(8)];
    // Shapes of a, b, c: consistent (m×k, k×n, m×n) unless flag 2 asks for independent ones.
    let consistent = flags & 2 == 0;
    let huge = flags & 4 != 0;
    let (shape_a, shape_b, shape_c) = if consistent {
        ((m, k), (k, n), (m, n))
    } else {
        ((b.below(8), b.below(8)), (b.below(8), b.below(8)), (b.below(8), b.below(8)))
    };
    if huge {
        return run_huge::<F>(b, (m, n, k), alpha, beta);
    }
    let a_op = Operand::decode(b, shape_a.0, shape_a.1, false);
    let b_op = Operand::decode(b, shape_b.0, shape_b.1, false);
    let c_op = Operand::decode(b, shape_c.0, shape_c.1, beta == 0.0);
    (m, n, k) = (shape_c.0, shape_c.1, shape_a.1);

    let (mut sa, mut sb, mut sc) = (Vec::new(), Vec::new(), Vec::new());
    let a = view::<F>(&a_op, &mut sa);
    let bv = view::<F>(&b_op, &mut sb);
    let c = view_mut::<F>(&c_op, &mut sc);
    // By indexing (ndarray's `map` panics on an empty view with custom strides).
    let values = |v: &ArrayView2<'_, F>| Array2::from_shape_fn(v.dim(), |ij| v[ij].as_f64());
    let c_before = values(&c.view());
    let (a_vals, b_vals) = (values(&a), values(&bv));
    let (alpha_f, beta_f) = (F::cast(alpha), F::cast(beta));

    let result = gemm(alpha_f, a, bv, beta_f, c);
    // Where each logical element of c lies in its storage; everything else is a sentinel.
    let order = element_order::<F>(&c_op);
    let mut inside = vec![false; sc.len()];
    let mut c_after = Array2::<f64>::zeros((c_op.rows, c_op.cols));
    for &((i, j), flat) in &order {
        inside[flat] = true;
        c_after[[i, j]] = sc[flat].as_f64();
    }
    for (i, (&x, &inside)) in sc.iter().zip(&inside).enumerate() {
        if !inside {
            assert_eq!(x.as_f64(), 77.0, "gemm wrote outside c's view at {i}: {:?}", c_op.layout);
        }
    }
    let shapes_agree = shape_a == (m, k) && shape_b == (k, n);
    match result {
        Ok(()) => {
            assert!(shapes_agree, "gemm accepted a {shape_a:?} · {shape_b:?} → {shape_c:?}");
            for i in 0..m {
                for j in 0..n {
                    let mut sum = 0.0;
                    for p in 0..k {
                        sum += a_vals[[i, p]] * b_vals[[p, j]];
                    }
                    let expected =
                        if beta == 0.0 { alpha * sum } else { alpha * sum + beta * c_before[[i, j]] };
                    let got = c_after[[i, j]];
                    assert!(
                        same(got, expected),
                        "c[{i}, {j}] = {got}, expected {expected}: m={m} n={n} k={k} alpha={alpha} beta={beta} \
                         layouts a {:?} b {:?} c {:?}",
                        a_op.layout,
                        b_op.layout,
                        c_op.layout
                    );
                }
            }
        }
        Err(Error::ShapeMismatch { .. }) => {
            assert!(
                !shapes_agree,
                "ShapeMismatch for agreeing shapes {shape_a:?} · {shape_b:?} → {shape_c:?}"
            );
            assert_unchanged(&c_before, &c_after);
        }
        Err(e) => panic!("unexpected error {e:?} for small shapes {shape_a:?} · {shape_b:?} → {shape_c:?}"),
    }
}

/// For each logical element (i, j) of `op`'s mutable view, its flat index in the storage.
fn element_order<F: Scalar>(op: &Operand) -> Vec<((usize, usize), usize)> {
    let mut store = Vec::<F>::new();
    let v = view_mut::<F>(op, &mut store);
    let addrs: Vec<((usize, usize), usize)> =
        v.indexed_iter().map(|(ij, x)| (ij, x as *const F as usize)).collect();
    let base = store.as_ptr() as usize;
    addrs.into_iter().map(|(ij, a)| (ij, (a - base) / size_of::<F>())).collect()
}

fn assert_unchanged(before: &Array2<f64>, after: &Array2<f64>) {
    assert_eq!(before.dim(), after.dim());
    for (x, y) in before.iter().zip(after) {
        assert!(same(*x, *y), "a failed gemm changed c: {before:?} → {after:?}");
    }
}

/// One dimension beyond `i32::MAX`, the operands broadcast (a, b) or empty (c) so that nothing
/// of that size exists: must be `TooLarge`, with `c` untouched.
fn run_huge<F: Scalar>(b: &mut Bytes<'_>, (m, n, k): (usize, usize, usize), alpha: f64, beta: f64) {
    let big = [1usize << 31, (1 << 31) + 1, 1 << 32, usize::MAX >> 8][b.below(4)];
    let which = b.below(3);
    let (m, n, k) = match which {
        0 => (big, 0, k),
        1 => (0, big, k),
        _ => (m, n, big),
    };
    // Broadcast read-only operands from one element.
    let one = [F::cast(1.0)];
    let a = ArrayView2::from_shape((m, k).strides((0, 0)), &one[..]).unwrap();
    let bv = ArrayView2::from_shape((k, n).strides((0, 0)), &one[..]).unwrap();
    // m·n is 0 (m or n is the huge one) or at most 7·7.
    let len = m.checked_mul(n).expect("one of m, n is 0 when the other is huge");
    let mut store = vec![F::cast(3.0); len.max(1)];
    let c = ArrayViewMut2::from_shape((m, n), &mut store[..len]).unwrap();
    match gemm(F::cast(alpha), a, bv, F::cast(beta), c) {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("gemm with m={m} n={n} k={k}: expected TooLarge, got {other:?}"),
    }
    assert!(store.iter().all(|v| v.as_f64() == 3.0), "a refused gemm wrote into c");
}
