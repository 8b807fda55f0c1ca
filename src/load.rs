//! Data in: loaders for the formats training data comes in (`.npy`, CSV with a header and a
//! label column, MNIST's IDX), each fallible with a [`LoadError`] naming the file and the line
//! or byte offset at fault.
//!
//! Every loader comes in two forms: `read_*` takes a path and reads the whole file into memory,
//! `parse_*` takes those bytes (and the path only to name it in errors). Any bytes at all give
//! a value or a [`LoadError`], never a panic, and no loader allocates much more than a small
//! multiple of the input's size whatever its header claims.
//!
//! | format | features | labels / targets |
//! | --- | --- | --- |
//! | `.npy` | [`read_npy`]: 2-D, f32 or f64 | [`read_npy_labels`]: 1-D, integers or integral floats |
//! | CSV with a header | [`read_csv`]: every column but the label column | the label column |
//! | | [`read_csv_targets`]: every column but the target columns | the target columns (N×K) |
//! | IDX (MNIST) | [`read_idx_images`]: pixels / 255 | [`read_idx_labels`]; both sets: [`read_mnist`] |

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use csv::{ByteRecord, Position, ReaderBuilder, Trim};
use ndarray::{Array, Array1, Array2, Dimension, Ix1, Ix2, IxDyn, ShapeBuilder};
use ndarray_npy::npy::header::Header;
use ndarray_npy::{ReadDataError, ReadableElement};
use num_traits::Num;

use crate::scalar::Scalar;
use crate::split::Split;

/// Why a data file could not be loaded: every variant names the file, and where it can the
/// line (1-based, CSV), the element index (`.npy` labels) or the byte offset (IDX).
///
/// ```
/// use std::path::Path;
/// use two_layer_net::load::{LoadError, parse_csv};
///
/// let csv = b"x1,x2,label\n0.5,1.5,0\n0.25,oops,1\n";
/// match parse_csv::<f64>(csv, Path::new("points.csv"), "label") {
///     Err(e @ LoadError::Cell { .. }) => {
///         assert_eq!(e.to_string(), r#"points.csv:3: column "x2": "oops" is not a finite number"#);
///     }
///     other => panic!("expected a cell error, got {other:?}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    Io {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        source: io::Error,
    },
    /// A CSV file is malformed: a row with more or fewer fields than the header, or a record
    /// the CSV reader rejects.
    Csv {
        /// The file.
        path: PathBuf,
        /// The 1-based line the record starts on.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// A CSV feature or target cell is not a finite number (text, empty, `NaN`, `inf`, or a
    /// value too large for the scalar type).
    Cell {
        /// The file.
        path: PathBuf,
        /// The 1-based line the record starts on.
        line: u64,
        /// The column's name in the header.
        column: String,
        /// The cell as written (whitespace trimmed).
        value: String,
    },
    /// A class label is not a non-negative integer that fits in `usize`: negative, fractional
    /// (`2.5`), not a number, or too large. Integral floats such as `3.0` are labels.
    Label {
        /// The file.
        path: PathBuf,
        /// Where the label is: in a CSV file the 1-based line the record starts on; in a
        /// `.npy` file the label's 0-based index in the array.
        line: u64,
        /// The label as written (CSV) or as formatted from the array (`.npy`).
        value: String,
    },
    /// An IDX file is malformed: a wrong magic number (not IDX, not unsigned bytes, or the
    /// wrong number of dimensions), sizes whose product overflows, a file shorter or longer
    /// than its header says.
    Idx {
        /// The file.
        path: PathBuf,
        /// The byte offset at fault: 0 for the magic number, 4 for the sizes, the file's length
        /// when it ends early, the end of the data when bytes follow it.
        offset: u64,
        /// What is wrong.
        message: String,
    },
    /// A `.npy` file is malformed or holds the wrong thing: a bad header, a dtype or number of
    /// dimensions the loader does not take, missing or extra data, a non-finite value (its
    /// index is in the message).
    Npy {
        /// The file.
        path: PathBuf,
        /// What is wrong (ndarray-npy's message where it found the fault).
        message: String,
    },
    /// The file is well-formed but does not hold what was asked for: a named column is not in
    /// the header, there are no data rows, image and label counts differ.
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What it should have.
        expected: String,
        /// What it has.
        found: String,
    },
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io { path, source } => write!(f, "{}: {source}", path.display()),
            LoadError::Csv { path, line, message } => write!(f, "{}:{line}: {message}", path.display()),
            LoadError::Cell { path, line, column, value } => {
                write!(f, "{}:{line}: column {column:?}: {value:?} is not a finite number", path.display())
            }
            LoadError::Label { path, line, value } => write!(
                f,
                "{}:{line}: label {value:?} is not a non-negative integer that fits in usize",
                path.display()
            ),
            LoadError::Idx { path, offset, message } => {
                write!(f, "{}: byte {offset}: {message}", path.display())
            }
            LoadError::Npy { path, message } => write!(f, "{}: {message}", path.display()),
            LoadError::Mismatch { path, expected, found } => {
                write!(f, "{}: expected {expected}, found {found}", path.display())
            }
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// The whole file, or an [`LoadError::Io`] naming it.
fn read_file(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|source| LoadError::Io { path: path.to_path_buf(), source })
}

/// A class label from a float: `Some` exactly when `v` is a finite, non-negative integer below
/// `2^usize::BITS` (so that `v as usize` is exact).
fn label_from_f64(v: f64) -> Option<usize> {
    // 2^BITS is exact in f64; every f64 below it that is an integer converts exactly.
    let limit = 2f64.powi(usize::BITS as i32);
    (v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v < limit).then_some(v as usize)
}

// ---------------------------------------------------------------------------------------------
// .npy

/// The `.npy` magic string.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";
/// The longest header read, numpy's own default limit (`max_header_size`, numpy ≥ 1.24). Real
/// headers of 1-D and 2-D arrays are about 120 bytes.
const NPY_MAX_HEADER: u64 = 10_000;
/// How deeply the header's Python literal may nest brackets: a plain dtype's header nests two
/// deep (`{'shape': (…)}`); a structured dtype (not read here) three.
///
/// Both limits are there because the literal parser (py_literal, on pest) backtracks: its time
/// grows exponentially with the nesting depth (`[` nested 100 deep does not finish) and faster
/// than linearly with the length (a 40 kB header nested three deep takes 10 s in a debug build),
/// which a fuzzer reports as a hang.
const NPY_MAX_NESTING: usize = 2;

fn npy_error(path: &Path, message: impl Into<String>) -> LoadError {
    LoadError::Npy { path: path.to_path_buf(), message: message.into() }
}

/// A `.npy` file's header, parsed once, and the data after it.
struct NpyFile<'a> {
    header: Header,
    /// The shape's element count, at most `data.len()`.
    len: usize,
    data: &'a [u8],
}

/// `bytes` split into a `.npy` header and its data, after checks that keep ndarray-npy from
/// spending much more time or memory than the file's size: the header must fit in the file
/// and in [`NPY_MAX_HEADER`] bytes, nest at most [`NPY_MAX_NESTING`] deep, and its shape must
/// not have more elements than there are bytes of data (every element takes at least one).
fn npy_split<'a>(bytes: &'a [u8], path: &Path) -> Result<NpyFile<'a>, LoadError> {
    if !bytes.starts_with(NPY_MAGIC) {
        return Err(npy_error(path, "not a .npy file: it does not start with the magic string \\x93NUMPY"));
    }
    // Version 1.0 has a 2-byte HEADER_LEN, 2.0 and 3.0 a 4-byte one, both little-endian at
    // offset 8.
    let len_bytes = match bytes.get(6) {
        Some(1) => 2,
        Some(2 | 3) => 4,
        Some(major) => return Err(npy_error(path, format!("unsupported .npy format version {major}"))),
        None => {
            return Err(npy_error(path, format!("the file ends at byte {} inside the header", bytes.len())));
        }
    };
    let Some(len_field) = bytes.get(8..8 + len_bytes) else {
        return Err(npy_error(path, format!("the file ends at byte {} inside the header", bytes.len())));
    };
    let header_len = len_field.iter().rev().fold(0u64, |acc, &b| acc << 8 | u64::from(b));
    if header_len > NPY_MAX_HEADER {
        return Err(npy_error(
            path,
            format!("the header is {header_len} bytes long, more than the {NPY_MAX_HEADER} read (as numpy)"),
        ));
    }
    let data_start = 8 + len_bytes + header_len as usize;
    let Some(literal) = bytes.get(8 + len_bytes..data_start) else {
        return Err(npy_error(
            path,
            format!(
                "the header says it is {header_len} bytes long, but the file ends at byte {}",
                bytes.len()
            ),
        ));
    };
    let mut depth = 0usize;
    for &b in literal {
        match b {
            b'(' | b'[' | b'{' => {
                depth += 1;
                if depth > NPY_MAX_NESTING {
                    return Err(npy_error(
                        path,
                        format!(
                            "the header nests brackets more than {NPY_MAX_NESTING} deep: not a plain array's \
                             (structured dtypes are not read)"
                        ),
                    ));
                }
            }
            b')' | b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let (head, data) = bytes.split_at(data_start);
    let header =
        Header::from_reader(&mut &head[..]).map_err(|e| npy_error(path, format!("malformed header: {e}")))?;
    // ndarray refuses a shape whose nonzero lengths multiply past isize::MAX even when another
    // length is 0: (0, 2^63) must be refused here, with a message.
    let nonzero = header.shape.iter().filter(|&&d| d != 0).try_fold(1usize, |n, &d| n.checked_mul(d));
    if nonzero.is_none_or(|n| isize::try_from(n).is_err()) {
        return Err(npy_error(
            path,
            format!("the header's shape {:?} is too large for an array", header.shape),
        ));
    }
    match header.shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) {
        Some(len) if len <= data.len() => Ok(NpyFile { header, len, data }),
        _ => Err(npy_error(
            path,
            format!(
                "the header's shape {:?} has more elements than the {} bytes of data after it",
                header.shape,
                data.len()
            ),
        )),
    }
}

/// The array of `npy` if its dtype is `T`'s, `None` if the dtype is another, an error if the
/// data is short or long.
fn npy_array<T: ReadableElement, D: Dimension>(
    npy: &NpyFile,
    path: &Path,
) -> Result<Option<Array<T, D>>, LoadError> {
    // What `ReadNpyExt::read_npy` does after the header, so that the header, which may be slow
    // to parse (see `NPY_MAX_NESTING`), is parsed once for all the dtypes tried.
    let values = match T::read_to_end_exact_vec(npy.data, &npy.header.type_descriptor, npy.len) {
        Ok(values) => values,
        Err(ReadDataError::WrongDescriptor(_)) => return Ok(None),
        Err(e) => return Err(npy_error(path, e.to_string())),
    };
    let shape = IxDyn(&npy.header.shape).set_f(npy.header.layout.is_fortran());
    Array::from_shape_vec(shape, values)
        .and_then(|a| a.into_dimensionality::<D>())
        .map(Some)
        .map_err(|e| npy_error(path, format!("shape {:?}: {e}", npy.header.shape)))
}

/// `a` converted to `F`, row-major whatever the file's order, or an error naming the first
/// (row-major) element that is not finite in `F`.
fn npy_floats<F: Scalar, T: Copy + Into<f64>>(a: &Array2<T>, path: &Path) -> Result<Array2<F>, LoadError> {
    for ((i, j), &v) in a.indexed_iter() {
        let v: f64 = v.into();
        if !v.is_finite() {
            return Err(npy_error(path, format!("element [{i}, {j}] is {v}, not a finite number")));
        }
        if !F::cast(v).is_finite() {
            return Err(npy_error(path, format!("element [{i}, {j}] = {v:e} is too large for {}", F::NAME)));
        }
    }
    Ok(Array2::from_shape_fn(a.raw_dim(), |ij| F::cast(a[ij].into())))
}

/// A 2-D `.npy` file of f32 or f64 (either byte order, C or Fortran order), converted to `F`
/// and returned row-major: one example per row.
///
/// # Errors
///
/// [`LoadError::Io`] if the file cannot be read; [`LoadError::Npy`] if it is not a valid
/// `.npy` file, its array is not 2-D, its dtype is not f32 or f64, or a value is NaN, infinite
/// or too large for `F` (the message gives its `[row, column]`).
///
/// ```
/// use ndarray::array;
/// use ndarray_npy::WriteNpyExt;
///
/// let path = std::env::temp_dir().join(format!("two-layer-net-doc-read-npy-{}.npy", std::process::id()));
/// array![[1.0f64, 2.0], [3.0, 4.5]].write_npy(std::fs::File::create(&path)?)?;
/// let x = two_layer_net::load::read_npy::<f32>(&path)?;
/// assert_eq!(x, array![[1.0f32, 2.0], [3.0, 4.5]]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_npy<F: Scalar>(path: impl AsRef<Path>) -> Result<Array2<F>, LoadError> {
    let path = path.as_ref();
    parse_npy(&read_file(path)?, path)
}

/// [`read_npy`] on the bytes of a `.npy` file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_npy`], less the I/O.
pub fn parse_npy<F: Scalar>(bytes: &[u8], path: &Path) -> Result<Array2<F>, LoadError> {
    let npy = npy_split(bytes, path)?;
    let shape = &npy.header.shape;
    if shape.len() != 2 {
        return Err(npy_error(
            path,
            format!("expected a 2-D array (N×D), found a {}-D array of shape {:?}", shape.len(), shape),
        ));
    }
    if let Some(a) = npy_array::<f64, Ix2>(&npy, path)? {
        npy_floats(&a, path)
    } else if let Some(a) = npy_array::<f32, Ix2>(&npy, path)? {
        npy_floats(&a, path)
    } else {
        Err(npy_error(path, format!("dtype {} is not f32 or f64", npy.header.type_descriptor)))
    }
}

/// Labels from integers of any type `T`, or the first that is negative or too large.
fn npy_int_labels<T>(a: &Array1<T>, path: &Path) -> Result<Array1<usize>, LoadError>
where
    T: Copy + fmt::Display + TryInto<usize>,
{
    a.iter()
        .enumerate()
        .map(|(i, &v)| {
            v.try_into().map_err(|_| LoadError::Label {
                path: path.to_path_buf(),
                line: i as u64,
                value: v.to_string(),
            })
        })
        .collect()
}

/// Labels from floats, or the first that is not a non-negative integer below `2^usize::BITS`.
fn npy_float_labels<T: Copy + fmt::Display + Into<f64>>(
    a: &Array1<T>,
    path: &Path,
) -> Result<Array1<usize>, LoadError> {
    a.iter()
        .enumerate()
        .map(|(i, &v)| {
            label_from_f64(v.into()).ok_or_else(|| LoadError::Label {
                path: path.to_path_buf(),
                line: i as u64,
                value: v.to_string(),
            })
        })
        .collect()
}

/// A 1-D `.npy` file of class labels: integers (`i8` … `i64`, `u8` … `u64`, either byte
/// order), or floats (`f32`, `f64`) that are exact non-negative integers such as `3.0`.
///
/// # Errors
///
/// [`LoadError::Io`] if the file cannot be read; [`LoadError::Npy`] if it is not a valid
/// `.npy` file, its array is not 1-D or its dtype is not one of those above;
/// [`LoadError::Label`] with the label's index if a label is negative, fractional, not finite
/// or too large for `usize`.
///
/// ```
/// use ndarray::array;
/// use ndarray_npy::WriteNpyExt;
///
/// let path = std::env::temp_dir().join(format!("two-layer-net-doc-labels-{}.npy", std::process::id()));
/// array![2i64, 0, 1].write_npy(std::fs::File::create(&path)?)?;
/// assert_eq!(two_layer_net::load::read_npy_labels(&path)?, array![2usize, 0, 1]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_npy_labels(path: impl AsRef<Path>) -> Result<Array1<usize>, LoadError> {
    let path = path.as_ref();
    parse_npy_labels(&read_file(path)?, path)
}

/// [`read_npy_labels`] on the bytes of a `.npy` file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_npy_labels`], less the I/O.
pub fn parse_npy_labels(bytes: &[u8], path: &Path) -> Result<Array1<usize>, LoadError> {
    let npy = npy_split(bytes, path)?;
    let shape = &npy.header.shape;
    if shape.len() != 1 {
        return Err(npy_error(
            path,
            format!("expected a 1-D array of labels, found a {}-D array of shape {:?}", shape.len(), shape),
        ));
    }
    // ndarray-npy reads one dtype per type, so try each in turn, the commonest first; a
    // mismatch is found from the descriptor, without reading the data.
    if let Some(a) = npy_array::<i64, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<i32, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<u8, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<u16, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<u32, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<u64, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<i16, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<i8, Ix1>(&npy, path)? {
        return npy_int_labels(&a, path);
    }
    if let Some(a) = npy_array::<f64, Ix1>(&npy, path)? {
        return npy_float_labels(&a, path);
    }
    if let Some(a) = npy_array::<f32, Ix1>(&npy, path)? {
        return npy_float_labels(&a, path);
    }
    Err(npy_error(path, format!("dtype {} is not an integer or float type", npy.header.type_descriptor)))
}

// ---------------------------------------------------------------------------------------------
// CSV

fn mismatch(path: &Path, expected: impl Into<String>, found: impl Into<String>) -> LoadError {
    LoadError::Mismatch { path: path.to_path_buf(), expected: expected.into(), found: found.into() }
}

/// A feature or target cell as `F`, `None` unless it is a number finite in `F`.
fn parse_float<F: Scalar>(cell: &[u8]) -> Option<F> {
    let s = std::str::from_utf8(cell).ok()?;
    // num-traits parses radix 10 with the standard library's correctly rounded `str::parse`,
    // straight into `F` (no double rounding through f64 for f32).
    let v = <F as Num>::from_str_radix(s, 10).ok()?;
    v.is_finite().then_some(v)
}

/// A label cell: an integer (`3`), or a float that is an exact non-negative integer (`3.0`).
fn parse_label(cell: &[u8]) -> Option<usize> {
    let s = std::str::from_utf8(cell).ok()?;
    s.parse::<usize>().ok().or_else(|| s.parse::<f64>().ok().and_then(label_from_f64))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The one record loop behind [`parse_csv`] and [`parse_csv_targets`]: the header names the
/// columns, `targets` are parsed by `target` (given the cell, its line and its column name)
/// into an N×K row-major `Vec` in the order of `targets`, and every other column is a feature
/// of the N×D matrix, in file order.
fn parse_table<F, T>(
    bytes: &[u8],
    path: &Path,
    targets: &[&str],
    target: impl Fn(&[u8], u64, &str) -> Result<T, LoadError>,
) -> Result<(Array2<F>, Vec<T>), LoadError>
where
    F: Scalar,
    T: Copy + Default,
{
    // Spreadsheets write a UTF-8 byte order mark, which the csv crate would keep in the first
    // column's name.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    // `flexible` so that a ragged row is reported here, with its line, rather than as the
    // reader's generic error.
    let mut reader = ReaderBuilder::new().has_headers(true).flexible(true).trim(Trim::All).from_reader(bytes);
    let header = match reader.byte_headers() {
        Ok(h) => h.clone(),
        Err(e) => return Err(csv_error(path, &e, 1)),
    };
    if header.is_empty() {
        return Err(mismatch(path, "a header row and at least one data row", "an empty file"));
    }
    let names: Vec<String> = header.iter().map(lossy).collect();

    // role[c]: Some(k) if column c is target k, None if it is a feature.
    let mut role: Vec<Option<usize>> = vec![None; names.len()];
    for (k, &want) in targets.iter().enumerate() {
        let mut hits = names.iter().enumerate().filter(|(_, name)| *name == want).map(|(c, _)| c);
        match (hits.next(), hits.next()) {
            (None, _) => {
                return Err(mismatch(
                    path,
                    format!("a column named {want:?}"),
                    format!(
                        "the columns {}",
                        names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(mismatch(
                    path,
                    format!("one column named {want:?}"),
                    format!("{} of them", names.iter().filter(|n| *n == want).count()),
                ));
            }
            (Some(c), None) => match role.get_mut(c) {
                Some(slot @ None) => *slot = Some(k),
                _ => {
                    return Err(mismatch(
                        path,
                        "distinct target columns",
                        format!("{want:?} asked for twice"),
                    ));
                }
            },
        }
    }
    let k = targets.len();
    let d = names.len() - k;

    let mut features: Vec<F> = Vec::new();
    let mut values: Vec<T> = Vec::new();
    let mut row = vec![T::default(); k];
    let mut record = ByteRecord::new();
    let mut n = 0usize;
    let mut last_line = 1;
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => return Err(csv_error(path, &e, last_line + 1)),
        }
        let line = record.position().map_or(last_line + 1, |pos| record_line(bytes, pos));
        last_line = line;
        if record.len() != names.len() {
            return Err(LoadError::Csv {
                path: path.to_path_buf(),
                line,
                message: format!("{} fields, but the header has {}", record.len(), names.len()),
            });
        }
        for ((cell, name), r) in record.iter().zip(&names).zip(&role) {
            match *r {
                None => match parse_float::<F>(cell) {
                    Some(v) => features.push(v),
                    None => {
                        return Err(LoadError::Cell {
                            path: path.to_path_buf(),
                            line,
                            column: name.clone(),
                            value: lossy(cell),
                        });
                    }
                },
                Some(t) => {
                    let v = target(cell, line, name)?;
                    if let Some(slot) = row.get_mut(t) {
                        *slot = v;
                    }
                }
            }
        }
        values.extend_from_slice(&row);
        n += 1;
    }
    if n == 0 {
        return Err(mismatch(path, "at least one data row", "only the header row"));
    }
    let features = Array2::from_shape_vec((n, d), features)
        .map_err(|e| mismatch(path, format!("{n}×{d} features"), e.to_string()))?;
    Ok((features, values))
}

/// The 1-based line `pos`'s record starts on. The csv crate gives the line where reading the
/// record began, which is before the blank lines it skipped to reach it (and, after a `\r\n`
/// record end, before that `\n`): count those in.
fn record_line(bytes: &[u8], pos: &Position) -> u64 {
    let start = usize::try_from(pos.byte()).unwrap_or(usize::MAX);
    let rest = bytes.get(start..).unwrap_or_default();
    let skipped = rest.iter().take_while(|&&b| b == b'\r' || b == b'\n').filter(|&&b| b == b'\n').count();
    pos.line() + skipped as u64
}

fn csv_error(path: &Path, e: &csv::Error, fallback_line: u64) -> LoadError {
    LoadError::Csv {
        path: path.to_path_buf(),
        line: e.position().map_or(fallback_line, Position::line),
        message: e.to_string(),
    }
}

/// A CSV file with a header row: the column named `label_column` holds class labels
/// (integers, or floats such as `3.0` that are exact non-negative integers), every other
/// column is a feature, in file order. Returns the N×D features and the N labels.
///
/// Fields may be quoted and are trimmed of surrounding whitespace; feature cells are parsed
/// straight into `F` (correctly rounded), so `0.1` reads as `0.1f32` in `f32`.
///
/// # Errors
///
/// [`LoadError::Io`] if the file cannot be read; [`LoadError::Mismatch`] if the file is empty,
/// has no data rows, or its header has no column named `label_column` (or more than one);
/// [`LoadError::Csv`] with the line of a row whose field count differs from the header's;
/// [`LoadError::Cell`] with the line, the column name and the cell for a feature that is not a
/// number finite in `F`; [`LoadError::Label`] with the line for a label that is negative,
/// fractional, not a number or too large for `usize`.
///
/// ```
/// use ndarray::array;
///
/// let path = std::env::temp_dir().join(format!("two-layer-net-doc-read-csv-{}.csv", std::process::id()));
/// std::fs::write(&path, "sepal,label,petal\n5.1,0,1.4\n6.3,2.0,4.9\n")?;
/// let (x, labels) = two_layer_net::load::read_csv::<f64>(&path, "label")?;
/// assert_eq!(x, array![[5.1, 1.4], [6.3, 4.9]]);
/// assert_eq!(labels, array![0, 2]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_csv<F: Scalar>(
    path: impl AsRef<Path>,
    label_column: &str,
) -> Result<(Array2<F>, Array1<usize>), LoadError> {
    let path = path.as_ref();
    parse_csv(&read_file(path)?, path, label_column)
}

/// [`read_csv`] on the bytes of a CSV file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_csv`], less the I/O.
///
/// ```
/// use std::path::Path;
/// use ndarray::array;
///
/// let (x, labels) = two_layer_net::load::parse_csv::<f32>(b"a,b,y\n1,2,1\n3,4,0\n", Path::new("inline.csv"), "y")?;
/// assert_eq!((x, labels), (array![[1.0, 2.0], [3.0, 4.0]], array![1, 0]));
/// # Ok::<(), two_layer_net::load::LoadError>(())
/// ```
pub fn parse_csv<F: Scalar>(
    bytes: &[u8],
    path: &Path,
    label_column: &str,
) -> Result<(Array2<F>, Array1<usize>), LoadError> {
    let (x, labels) = parse_table(bytes, path, &[label_column], |cell, line, _| {
        parse_label(cell).ok_or_else(|| LoadError::Label {
            path: path.to_path_buf(),
            line,
            value: lossy(cell),
        })
    })?;
    Ok((x, Array1::from_vec(labels)))
}

/// A CSV file with a header row, for regression: the columns named in `target_columns` are
/// the N×K targets (column `k` of the result is `target_columns[k]`), every other column is a
/// feature, in file order. Returns the N×D features and the N×K targets.
///
/// # Errors
///
/// As [`read_csv`], with target cells checked as features are ([`LoadError::Cell`]), and
/// [`LoadError::Mismatch`] also if `target_columns` is empty or names a column twice.
///
/// ```
/// use ndarray::array;
///
/// let path = std::env::temp_dir().join(format!("two-layer-net-doc-targets-{}.csv", std::process::id()));
/// std::fs::write(&path, "x,y1,y2\n0.5,1,-1\n1.5,2,-2\n")?;
/// let (x, y) = two_layer_net::load::read_csv_targets::<f64>(&path, &["y2", "y1"])?;
/// assert_eq!(x, array![[0.5], [1.5]]);
/// assert_eq!(y, array![[-1.0, 1.0], [-2.0, 2.0]]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_csv_targets<F: Scalar>(
    path: impl AsRef<Path>,
    target_columns: &[&str],
) -> Result<(Array2<F>, Array2<F>), LoadError> {
    let path = path.as_ref();
    parse_csv_targets(&read_file(path)?, path, target_columns)
}

/// [`read_csv_targets`] on the bytes of a CSV file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_csv_targets`], less the I/O.
pub fn parse_csv_targets<F: Scalar>(
    bytes: &[u8],
    path: &Path,
    target_columns: &[&str],
) -> Result<(Array2<F>, Array2<F>), LoadError> {
    if target_columns.is_empty() {
        return Err(mismatch(path, "at least one target column", "none asked for"));
    }
    let (x, values) = parse_table(bytes, path, target_columns, |cell, line, column| {
        parse_float::<F>(cell).ok_or_else(|| LoadError::Cell {
            path: path.to_path_buf(),
            line,
            column: column.to_owned(),
            value: lossy(cell),
        })
    })?;
    let (n, k) = (x.nrows(), target_columns.len());
    let y = Array2::from_shape_vec((n, k), values)
        .map_err(|e| mismatch(path, format!("{n}×{k} targets"), e.to_string()))?;
    Ok((x, y))
}

// ---------------------------------------------------------------------------------------------
// IDX

fn idx_error(path: &Path, offset: u64, message: impl Into<String>) -> LoadError {
    LoadError::Idx { path: path.to_path_buf(), offset, message: message.into() }
}

/// The sizes in the header of an IDX file of unsigned bytes with `ndim` dimensions, and the
/// data after it, which must be exactly their product long.
///
/// ```text
/// offset 0: 0x00 0x00 0x08 ndim     (0x08: unsigned byte)
/// offset 4: ndim big-endian u32 sizes
/// then:     the product of the sizes, one byte each, row-major
/// ```
fn idx_parse<'a>(
    bytes: &'a [u8],
    path: &Path,
    ndim: u8,
    what: &str,
) -> Result<(Vec<usize>, &'a [u8]), LoadError> {
    let header_len = 4 + 4 * usize::from(ndim);
    let Some(&[z0, z1, code, found_ndim]) = bytes.first_chunk::<4>() else {
        return Err(idx_error(
            path,
            bytes.len() as u64,
            format!("the file ends at byte {}, inside the {header_len}-byte header", bytes.len()),
        ));
    };
    let magic = u32::from_be_bytes([z0, z1, code, found_ndim]);
    let expected_magic = 0x0800 | u32::from(ndim);
    if z0 != 0 || z1 != 0 {
        return Err(idx_error(
            path,
            0,
            format!("magic number {magic:#010x} is not IDX's (expected {expected_magic:#010x}, {what})"),
        ));
    }
    if code != 0x08 {
        let kind = match code {
            0x09 => "signed byte",
            0x0B => "i16",
            0x0C => "i32",
            0x0D => "f32",
            0x0E => "f64",
            _ => "no IDX type",
        };
        return Err(idx_error(
            path,
            0,
            format!(
                "magic number {magic:#010x}: element type code {code:#04x} ({kind}), expected 0x08 (unsigned byte)"
            ),
        ));
    }
    if found_ndim != ndim {
        return Err(idx_error(
            path,
            0,
            format!(
                "magic number {magic:#010x}: dimension count {found_ndim}, expected {ndim} ({expected_magic:#010x}, {what})"
            ),
        ));
    }
    let Some(size_bytes) = bytes.get(4..header_len) else {
        return Err(idx_error(
            path,
            bytes.len() as u64,
            format!("the file ends at byte {}, inside the {header_len}-byte header", bytes.len()),
        ));
    };
    let sizes: Vec<u32> =
        size_bytes.chunks_exact(4).map(|c| c.iter().fold(0u32, |acc, &b| acc << 8 | u32::from(b))).collect();
    let shown = sizes.iter().map(u32::to_string).collect::<Vec<_>>().join("×");
    let overflow = || idx_error(path, 4, format!("the sizes {shown} overflow usize"));
    let sizes: Vec<usize> =
        sizes.iter().map(|&s| usize::try_from(s)).collect::<Result<_, _>>().map_err(|_| overflow())?;
    let product = sizes.iter().try_fold(1usize, |n, &s| n.checked_mul(s));
    let end = product.and_then(|p| p.checked_add(header_len)).ok_or_else(overflow)?;
    match bytes.len().cmp(&end) {
        std::cmp::Ordering::Less => Err(idx_error(
            path,
            bytes.len() as u64,
            format!("the data ends at byte {}, but the header's sizes {shown} need {end} bytes", bytes.len()),
        )),
        std::cmp::Ordering::Greater => Err(idx_error(
            path,
            end as u64,
            format!("{} bytes follow the end of the data ({shown} after the header)", bytes.len() - end),
        )),
        std::cmp::Ordering::Equal => Ok((sizes, bytes.get(header_len..).unwrap_or_default())),
    }
}

/// An MNIST IDX3 file of unsigned-byte images, as N×(rows·cols), each image flattened
/// row-major and each pixel scaled to `[0, 1]` as `v / 255`.
///
/// ```text
/// offset 0:  magic 0x00000803      (big-endian u32)
/// offset 4:  N, rows, cols         (big-endian u32 each)
/// offset 16: N·rows·cols pixels    (u8, image after image, row-major)
/// ```
///
/// The file must be exactly that long.
///
/// # Errors
///
/// [`LoadError::Io`] if the file cannot be read; [`LoadError::Idx`] with the byte offset if the
/// magic number is wrong (offset 0), the sizes' product overflows `usize` (offset 4), or the
/// file is shorter (offset: its length) or longer (offset: the end of the data) than the
/// header says.
///
/// ```
/// let path = std::env::temp_dir().join(format!("two-layer-net-doc-idx3-{}", std::process::id()));
/// let mut bytes = vec![0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]; // 2 images of 1×2
/// bytes.extend([0, 255, 51, 102]);
/// std::fs::write(&path, &bytes)?;
/// let x = two_layer_net::load::read_idx_images::<f64>(&path)?;
/// assert_eq!(x, ndarray::array![[0.0, 1.0], [0.2, 0.4]]);
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn read_idx_images<F: Scalar>(path: impl AsRef<Path>) -> Result<Array2<F>, LoadError> {
    let path = path.as_ref();
    parse_idx_images(&read_file(path)?, path)
}

/// [`read_idx_images`] on the bytes of an IDX3 file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_idx_images`], less the I/O.
pub fn parse_idx_images<F: Scalar>(bytes: &[u8], path: &Path) -> Result<Array2<F>, LoadError> {
    let (sizes, data) = idx_parse(bytes, path, 3, "unsigned-byte images")?;
    let &[n, rows, cols] = sizes.as_slice() else {
        return Err(idx_error(path, 4, format!("{} sizes, expected 3", sizes.len())));
    };
    // rows·cols ≤ n·rows·cols unless n = 0, so only an empty file's image size can overflow.
    let pixels =
        rows.checked_mul(cols).ok_or_else(|| idx_error(path, 8, format!("{rows}×{cols} overflows usize")))?;
    let scale: [F; 256] = std::array::from_fn(|v| F::cast(v as f64 / 255.0));
    let values = data.iter().map(|&v| scale[usize::from(v)]).collect();
    Array2::from_shape_vec((n, pixels), values)
        .map_err(|e| idx_error(path, 4, format!("{n} images of {rows}×{cols}: {e}")))
}

/// An MNIST IDX1 file of unsigned-byte labels.
///
/// ```text
/// offset 0: magic 0x00000801   (big-endian u32)
/// offset 4: N                  (big-endian u32)
/// offset 8: N labels           (u8)
/// ```
///
/// The file must be exactly that long.
///
/// # Errors
///
/// [`LoadError::Io`] if the file cannot be read; [`LoadError::Idx`] with the byte offset if the
/// magic number is wrong (offset 0) or the file is shorter (offset: its length) or longer
/// (offset: the end of the data) than the header says.
///
/// ```
/// use std::path::Path;
///
/// let bytes = [0, 0, 8, 1, 0, 0, 0, 3, 7, 2, 1];
/// let labels = two_layer_net::load::parse_idx_labels(&bytes, Path::new("labels"))?;
/// assert_eq!(labels, ndarray::array![7, 2, 1]);
/// # Ok::<(), two_layer_net::load::LoadError>(())
/// ```
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Array1<usize>, LoadError> {
    let path = path.as_ref();
    parse_idx_labels(&read_file(path)?, path)
}

/// [`read_idx_labels`] on the bytes of an IDX1 file; `path` only names it in errors.
///
/// # Errors
///
/// As [`read_idx_labels`], less the I/O.
pub fn parse_idx_labels(bytes: &[u8], path: &Path) -> Result<Array1<usize>, LoadError> {
    let (_, data) = idx_parse(bytes, path, 1, "unsigned-byte labels")?;
    Ok(data.iter().map(|&v| usize::from(v)).collect())
}

/// An MNIST file in `dir`, with a hint when only its gzipped form is there.
fn read_mnist_file(dir: &Path, name: &str) -> Result<(PathBuf, Vec<u8>), LoadError> {
    let path = dir.join(name);
    match std::fs::read(&path) {
        Ok(bytes) => Ok((path, bytes)),
        Err(source) => {
            let gz = dir.join(format!("{name}.gz"));
            let source = if source.kind() == io::ErrorKind::NotFound && gz.is_file() {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("not found, but {name}.gz is: decompress it first (gunzip -k {})", gz.display()),
                )
            } else {
                source
            };
            Err(LoadError::Io { path, source })
        }
    }
}

/// One MNIST set: images and labels, as many of each.
fn mnist_set<F: Scalar>(
    dir: &Path,
    images: &str,
    labels: &str,
) -> Result<(Array2<F>, Array1<usize>), LoadError> {
    let (images_path, bytes) = read_mnist_file(dir, images)?;
    let x = parse_idx_images(&bytes, &images_path)?;
    let (labels_path, bytes) = read_mnist_file(dir, labels)?;
    let y = parse_idx_labels(&bytes, &labels_path)?;
    if y.len() != x.nrows() {
        return Err(mismatch(
            &labels_path,
            format!("{} labels, one per image of {images}", x.nrows()),
            format!("{} labels", y.len()),
        ));
    }
    Ok((x, y))
}

/// MNIST from the four IDX files of `dir`, as distributed (uncompressed):
/// `train-images-idx3-ubyte`, `train-labels-idx1-ubyte`, `t10k-images-idx3-ubyte` and
/// `t10k-labels-idx1-ubyte`. Returns `((x_train, y_train), (x_test, y_test))`, images as
/// [`read_idx_images`] gives them (60000×784 and 10000×784 for MNIST itself, pixels in
/// `[0, 1]`).
///
/// The gzipped files (`*.gz`) are not read: decompress them first (`gunzip -k *.gz`).
///
/// # Errors
///
/// [`LoadError::Io`] naming the first file that cannot be read (saying so when only its `.gz`
/// is there); [`LoadError::Idx`] for a malformed file, as in [`read_idx_images`] and
/// [`read_idx_labels`]; [`LoadError::Mismatch`] if a labels file does not have one label per
/// image, or the test images are not the size of the training images.
///
/// ```no_run
/// let ((x_train, y_train), (x_test, y_test)) = two_layer_net::load::read_mnist::<f32>("data/mnist")?;
/// assert_eq!((x_train.dim(), y_train.len()), ((60000, 784), 60000));
/// assert_eq!((x_test.dim(), y_test.len()), ((10000, 784), 10000));
/// # Ok::<(), two_layer_net::load::LoadError>(())
/// ```
pub fn read_mnist<F: Scalar>(dir: impl AsRef<Path>) -> Result<Split<F, Array1<usize>>, LoadError> {
    let dir = dir.as_ref();
    let train = mnist_set(dir, "train-images-idx3-ubyte", "train-labels-idx1-ubyte")?;
    let test = mnist_set(dir, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")?;
    if test.0.ncols() != train.0.ncols() {
        return Err(mismatch(
            &dir.join("t10k-images-idx3-ubyte"),
            format!("{} pixels per image, as in train-images-idx3-ubyte", train.0.ncols()),
            format!("{}", test.0.ncols()),
        ));
    }
    Ok((train, test))
}
