//! The element loops around the GEMMs that are not a line of the math: a bias on every row,
//! column sums, and `max |v|` for the fused step's overflow bound. Each is written to
//! vectorize (independent accumulators, whole-row blocks); the reasoning sits beside each.

use ndarray::ArrayView2;

use crate::scalar::Scalar;

/// `out[i, :] += b` for every row of the row-major `out` (N×len(b)). A short `b` is first
/// repeated to whole rows of at least `LANES` scalars, so that the add runs over long blocks
/// and vectorizes even when the rows are a few scalars long.
pub(crate) fn bias_add<F: Scalar>(out: &mut [F], b: &[F]) {
    let mut buf = [F::zero(); LANES];
    let b = if b.len() >= LANES || b.is_empty() {
        b
    } else {
        let len = LANES / b.len() * b.len();
        for row in buf[..len].chunks_exact_mut(b.len()) {
            row.copy_from_slice(b);
        }
        &buf[..len]
    };
    for block in out.chunks_mut(b.len().max(1)) {
        for (o, &v) in block.iter_mut().zip(b) {
            *o += v;
        }
    }
}

/// `out[i, :] = b` for every row of the row-major `out` (N×len(b)): the first row, then
/// doubling copies of what is filled, so log₂ N `memcpy` calls rather than one per (short) row.
pub(crate) fn bias_fill<F: Scalar>(out: &mut [F], b: &[F]) {
    let Some(first) = out.get_mut(..b.len()) else { return };
    first.copy_from_slice(b);
    let mut filled = b.len();
    while filled < out.len() {
        let more = filled.min(out.len() - filled);
        out.copy_within(..more, filled);
        filled += more;
    }
}

/// `db = Σ_rows dout`, for the N×len(db) upstream gradient `dout` of any layout.
pub(crate) fn bias_backward<F: Scalar>(dout: ArrayView2<'_, F>, db: &mut [F]) {
    match dout.as_slice() {
        Some(s) => column_sums(db, s.len(), |acc| {
            for block in s.chunks(acc.len()) {
                for (a, &v) in acc.iter_mut().zip(block) {
                    *a += v;
                }
            }
        }),
        None => {
            db.fill(F::zero());
            for row in dout.rows() {
                for (a, &v) in db.iter_mut().zip(row) {
                    *a += v;
                }
            }
        }
    }
}

/// Accumulators per column sum: a narrow matrix is summed in blocks of whole rows at least
/// this long, so that its few columns do not each wait on one add chain.
const LANES: usize = 64;

/// `out = Σ_rows` of a row-major buffer of `len` scalars with `out.len()` columns, where
/// `add(acc)` adds the buffer into `acc` block by block (`for block in buf.chunks(acc.len())`,
/// elementwise). `acc` holds whole rows, `LANES` or more scalars unless the buffer is shorter,
/// so one pass sums any width at full speed.
pub(crate) fn column_sums<F: Scalar>(out: &mut [F], len: usize, add: impl FnOnce(&mut [F])) {
    let width = out.len();
    out.fill(F::zero());
    if width >= LANES {
        return add(out);
    }
    let mut lanes = [F::zero(); LANES];
    let acc = &mut lanes[..(LANES / width * width).min(len)];
    add(acc);
    for row in acc.chunks_exact(width) {
        for (o, &a) in out.iter_mut().zip(row) {
            *o += a;
        }
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
        if s.len() < 16 {
            // Too short for the blocks: straight into the maxima, without the copy below.
            for (m, &v) in self.0.iter_mut().zip(s) {
                *m = greater(*m, v);
            }
            return;
        }
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
