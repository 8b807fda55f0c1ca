//! The per-batch buffers of a training step, grown once to the largest batch seen and reused.

use ndarray::{ArrayView2, ArrayViewMut2};

use crate::error::{Error, Result};
use crate::scalar::Scalar;

/// `Y1`, `H1` (N×H), `ŷ`, `dŷ` (N×K) and `dY1` (N×H, holding `dH1` until the activation's
/// backward turns it into `dY1` in place), plus `db1`, `db2` for the fused SGD step:
/// `(3·H + 2·K)·N + H + K` scalars for a capacity of N rows.
#[derive(Clone, Debug, Default)]
pub(crate) struct Workspace<F> {
    /// Rows the buffers hold.
    capacity: usize,
    /// Rows of the last complete forward pass, whose `Y1`, `H1` and `ŷ` backward reads.
    pub(crate) cached: Option<usize>,
    y1: Vec<F>,
    h1: Vec<F>,
    yhat: Vec<F>,
    dyhat: Vec<F>,
    dy1: Vec<F>,
    db: Vec<F>,
}

/// The first `n` rows of every buffer, as flat row-major slices.
pub(crate) struct Buffers<'a, F> {
    pub y1: &'a mut [F],
    pub h1: &'a mut [F],
    pub yhat: &'a mut [F],
    pub dyhat: &'a mut [F],
    pub dy1: &'a mut [F],
    pub db1: &'a mut [F],
    pub db2: &'a mut [F],
}

impl<F: Scalar> Workspace<F> {
    /// Makes room for `n` rows; allocates only when `n` exceeds every batch before it.
    pub(crate) fn reserve(&mut self, n: usize, h: usize, k: usize) -> Result<()> {
        if n <= self.capacity {
            return Ok(());
        }
        let too_large = || Error::TooLarge { operand: "batch workspace", actual: [n, h.max(k)] };
        let nh = n.checked_mul(h).ok_or_else(too_large)?;
        let nk = n.checked_mul(k).ok_or_else(too_large)?;
        for (buf, len) in [
            (&mut self.y1, nh),
            (&mut self.h1, nh),
            (&mut self.yhat, nk),
            (&mut self.dyhat, nk),
            (&mut self.dy1, nh),
            (&mut self.db, h + k),
        ] {
            grow(buf, len).map_err(|()| too_large())?;
        }
        self.capacity = n;
        Ok(())
    }

    /// Rows the buffers hold.
    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }

    /// Bytes held by the buffers: `((3·H + 2·K)·capacity + H + K)·size_of::<F>()`.
    pub(crate) fn bytes(&self) -> usize {
        let scalars = self.y1.len()
            + self.h1.len()
            + self.yhat.len()
            + self.dyhat.len()
            + self.dy1.len()
            + self.db.len();
        scalars * size_of::<F>()
    }

    /// The first `n ≤ capacity` rows of every buffer.
    pub(crate) fn rows(&mut self, n: usize, h: usize, k: usize) -> Buffers<'_, F> {
        let (db1, db2) = self.db.split_at_mut(h);
        Buffers {
            db1,
            db2,
            y1: &mut self.y1[..n * h],
            h1: &mut self.h1[..n * h],
            yhat: &mut self.yhat[..n * k],
            dyhat: &mut self.dyhat[..n * k],
            dy1: &mut self.dy1[..n * h],
        }
    }

    /// `ŷ` of the last forward pass over `n` rows.
    pub(crate) fn yhat(&self, n: usize, k: usize) -> ArrayView2<'_, F> {
        mat(&self.yhat[..n * k], n, k)
    }
}

/// Grows `buf` with zeros to at least `len` scalars; `Err` if that does not fit in memory.
fn grow<F: Scalar>(buf: &mut Vec<F>, len: usize) -> Result<(), ()> {
    if buf.len() < len {
        buf.try_reserve_exact(len - buf.len()).map_err(drop)?;
        buf.resize(len, F::zero());
    }
    Ok(())
}

/// Caller-owned buffers for inference through a shared network
/// ([`TwoLayerNet::forward_with`](crate::TwoLayerNet::forward_with),
/// [`evaluate_with`](crate::TwoLayerNet::evaluate_with)): `H1` (N×H), `ŷ` and `dŷ` (N×K),
/// grown to the largest batch they have served, so that each thread with its own `Scratch`
/// runs inference on one `&net` without allocating.
#[derive(Clone, Debug, Default)]
pub struct Scratch<F> {
    h1: Vec<F>,
    yhat: Vec<F>,
    dyhat: Vec<F>,
}

/// The first rows of a [`Scratch`]'s buffers, as flat row-major slices.
pub(crate) struct ScratchRows<'a, F> {
    pub h1: &'a mut [F],
    pub yhat: &'a mut [F],
    pub dyhat: &'a mut [F],
}

impl<F: Scalar> Scratch<F> {
    /// Empty buffers; the first batch sizes them.
    pub fn new() -> Self {
        Scratch { h1: Vec::new(), yhat: Vec::new(), dyhat: Vec::new() }
    }

    /// Bytes held: `(H + 2·K)·N_max·size_of::<F>()`.
    pub fn bytes(&self) -> usize {
        (self.h1.len() + self.yhat.len() + self.dyhat.len()) * size_of::<F>()
    }

    /// The first `n` rows of each buffer, grown first if needed (`dŷ` only when `dyhat`).
    pub(crate) fn rows(&mut self, n: usize, h: usize, k: usize, dyhat: bool) -> Result<ScratchRows<'_, F>> {
        let too_large = || Error::TooLarge { operand: "scratch", actual: [n, h.max(k)] };
        let nh = n.checked_mul(h).ok_or_else(too_large)?;
        let nk = n.checked_mul(k).ok_or_else(too_large)?;
        grow(&mut self.h1, nh).map_err(|()| too_large())?;
        grow(&mut self.yhat, nk).map_err(|()| too_large())?;
        grow(&mut self.dyhat, if dyhat { nk } else { 0 }).map_err(|()| too_large())?;
        Ok(ScratchRows {
            h1: &mut self.h1[..nh],
            yhat: &mut self.yhat[..nk],
            dyhat: &mut self.dyhat[..if dyhat { nk } else { 0 }],
        })
    }
}

/// A `rows × cols` row-major view of `s`, whose length is `rows·cols` by construction.
pub(crate) fn mat<F>(s: &[F], rows: usize, cols: usize) -> ArrayView2<'_, F> {
    ArrayView2::from_shape((rows, cols), s).expect("buffer length is rows·cols by construction")
}

/// A `rows × cols` row-major mutable view of `s`, whose length is `rows·cols` by construction.
pub(crate) fn mat_mut<F>(s: &mut [F], rows: usize, cols: usize) -> ArrayViewMut2<'_, F> {
    ArrayViewMut2::from_shape((rows, cols), s).expect("buffer length is rows·cols by construction")
}
