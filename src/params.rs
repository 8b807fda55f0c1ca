//! Parameters — and gradients, which have the same layout — in one contiguous buffer with
//! named views, as llm.c keeps them: an optimizer, a checkpoint or a gradient all-reduce then
//! touches one slice.

use std::ops::Range;

use ndarray::{ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2};

use crate::error::{Error, Result, blas_int};
use crate::scalar::Scalar;
use crate::workspace::{mat, mat_mut};

/// `W1` (D×H), `b1` (H), `W2` (H×K) and `b2` (K), stored in that order, each row-major, in one
/// `Vec` of `D·H + H + H·K + K` scalars.
#[derive(Clone, Debug, PartialEq)]
pub struct Params<F> {
    data: Vec<F>,
    d: usize,
    h: usize,
    k: usize,
    /// Where `W1` and `W2` lie in `data`: the entries weight decay applies to.
    weights: [Range<usize>; 2],
}

/// ∂L/∂θ for every parameter θ, in the layout of [`Params`]: `dW1`, `db1`, `dW2`, `db2`.
pub type Gradients<F> = Params<F>;

/// Mutable views of all four tensors at once, borrowed from one [`Params`].
#[derive(Debug)]
pub struct ParamsViewMut<'a, F> {
    /// `W1`, D×H.
    pub w1: ArrayViewMut2<'a, F>,
    /// `b1`, H.
    pub b1: ArrayViewMut1<'a, F>,
    /// `W2`, H×K.
    pub w2: ArrayViewMut2<'a, F>,
    /// `b2`, K.
    pub b2: ArrayViewMut1<'a, F>,
}

/// Views of all four tensors at once.
#[derive(Clone, Debug)]
pub struct ParamsView<'a, F> {
    /// `W1`, D×H.
    pub w1: ArrayView2<'a, F>,
    /// `b1`, H.
    pub b1: ArrayView1<'a, F>,
    /// `W2`, H×K.
    pub w2: ArrayView2<'a, F>,
    /// `b2`, K.
    pub b2: ArrayView1<'a, F>,
}

impl<F: Scalar> Params<F> {
    /// All zeros for a D→H→K network. Errors if a dimension is zero or the buffer size
    /// overflows.
    pub fn zeros(d: usize, h: usize, k: usize) -> Result<Self> {
        for (operand, v) in [("d", d), ("h", h), ("k", k)] {
            if v == 0 {
                return Err(Error::Empty { operand, actual: [1, v] });
            }
            blas_int(operand, [1, v])?;
        }
        let len = d
            .checked_mul(h)
            .and_then(|dh| h.checked_mul(k).and_then(|hk| dh.checked_add(hk)))
            .and_then(|s| s.checked_add(h + k));
        let Some(len) = len else {
            return Err(Error::TooLarge { operand: "params", actual: [d.max(k), h] });
        };
        let mut data = Vec::new();
        data.try_reserve_exact(len).map_err(|_| Error::TooLarge { operand: "params", actual: [1, len] })?;
        data.resize(len, F::zero());
        let weights = [0..d * h, d * h + h..d * h + h + h * k];
        Ok(Params { data, d, h, k, weights })
    }

    /// `(D, H, K)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.d, self.h, self.k)
    }

    /// Number of scalars, `D·H + H + H·K + K`.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Where `W1` and `W2` lie in [`as_slice`](Self::as_slice): `[0..D·H, D·H+H..D·H+H+H·K]`.
    pub fn weight_ranges(&self) -> &[Range<usize>] {
        &self.weights
    }

    /// Always false: every dimension is at least 1.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The whole buffer: `W1`, `b1`, `W2`, `b2`, each row-major.
    pub fn as_slice(&self) -> &[F] {
        &self.data
    }

    /// The whole buffer, mutably (its length cannot change).
    pub fn as_slice_mut(&mut self) -> &mut [F] {
        &mut self.data
    }

    /// [`as_slice_mut`](Self::as_slice_mut) and [`weight_ranges`](Self::weight_ranges) at once.
    pub(crate) fn as_slice_mut_with_weights(&mut self) -> (&mut [F], &[Range<usize>]) {
        (&mut self.data, &self.weights)
    }

    /// Which tensor flat index `i` falls in, and its `(row, col)` there (`row = 0` for biases).
    pub fn locate(&self, i: usize) -> Option<(&'static str, usize, usize)> {
        let (d, h, k) = (self.d, self.h, self.k);
        let mut i = i;
        for (name, rows, cols) in [("w1", d, h), ("b1", 1, h), ("w2", h, k), ("b2", 1, k)] {
            if i < rows * cols {
                return Some((name, i / cols, i % cols));
            }
            i -= rows * cols;
        }
        None
    }

    /// The four tensors as flat row-major slices: `[w1, b1, w2, b2]`.
    pub(crate) fn parts(&self) -> [&[F]; 4] {
        let (d, h, k) = (self.d, self.h, self.k);
        let (w1, rest) = self.data.split_at(d * h);
        let (b1, rest) = rest.split_at(h);
        let (w2, b2) = rest.split_at(h * k);
        [w1, b1, w2, b2]
    }

    /// The four tensors as flat row-major mutable slices: `[w1, b1, w2, b2]`.
    pub(crate) fn parts_mut(&mut self) -> [&mut [F]; 4] {
        let (d, h, k) = (self.d, self.h, self.k);
        let (w1, rest) = self.data.split_at_mut(d * h);
        let (b1, rest) = rest.split_at_mut(h);
        let (w2, b2) = rest.split_at_mut(h * k);
        [w1, b1, w2, b2]
    }

    /// Views of `W1`, `b1`, `W2`, `b2`.
    pub fn view(&self) -> ParamsView<'_, F> {
        let (d, h, k) = (self.d, self.h, self.k);
        let [w1, b1, w2, b2] = self.parts();
        ParamsView { w1: mat(w1, d, h), b1: b1.into(), w2: mat(w2, h, k), b2: b2.into() }
    }

    /// Mutable views of `W1`, `b1`, `W2`, `b2`, all at once.
    pub fn view_mut(&mut self) -> ParamsViewMut<'_, F> {
        let (d, h, k) = (self.d, self.h, self.k);
        let [w1, b1, w2, b2] = self.parts_mut();
        ParamsViewMut { w1: mat_mut(w1, d, h), b1: b1.into(), w2: mat_mut(w2, h, k), b2: b2.into() }
    }

    /// `W1`, D×H.
    pub fn w1(&self) -> ArrayView2<'_, F> {
        mat(self.parts()[0], self.d, self.h)
    }
    /// `b1`, H.
    pub fn b1(&self) -> ArrayView1<'_, F> {
        self.parts()[1].into()
    }
    /// `W2`, H×K.
    pub fn w2(&self) -> ArrayView2<'_, F> {
        mat(self.parts()[2], self.h, self.k)
    }
    /// `b2`, K.
    pub fn b2(&self) -> ArrayView1<'_, F> {
        self.parts()[3].into()
    }
}
