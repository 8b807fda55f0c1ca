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
