//! Checkpoints: the parameters as a [safetensors](https://huggingface.co/docs/safetensors) file,
//! which Python reads with `safetensors.numpy.load_file` (and PyTorch with
//! `safetensors.torch.load_file`).
//!
//! The format (one table, in [`save`]'s docs) and its loaders here; the error type in
//! `error.rs`; the safetensors file layer (bytes, a deterministic writer, a hardened parser) in
//! `file.rs`, shared with the training state; the atomic write in `crate::durable`.
//!
//! Loading checks everything before it builds the network: the four tensor names (no more, no
//! fewer), their dtypes, their shapes (against each other and against `d`, `h`, `k`), the
//! metadata `format`, `layout`, `dtype` and `activation`, and that every value is finite.
//! Other metadata keys are ignored. Any bytes at all give a network or a [`CheckpointError`],
//! never a panic.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::Path;

use safetensors::tensor::TensorView;

mod error;
mod file;

pub use error::CheckpointError;
pub(crate) use file::{Tensor, decode, dtype, encode, parse, serialize};

use crate::activation::Activation;
use crate::durable::write_atomic;
use crate::net::TwoLayerNet;
use crate::params::Params;
use crate::scalar::Scalar;

/// The tensor names, in the order of the parameter buffer.
const TENSORS: [&str; 4] = ["w1", "b1", "w2", "b2"];
/// The metadata `format` of every checkpoint of this crate.
const FORMAT: &str = "two-layer-net";
/// The metadata `layout`: weights are (in, out), not PyTorch's (out, in).
const LAYOUT: &str = "in_out";

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
    let metadata: BTreeMap<String, String> = [
        ("format", FORMAT.to_owned()),
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("dtype", F::NAME.to_owned()),
        ("d", d.to_string()),
        ("h", h.to_string()),
        ("k", k.to_string()),
        ("activation", net.activation().describe()),
        ("layout", LAYOUT.to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect();
    let mut bytes = Vec::with_capacity(params.len() * size_of::<F>());
    let mut ends = [0; 4];
    for ((name, part), end) in TENSORS.iter().zip(params.parts()).zip(&mut ends) {
        encode(name, part, &mut bytes)?;
        *end = bytes.len();
    }
    let (w1, b1, w2, b2) = ([d, h], [h], [h, k], [k]);
    let shapes: [&[usize]; 4] = [&w1, &b1, &w2, &b2];
    let starts = [0, ends[0], ends[1], ends[2]];
    let tensors: Vec<Tensor<'_>> = (0..4)
        .map(|i| Tensor {
            name: TENSORS[i],
            dtype: dtype::<F>().1,
            shape: shapes[i],
            bytes: &bytes[starts[i]..ends[i]],
        })
        .collect();
    Ok(serialize(&tensors, &metadata))
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
/// Atomic: a reader, or a process started after a crash, sees the old file or the new one,
/// never a mix; a temporary file a crash leaves behind is removed by the next save to `path`.
/// The new file has the permissions `File::create` gives; a symlink at `path` is replaced.
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
/// Everything is checked before the network is built; no input panics. Errors:
/// [`Format`](CheckpointError::Format) (not safetensors), [`Metadata`](CheckpointError::Metadata)
/// (`format`, `layout`, `dtype`, `d`/`h`/`k` or `activation` missing or other than expected),
/// [`MissingTensor`](CheckpointError::MissingTensor) /
/// [`UnexpectedTensor`](CheckpointError::UnexpectedTensor) (not exactly `w1 b1 w2 b2`),
/// [`DType`](CheckpointError::DType) (not `F`'s), [`Shape`](CheckpointError::Shape),
/// [`NonFinite`](CheckpointError::NonFinite) (a NaN or infinite parameter),
/// [`Net`](CheckpointError::Net) (a zero dimension, or one too large for BLAS). The metadata
/// `version` and unknown keys are not checked.
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
    // When the four shapes agree with each other but not with the metadata, the metadata key
    // is what is wrong (expected = what the tensors say); otherwise the first tensor that does
    // not fit the metadata is.
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

    // Last, the values: a NaN or infinite parameter makes every loss NaN, so such a file is
    // refused rather than loaded; decoding copies each value once, into the network's buffer.
    let mut params = Params::<F>::zeros(d, h, k)?;
    for ((name, view), dst) in TENSORS.iter().zip(&views).zip(params.parts_mut()) {
        decode(name, view.data(), dst)?;
    }
    Ok(TwoLayerNet::from_parts(params, activation)?)
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
