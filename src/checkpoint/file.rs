//! The safetensors file underneath checkpoints and training states: values to and from
//! little-endian bytes, a deterministic writer, and a parser hardened against one upstream bug.

use std::collections::{BTreeMap, HashMap};

use safetensors::{Dtype, SafeTensors};
use serde_json::{Map, Value, json};

use super::CheckpointError;
use crate::scalar::Scalar;

/// A tensor to write: its name, safetensors dtype name (`"F32"`, `"F64"`, `"I64"`), shape and
/// little-endian bytes.
pub(crate) struct Tensor<'a> {
    pub name: &'a str,
    pub dtype: &'static str,
    pub shape: &'a [usize],
    pub bytes: &'a [u8],
}

/// The bytes of a safetensors file holding `tensors` (their data in the order given) and
/// `metadata`.
///
/// The header is built here with serde_json rather than by `safetensors::serialize`, which
/// takes the metadata as a `HashMap` and so writes its keys in another order on every call:
/// here the keys are sorted, and the same tensors and metadata always give the same bytes (a
/// checkpoint can be hashed and compared).
pub(crate) fn serialize(tensors: &[Tensor<'_>], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let mut header = Map::new();
    header.insert("__metadata__".into(), json!(metadata));
    let mut offset = 0;
    for t in tensors {
        let end = offset + t.bytes.len();
        header.insert(
            t.name.into(),
            json!({"dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut header = Value::Object(header).to_string();
    // Padded with spaces to a multiple of 8 bytes, as safetensors does, so that the data
    // starts 8-byte aligned in a file mapped into memory.
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for t in tensors {
        out.extend_from_slice(t.bytes);
    }
    out
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
/// no file that loads has one that large.
///
/// What it works around: safetensors 0.8.0 adds the last data offset to the header length
/// unchecked (`read_metadata`: `buffer_end + N_LEN + n`), which a crafted header overflows —
/// a panic in a debug build, an out-of-bounds slice later in a release one (our fuzz target
/// `checkpoint` found it). Upstream: safetensors/safetensors#808 ("Guard against integer
/// overflow in the parse path"), open as of 2026-12. Remove this pass once a release with that
/// fix is the minimum. A header that cannot be cut out of `bytes` is left to the parser.
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
