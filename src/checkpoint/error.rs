//! What can go wrong writing or reading a checkpoint or a training state.

use std::fmt;
use std::io;
use std::path::PathBuf;

use super::TENSORS;
use crate::error::Error;

/// Why a checkpoint could not be written or read. Every variant names the file, tensor or
/// metadata key at fault and, where there is one, both the expected and the found value.
///
/// ```
/// use two_layer_net::{CheckpointError, TwoLayerNet, from_bytes, rand::{SeedableRng, rngs::StdRng}};
///
/// let net = TwoLayerNet::<f32>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?;
/// let bytes = two_layer_net::to_bytes(&net)?;
/// match from_bytes::<f64, two_layer_net::Relu>(&bytes) {
///     Err(CheckpointError::DType { tensor, expected, found }) => {
///         assert_eq!((tensor.as_str(), expected, found.as_str()), ("w1", "F64", "F32"));
///     }
///     other => panic!("expected a dtype error, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum CheckpointError {
    /// Reading or writing the file failed.
    Io {
        /// The checkpoint's path (for a save, the target, not the temporary file).
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// The bytes are not a valid safetensors file (too short, a bad header, inconsistent
    /// offsets …): the safetensors parser's message.
    Format(String),
    /// One of `w1`, `b1`, `w2`, `b2` is not in the file.
    MissingTensor {
        /// The missing tensor.
        tensor: &'static str,
        /// The tensors the file has, sorted.
        found: Vec<String>,
    },
    /// The file has a tensor other than `w1`, `b1`, `w2`, `b2`.
    UnexpectedTensor {
        /// Its name.
        tensor: String,
    },
    /// A tensor's dtype is not the network's scalar type.
    DType {
        /// The tensor.
        tensor: String,
        /// `"F32"` or `"F64"`, the safetensors name of the requested scalar type.
        expected: &'static str,
        /// The safetensors dtype in the file, e.g. `"F32"` or `"BF16"`.
        found: String,
    },
    /// A tensor's shape does not fit the others or the metadata `d`, `h`, `k`.
    Shape {
        /// The tensor.
        tensor: String,
        /// The shape it must have: `[d, h]`, `[h]`, `[h, k]` or `[k]`.
        expected: Vec<usize>,
        /// The shape it has.
        found: Vec<usize>,
    },
    /// A metadata entry is missing or has the wrong value.
    Metadata {
        /// The key: `"format"`, `"layout"`, `"dtype"`, `"d"`, `"h"`, `"k"` or `"activation"`.
        key: &'static str,
        /// The value it must have (for `d`, `h`, `k`: the one the tensor shapes give).
        expected: String,
        /// The value it has, `None` if the key is absent.
        found: Option<String>,
    },
    /// A parameter is NaN or infinite: such a network cannot be trained on, so it is neither
    /// saved nor loaded.
    NonFinite {
        /// The tensor.
        tensor: String,
        /// The element's flat row-major index in it.
        index: usize,
        /// The value, widened to `f64`.
        value: f64,
    },
    /// What would be written is not a file safetensors readers accept (a header over their
    /// 100 MB limit, say): refused, so that every file written can be read back.
    Unreadable(String),
    /// The tensors are consistent but do not make a network (a dimension of zero, or one too
    /// large for BLAS).
    Net(Error),
    /// A training-state file lacks an entry, or has one that does not fit what it is restored
    /// into (another network shape or activation, another optimizer kind).
    Entry {
        /// The tensor or metadata key, e.g. `"net.w1"`, `"optimizer.kind"`.
        name: String,
        /// What it must be.
        expected: String,
        /// What the file has, `None` if the entry is absent.
        found: Option<String>,
    },
}

impl fmt::Display for CheckpointError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckpointError::Io { path, source } => write!(f, "checkpoint {}: {source}", path.display()),
            CheckpointError::Format(msg) => write!(f, "not a valid safetensors file: {msg}"),
            CheckpointError::MissingTensor { tensor, found } => write!(
                f,
                "missing tensor `{tensor}`: expected {}, found [{}]",
                TENSORS.join(", "),
                found.join(", ")
            ),
            CheckpointError::UnexpectedTensor { tensor } => {
                write!(f, "unexpected tensor `{tensor}`: expected only {}", TENSORS.join(", "))
            }
            CheckpointError::DType { tensor, expected, found } => {
                write!(f, "tensor `{tensor}`: expected dtype {expected}, found {found}")
            }
            CheckpointError::Shape { tensor, expected, found } => {
                write!(f, "tensor `{tensor}`: expected shape {expected:?}, found {found:?}")
            }
            CheckpointError::Metadata { key, expected, found: Some(found) } => {
                write!(f, "metadata `{key}`: expected {expected:?}, found {found:?}")
            }
            CheckpointError::Metadata { key, expected, found: None } => {
                write!(f, "metadata `{key}`: expected {expected:?}, found no such key")
            }
            CheckpointError::NonFinite { tensor, index, value } => {
                write!(f, "tensor `{tensor}`: element {index} is {value}, expected a finite value")
            }
            CheckpointError::Unreadable(msg) => {
                write!(f, "refused to write a file safetensors readers would refuse: {msg}")
            }
            CheckpointError::Net(e) => write!(f, "the checkpoint's tensors do not make a network: {e}"),
            CheckpointError::Entry { name, expected, found: Some(found) } => {
                write!(f, "`{name}`: expected {expected}, found {found}")
            }
            CheckpointError::Entry { name, expected, found: None } => {
                write!(f, "`{name}`: expected {expected}, found no such entry")
            }
        }
    }
}

impl std::error::Error for CheckpointError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CheckpointError::Io { source, .. } => Some(source),
            CheckpointError::Net(e) => Some(e),
            _ => None,
        }
    }
}

impl From<Error> for CheckpointError {
    fn from(e: Error) -> Self {
        CheckpointError::Net(e)
    }
}
