//! Checkpoints: the parameters as a [safetensors](https://huggingface.co/docs/safetensors) file,
//! which Python reads with `safetensors.numpy.load_file` (and PyTorch with
//! `safetensors.torch.load_file`).
//!
//! # Format
//!
//! ```text
//! tensor  shape    dtype            __metadata__ (all values are strings)
//! w1      [D, H]   F32 or F64       format     = "two-layer-net"
//! b1      [H]      (as the network) version    = this crate's version (recorded, not checked)
//! w2      [H, K]                    dtype      = "f32" | "f64"
//! b2      [K]                       d, h, k    = D, H, K in decimal
//!                                   activation = Activation::describe(), e.g. "relu",
//!                                                "leaky_relu(slope=0.1)"
//!                                   layout     = "in_out"
//! ```
//!
//! The weights are stored as the network holds them, (in, out), row-major (C order), values
//! little-endian: `ŷ = f(x·W1 + b1)·W2 + b2`. PyTorch's `nn.Linear` holds its weight as
//! (out, in) and computes `x·Wᵀ + b`, so loading into `nn.Linear(D, H)` means
//! `weight = w1.T` (`scripts/check_interop.py` does exactly that).
//!
//! Loading checks everything before it builds the network: the four tensor names (no more, no
//! fewer), their dtypes, their shapes (against each other and against `d`, `h`, `k`), the
//! metadata `format`, `layout`, `dtype` and `activation`, and that every value is finite.
//! Other metadata keys are ignored. Any bytes at all give a network or a [`CheckpointError`],
//! never a panic.

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

use crate::activation::Activation;
use crate::durable::write_atomic;
use crate::error::Error;
use crate::net::TwoLayerNet;
use crate::params::Params;
use crate::scalar::Scalar;

/// The tensor names, in the order of the parameter buffer.
const TENSORS: [&str; 4] = ["w1", "b1", "w2", "b2"];
/// The metadata `format` of every checkpoint of this crate.
const FORMAT: &str = "two-layer-net";
/// The metadata `layout`: weights are (in, out), not PyTorch's (out, in).
const LAYOUT: &str = "in_out";

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

/// Whether `F` is `f32` (else it is `f64`, the only other [`Scalar`]).
pub(crate) fn is_f32<F: Scalar>() -> bool {
    size_of::<F>() == size_of::<f32>()
}

/// The safetensors dtype of `F` and its name.
pub(crate) fn dtype<F: Scalar>() -> (Dtype, &'static str) {
    if is_f32::<F>() { (Dtype::F32, "F32") } else { (Dtype::F64, "F64") }
}

/// `xs` appended to `out` as little-endian bytes; errors on the first non-finite value.
pub(crate) fn encode<F: Scalar>(tensor: &str, xs: &[F], out: &mut Vec<u8>) -> Result<(), CheckpointError> {
    for (index, &x) in xs.iter().enumerate() {
        let value = x.as_f64();
        if !value.is_finite() {
            return Err(CheckpointError::NonFinite { tensor: tensor.to_owned(), index, value });
        }
        // Exact both ways: an f32 widened to f64 and narrowed back is the same f32.
        if is_f32::<F>() {
            out.extend_from_slice(&(value as f32).to_le_bytes());
        } else {
            out.extend_from_slice(&value.to_le_bytes());
        }
    }
    Ok(())
}

/// Little-endian `bytes` (any alignment) into `dst`, one value per element of `dst`; errors
/// on the first non-finite value.
pub(crate) fn decode<F: Scalar>(tensor: &str, bytes: &[u8], dst: &mut [F]) -> Result<(), CheckpointError> {
    if is_f32::<F>() {
        fill(tensor, bytes.as_chunks::<4>().0.iter().map(|c| f64::from(f32::from_le_bytes(*c))), dst)
    } else {
        fill(tensor, bytes.as_chunks::<8>().0.iter().map(|c| f64::from_le_bytes(*c)), dst)
    }
}

/// `dst[i] = values[i]`, after checking that each value is finite.
fn fill<F: Scalar>(
    tensor: &str,
    values: impl Iterator<Item = f64>,
    dst: &mut [F],
) -> Result<(), CheckpointError> {
    for (index, (d, value)) in dst.iter_mut().zip(values).enumerate() {
        if !value.is_finite() {
            return Err(CheckpointError::NonFinite { tensor: tensor.to_owned(), index, value });
        }
        *d = F::cast(value);
    }
    Ok(())
}

/// The checkpoint of `net` as the bytes of a safetensors file: exactly what [`save`] writes
/// (its docs give the format), for a store that is not a file (a database, an object store, a
/// message). Deterministic: the same network (parameters, activation, scalar type) always
/// gives the same bytes, so checkpoints can be hashed and compared.
///
/// Errors: [`CheckpointError::NonFinite`] if a parameter is NaN or infinite.
///
/// ```
/// use two_layer_net::{TwoLayerNet, from_bytes, to_bytes, rand::{SeedableRng, rngs::StdRng}};
///
/// let net = TwoLayerNet::<f32>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?;
/// let bytes = to_bytes(&net)?;
/// // 8-byte header length, JSON header, then D·H + H + H·K + K little-endian f32s.
/// assert!(bytes.len() > (3 * 4 + 4 + 4 * 2 + 2) * 4);
/// let back: TwoLayerNet<f32> = from_bytes(&bytes)?;
/// assert_eq!(back.params(), net.params());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn to_bytes<F: Scalar, A: Activation>(net: &TwoLayerNet<F, A>) -> Result<Vec<u8>, CheckpointError> {
    let params = net.params();
    let (d, h, k) = params.dims();
    let metadata = [
        ("format", FORMAT.to_owned()),
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("dtype", F::NAME.to_owned()),
        ("d", d.to_string()),
        ("h", h.to_string()),
        ("k", k.to_string()),
        ("activation", net.activation().describe()),
        ("layout", LAYOUT.to_owned()),
    ];
    // The header is written here rather than by `safetensors::serialize`, which takes the
    // metadata as a `HashMap` and so writes its keys in a different order on every call: the
    // same network would not give the same bytes twice.
    let entries: Vec<String> =
        metadata.iter().map(|(key, value)| format!("{}:{}", json(key), json(value))).collect();
    let mut header = format!("{{\"__metadata__\":{{{}}}", entries.join(","));
    let shapes = [vec![d, h], vec![h], vec![h, k], vec![k]];
    let mut offset = 0;
    for ((name, shape), part) in TENSORS.iter().zip(&shapes).zip(params.parts()) {
        let end = offset + size_of_val(part);
        let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
        header += &format!(
            ",{}:{{\"dtype\":\"{}\",\"shape\":[{}],\"data_offsets\":[{offset},{end}]}}",
            json(name),
            dtype::<F>().1,
            dims.join(",")
        );
        offset = end;
    }
    header.push('}');
    // Padded with spaces to a multiple of 8 bytes, as safetensors does, so that the data
    // starts 8-byte aligned in a file mapped into memory.
    while header.len() % 8 != 0 {
        header.push(' ');
    }

    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (name, part) in TENSORS.iter().zip(params.parts()) {
        encode(name, part, &mut out)?;
    }
    Ok(out)
}

/// `s` as a JSON string literal.
fn json(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out += &format!("\\u{:04x}", u32::from(c)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Writes `net` to `path` as a safetensors checkpoint, atomically.
///
/// # Format
///
/// ```text
/// tensor  shape    dtype            __metadata__ (all values are strings)
/// w1      [D, H]   F32 or F64       format     = "two-layer-net"
/// b1      [H]      (as the network) version    = this crate's version (recorded, not checked)
/// w2      [H, K]                    dtype      = "f32" | "f64"
/// b2      [K]                       d, h, k    = D, H, K in decimal
///                                   activation = Activation::describe(), e.g. "relu",
///                                                "leaky_relu(slope=0.1)"
///                                   layout     = "in_out"
/// ```
///
/// The weights are stored as the network holds them, (in, out), row-major, values
/// little-endian: `ŷ = f(x·W1 + b1)·W2 + b2`. PyTorch's `nn.Linear` holds its weight as
/// (out, in) and computes `x·Wᵀ + b`: load `w1` into `nn.Linear(D, H)` as `weight = w1.T`.
///
/// # Atomicity
///
/// The bytes ([`to_bytes`]) go to a new temporary file in the same directory,
/// `.{file name}.tmp-{pid}-{n}`, which is fsynced and then renamed over `path` (and the
/// directory fsynced, best effort, on Unix). A reader sees the old checkpoint or the new one,
/// never part of one. A crash can leave the temporary file behind; the next save to the same
/// path removes it (each writer holds a lock on its temporary file while it lives, so only
/// those of dead writers are removed). On error the temporary file is removed and `path` is as
/// it was. The new file has the permissions
/// `File::create` gives (0o666 less the umask), whatever an old one had, and a symlink at
/// `path` is replaced, not followed.
///
/// Errors: [`CheckpointError::NonFinite`] if a parameter is NaN or infinite (nothing is
/// written); [`CheckpointError::Io`] naming `path` if the directory does not exist, `path` is
/// a directory, or a write fails.
///
/// ```
/// use two_layer_net::{TwoLayerNet, Tanh, load, save, rand::{SeedableRng, rngs::StdRng}};
///
/// let dir = std::env::temp_dir().join(format!("two-layer-net-doc-save-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("net.safetensors");
///
/// let net = TwoLayerNet::<f64, Tanh>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?;
/// save(&net, &path)?;
/// let back: TwoLayerNet<f64, Tanh> = load(&path)?;
/// assert_eq!(back.params(), net.params());
///
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn save<F: Scalar, A: Activation>(
    net: &TwoLayerNet<F, A>,
    path: impl AsRef<Path>,
) -> Result<(), CheckpointError> {
    let bytes = to_bytes(net)?;
    write_atomic(path.as_ref(), &bytes)
}

/// Reads the checkpoint at `path` into a network with the activation's default (e.g. [`Relu`](crate::Relu)).
///
/// The checkpoint must record that activation (`activation.describe()`): for
/// [`LeakyRelu`](crate::LeakyRelu) with another slope than the default, use [`load_with`].
/// Everything [`from_bytes_with`] checks is checked.
///
/// Errors: [`CheckpointError::Io`] naming `path` if it cannot be read; otherwise as
/// [`from_bytes_with`].
///
/// ```
/// use two_layer_net::{CheckpointError, TwoLayerNet, load, save, rand::{SeedableRng, rngs::StdRng}};
///
/// let dir = std::env::temp_dir().join(format!("two-layer-net-doc-load-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("net.safetensors");
///
/// let net = TwoLayerNet::<f32>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?;
/// save(&net, &path)?;
/// let back: TwoLayerNet<f32> = load(&path)?; // ReLU, the default
/// assert_eq!(back.params(), net.params());
///
/// let missing = load::<f32, two_layer_net::Relu>(dir.join("nope.safetensors"));
/// assert!(matches!(missing, Err(CheckpointError::Io { .. })));
///
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load<F: Scalar, A: Activation + Default>(
    path: impl AsRef<Path>,
) -> Result<TwoLayerNet<F, A>, CheckpointError> {
    load_with(path, A::default())
}

/// Reads the checkpoint at `path` into a network with hidden activation `activation`, which
/// must be the one the checkpoint records (`activation.describe()`, e.g.
/// `"leaky_relu(slope=0.2)"`).
///
/// Errors: [`CheckpointError::Io`] naming `path` if it cannot be read; otherwise as
/// [`from_bytes_with`].
///
/// ```
/// use two_layer_net::{LeakyRelu, TwoLayerNet, load_with, save, rand::{SeedableRng, rngs::StdRng}};
///
/// let dir = std::env::temp_dir().join(format!("two-layer-net-doc-load-with-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let path = dir.join("net.safetensors");
///
/// let leaky = LeakyRelu { slope: 0.2 };
/// let net = TwoLayerNet::<f64>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?.with_activation(leaky);
/// save(&net, &path)?;
/// let back = load_with::<f64, _>(&path, leaky)?;
/// assert_eq!(back.params(), net.params());
/// assert!(load_with::<f64, _>(&path, LeakyRelu { slope: 0.1 }).is_err()); // another slope
///
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn load_with<F: Scalar, A: Activation>(
    path: impl AsRef<Path>,
    activation: A,
) -> Result<TwoLayerNet<F, A>, CheckpointError> {
    let path = path.as_ref();
    let bytes = fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_owned(), source })?;
    from_bytes_with(&bytes, activation)
}

/// [`from_bytes_with`] with the activation's default (e.g. [`Relu`](crate::Relu)).
///
/// ```
/// use two_layer_net::{Sigmoid, TwoLayerNet, from_bytes, to_bytes, rand::{SeedableRng, rngs::StdRng}};
///
/// let net = TwoLayerNet::<f64, Sigmoid>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?;
/// let back: TwoLayerNet<f64, Sigmoid> = from_bytes(&to_bytes(&net)?)?;
/// assert_eq!(back.params(), net.params());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_bytes<F: Scalar, A: Activation + Default>(
    bytes: &[u8],
) -> Result<TwoLayerNet<F, A>, CheckpointError> {
    from_bytes_with(bytes, A::default())
}

/// A network from the bytes of a checkpoint (see [`save`] for the format), with hidden
/// activation `activation`. `bytes` may start at any alignment.
///
/// Checks, in this order, each failure its own [`CheckpointError`]:
///
/// 1. the bytes parse as safetensors, with no shape or offset in the header larger than the
///    buffer ([`Format`](CheckpointError::Format));
/// 2. metadata `format = "two-layer-net"` and `layout = "in_out"`
///    ([`Metadata`](CheckpointError::Metadata));
/// 3. the tensors are exactly `w1`, `b1`, `w2`, `b2`
///    ([`MissingTensor`](CheckpointError::MissingTensor),
///    [`UnexpectedTensor`](CheckpointError::UnexpectedTensor));
/// 4. each tensor's dtype is `F`'s, `F32` or `F64` ([`DType`](CheckpointError::DType)), and
///    so is the metadata `dtype`;
/// 5. the shapes: `w1` is `[d, h]`, `b1` `[h]`, `w2` `[h, k]`, `b2` `[k]` for the metadata
///    `d`, `h`, `k`. When the four shapes agree with each other but not with the metadata,
///    the metadata key is reported ([`Metadata`](CheckpointError::Metadata), expected = what
///    the tensors say), otherwise the first tensor that does not fit
///    ([`Shape`](CheckpointError::Shape));
/// 6. metadata `activation = activation.describe()`;
/// 7. every value is finite ([`NonFinite`](CheckpointError::NonFinite)): a NaN or infinite
///    parameter makes every loss NaN, so such a checkpoint is refused rather than loaded;
/// 8. the dimensions make a network: none is zero or too large for BLAS
///    ([`Net`](CheckpointError::Net)).
///
/// The metadata `version` and any other keys are not checked. No input panics.
///
/// ```
/// use two_layer_net::{CheckpointError, Tanh, TwoLayerNet, from_bytes_with, to_bytes, rand::{SeedableRng, rngs::StdRng}};
///
/// let net = TwoLayerNet::<f64>::new(3, 4, 2, &mut StdRng::seed_from_u64(0))?; // ReLU
/// let bytes = to_bytes(&net)?;
///
/// // A slice at an odd address is fine.
/// let mut shifted = vec![0u8];
/// shifted.extend_from_slice(&bytes);
/// let back = from_bytes_with::<f64, _>(&shifted[1..], two_layer_net::Relu)?;
/// assert_eq!(back.params(), net.params());
///
/// // The wrong activation is refused, naming both.
/// let err = from_bytes_with::<f64, _>(&bytes, Tanh).unwrap_err();
/// assert_eq!(err.to_string(), r#"metadata `activation`: expected "tanh", found "relu""#);
/// assert!(matches!(err, CheckpointError::Metadata { key: "activation", .. }));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn from_bytes_with<F: Scalar, A: Activation>(
    bytes: &[u8],
    activation: A,
) -> Result<TwoLayerNet<F, A>, CheckpointError> {
    let (file, meta) = parse(bytes)?;
    let meta = &meta;

    expect_metadata(meta, "format", FORMAT)?;
    expect_metadata(meta, "layout", LAYOUT)?;

    let mut names: Vec<String> = file.names().into_iter().map(str::to_owned).collect();
    names.sort();
    let tensor = |name: &'static str| {
        file.tensor(name).map_err(|_| CheckpointError::MissingTensor { tensor: name, found: names.clone() })
    };
    let views = [tensor("w1")?, tensor("b1")?, tensor("w2")?, tensor("b2")?];
    if let Some(extra) = names.iter().find(|n| !TENSORS.contains(&n.as_str())) {
        return Err(CheckpointError::UnexpectedTensor { tensor: extra.clone() });
    }

    let (dtype, dtype_name) = dtype::<F>();
    for (name, view) in TENSORS.iter().zip(&views) {
        if view.dtype() != dtype {
            return Err(CheckpointError::DType {
                tensor: (*name).to_owned(),
                expected: dtype_name,
                found: view.dtype().to_string(),
            });
        }
    }
    expect_metadata(meta, "dtype", F::NAME)?;

    let (d, h, k) = (metadata_dim(meta, "d")?, metadata_dim(meta, "h")?, metadata_dim(meta, "k")?);
    let shapes = views.each_ref().map(TensorView::shape);
    if let Some(from_tensors) = consistent_dims(shapes) {
        for (key, from_meta, from_tensors) in
            [("d", d, from_tensors.0), ("h", h, from_tensors.1), ("k", k, from_tensors.2)]
        {
            if from_meta != from_tensors {
                return Err(CheckpointError::Metadata {
                    key,
                    expected: from_tensors.to_string(),
                    found: meta.get(key).cloned(),
                });
            }
        }
    }
    let expected = [vec![d, h], vec![h], vec![h, k], vec![k]];
    for ((name, found), expected) in TENSORS.iter().zip(shapes).zip(expected) {
        if found != expected.as_slice() {
            return Err(CheckpointError::Shape {
                tensor: (*name).to_owned(),
                expected,
                found: found.to_vec(),
            });
        }
    }

    expect_metadata(meta, "activation", &activation.describe())?;

    let mut params = Params::<F>::zeros(d, h, k)?;
    for ((name, view), dst) in TENSORS.iter().zip(&views).zip(params.parts_mut()) {
        decode(name, view.data(), dst)?;
    }
    let p = params.view();
    Ok(TwoLayerNet::<F>::from_params(p.w1, p.b1, p.w2, p.b2)?.with_activation(activation))
}

/// The tensors and the metadata of a safetensors file (no metadata: an empty map), after
/// [`check_header_numbers`].
pub(crate) fn parse(bytes: &[u8]) -> Result<(SafeTensors<'_>, HashMap<String, String>), CheckpointError> {
    let format_error = |e: safetensors::SafeTensorError| CheckpointError::Format(e.to_string());
    check_header_numbers(bytes)?;
    let file = SafeTensors::deserialize(bytes).map_err(format_error)?;
    let (_, header) = SafeTensors::read_metadata(bytes).map_err(format_error)?;
    Ok((file, header.metadata().clone().unwrap_or_default()))
}

/// Refuses a header with a number larger than the whole buffer, before the safetensors parser
/// sees it. The only numbers in a safetensors header are tensor shapes and data offsets, and
/// no checkpoint that loads has one that large; but safetensors 0.8.0 adds the last offset to
/// the header length unchecked (`read_metadata`: `buffer_end + N_LEN + n`), which a crafted
/// header overflows: a panic in a debug build, an out-of-bounds slice later in a release one.
/// A header that cannot be cut out of `bytes` is left for the parser to report.
fn check_header_numbers(bytes: &[u8]) -> Result<(), CheckpointError> {
    let Some((len, rest)) = bytes.split_first_chunk::<8>() else { return Ok(()) };
    let Some(header) = usize::try_from(u64::from_le_bytes(*len)).ok().and_then(|n| rest.get(..n)) else {
        return Ok(());
    };
    let (mut in_string, mut escaped, mut number) = (false, false, 0usize);
    for &b in header {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b.is_ascii_digit() {
            number = number.saturating_mul(10).saturating_add(usize::from(b - b'0'));
            if number > bytes.len() {
                return Err(CheckpointError::Format(format!(
                    "a shape or offset in the header exceeds the file's length, {} bytes",
                    bytes.len()
                )));
            }
        } else {
            number = 0;
            in_string = b == b'"';
        }
    }
    Ok(())
}

/// `Ok` if the metadata has `key = expected`.
fn expect_metadata(
    meta: &HashMap<String, String>,
    key: &'static str,
    expected: &str,
) -> Result<(), CheckpointError> {
    match meta.get(key) {
        Some(found) if found == expected => Ok(()),
        found => Err(CheckpointError::Metadata { key, expected: expected.to_owned(), found: found.cloned() }),
    }
}

/// The metadata dimension `key` (`"d"`, `"h"` or `"k"`), a decimal integer.
fn metadata_dim(meta: &HashMap<String, String>, key: &'static str) -> Result<usize, CheckpointError> {
    let found = meta.get(key);
    found.and_then(|v| v.parse().ok()).ok_or_else(|| CheckpointError::Metadata {
        key,
        expected: "a dimension (decimal integer)".to_owned(),
        found: found.cloned(),
    })
}

/// `(D, H, K)` if the shapes of `w1`, `b1`, `w2`, `b2` are `[D, H]`, `[H]`, `[H, K]`, `[K]`.
fn consistent_dims(shapes: [&[usize]; 4]) -> Option<(usize, usize, usize)> {
    match shapes {
        [&[d, h], &[h_b1], &[h_w2, k], &[k_b2]] if h_b1 == h && h_w2 == h && k_b2 == k => Some((d, h, k)),
        _ => None,
    }
}
