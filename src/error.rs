//! The one error type of the crate.
//!
//! Every fallible call checks all of its inputs before it writes anything, so a call that
//! returns an [`Error`] has left the network's parameters exactly as they were.

use std::fmt;

/// Shape of a 2-D operand as `[rows, cols]` (a vector of length `n` is reported as `[1, n]`).
pub type Shape = [usize; 2];

/// What went wrong, naming the operand and, for shapes, both the expected and the actual one.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An operand's shape does not fit the network or the other operands.
    ShapeMismatch {
        /// The operand, e.g. `"x"`, `"y"`, `"dyhat"`, `"w2"`.
        operand: &'static str,
        /// The shape it must have.
        expected: Shape,
        /// The shape it has.
        actual: Shape,
    },
    /// A batch with no rows, or a network dimension (`d`, `h`, `k`) of zero.
    Empty {
        /// The operand or dimension that is empty.
        operand: &'static str,
        /// Its shape.
        actual: Shape,
    },
    /// A dimension or leading stride does not fit BLAS's 32-bit integer, or a buffer size
    /// overflows `usize`.
    TooLarge {
        /// The operand or dimension.
        operand: &'static str,
        /// Its shape.
        actual: Shape,
    },
    /// `backward` was called without a `forward` on a batch of the same size before it.
    NoForward {
        /// Rows of the batch given to `backward`.
        batch: usize,
        /// Rows of the last forward pass, if there was one.
        cached: Option<usize>,
    },
    /// No gradients to read or apply: no `backward` since construction, since the parameters
    /// were changed by hand, or since a fused [`train_step`](crate::TwoLayerNet::train_step),
    /// which never stores them.
    NoGradients,
    /// A value that must be finite is not: a loss, a gradient or a learning rate. A training
    /// step that sees one is refused before it changes any parameter.
    NonFinite {
        /// What was not finite: `"y1"` (`X·W1 + b1`: NaN/Inf in `x`, or overflow), `"loss"`,
        /// `"gradient"`, `"lr"`, `"yhat"`, `"update"` (an SGD step that would overflow a
        /// finite parameter to ±∞), or `"validation x"` / `"validation targets"` (a
        /// validation set given to [`Trainer::fit`](crate::Trainer::fit)).
        what: &'static str,
    },
    /// A setting outside the values it may take (a schedule's, early stopping's, the training
    /// loop's), refused where it is given, as PyTorch's schedulers raise `ValueError`.
    InvalidSetting {
        /// The setting, e.g. `"Cosine.steps"`, `"EarlyStopping.min_delta"`, `"scheduled lr"`.
        setting: &'static str,
        /// What it may be, e.g. `"at least 1"`.
        expected: &'static str,
        /// What it is.
        found: String,
    },
    /// A class label is not below the number of classes K.
    InvalidLabel {
        /// The row of the label.
        row: usize,
        /// The label.
        label: usize,
        /// K, the number of classes (outputs).
        classes: usize,
    },
    /// An optimizer state does not fit the optimizer it is restored into.
    State {
        /// What differs: `"kind"`, `"hyperparameters"`, `"buffers"`, `"slot buffers"`, or a
        /// hyperparameter's name.
        what: String,
        /// What the optimizer needs.
        expected: String,
        /// What the state has.
        found: String,
    },
    /// A training loop stopped at a step that failed; nothing of that step was applied.
    Training {
        /// The epoch (from 0).
        epoch: usize,
        /// The step within the epoch (from 0).
        step: usize,
        /// What failed.
        source: Box<Error>,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = |s: &Shape| format!("({}, {})", s[0], s[1]);
        match self {
            Error::ShapeMismatch { operand, expected, actual } => {
                write!(f, "{operand}: expected shape {}, got {}", s(expected), s(actual))
            }
            Error::Empty { operand, actual } => {
                write!(f, "{operand}: shape {} is empty", s(actual))
            }
            Error::TooLarge { operand, actual } => write!(
                f,
                "{operand}: shape {} is too large for BLAS (32-bit dimensions) or memory",
                s(actual)
            ),
            Error::NoForward { batch, cached: Some(c) } => {
                write!(f, "backward on a batch of {batch} rows, but the last forward pass had {c} rows")
            }
            Error::NoForward { batch, cached: None } => {
                write!(f, "backward on a batch of {batch} rows before any forward pass")
            }
            Error::NoGradients => {
                write!(f, "no gradients: call backward first (a fused train_step does not store them)")
            }
            Error::State { what, expected, found } => {
                write!(f, "optimizer state: {what}: expected {expected}, found {found}")
            }
            Error::NonFinite { what } => write!(f, "{what} is not finite"),
            Error::InvalidSetting { setting, expected, found } => {
                write!(f, "{setting}: expected {expected}, found {found}")
            }
            Error::InvalidLabel { row, label, classes } => {
                write!(f, "labels: label {label} in row {row} is not below the {classes} classes")
            }
            Error::Training { epoch, step, source } => {
                write!(f, "training stopped at epoch {epoch}, step {step}: {source}")
            }
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Training { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// `actual` as BLAS's 32-bit `int`s, or [`Error::TooLarge`] naming `operand`: every
/// dimension the crate may hand to `?gemm` (network dimensions, batch rows) passes here.
pub(crate) fn blas_int(operand: &'static str, actual: Shape) -> Result<[std::ffi::c_int; 2]> {
    match (actual[0].try_into(), actual[1].try_into()) {
        (Ok(r), Ok(c)) => Ok([r, c]),
        _ => Err(Error::TooLarge { operand, actual }),
    }
}

/// `Ok` if `ok`, else an [`Error::InvalidSetting`] naming `setting` with its value `found`.
pub(crate) fn check_setting(
    setting: &'static str,
    expected: &'static str,
    found: impl fmt::Debug,
    ok: bool,
) -> Result<()> {
    if ok { Ok(()) } else { Err(Error::InvalidSetting { setting, expected, found: format!("{found:?}") }) }
}

/// `Ok` if `actual == expected`, else a [`Error::ShapeMismatch`] naming `operand`.
pub(crate) fn check_shape(operand: &'static str, actual: Shape, expected: Shape) -> Result<()> {
    if actual == expected { Ok(()) } else { Err(Error::ShapeMismatch { operand, expected, actual }) }
}
