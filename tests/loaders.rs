//! The data loaders of `two_layer_net::load`: values read back exactly from files the tests
//! write, every error variant with the right line, column, index or byte offset, and no panic
//! on any truncation or byte corruption of a valid file.

use std::fs::{self, File};
use std::path::{Path, PathBuf};

use ndarray::{Array1, Array2, ShapeBuilder, array};
use ndarray_npy::WriteNpyExt;
use two_layer_net::load::{
    LoadError, parse_csv, parse_csv_targets, parse_idx_images, parse_idx_labels, parse_npy, parse_npy_labels,
    read_csv, read_csv_targets, read_idx_images, read_idx_labels, read_mnist, read_npy, read_npy_labels,
};

/// A fresh directory under the system's temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("two-layer-net-loaders-{}-{name}", std::process::id()));
        // A leftover from a killed run of the same pid is stale.
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the test directory");
        TempDir(dir)
    }

    fn file(&self, name: &str, bytes: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(name);
        fs::write(&path, bytes).expect("write a test file");
        path
    }

    fn npy<T: WriteNpyExt>(&self, name: &str, a: &T) -> PathBuf {
        let path = self.0.join(name);
        a.write_npy(File::create(&path).expect("create a .npy file")).expect("write a .npy file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A version-1.0 `.npy` file with the header literal `dict` (padded as numpy pads it) and the
/// raw `data` after it, for headers ndarray-npy would never write.
fn npy_bytes(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut header = dict.as_bytes().to_vec();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(b' ');
    }
    header.push(b'\n');
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend(u16::try_from(header.len()).expect("a short header").to_le_bytes());
    bytes.extend(header);
    bytes.extend(data);
    bytes
}

/// An IDX file: magic, big-endian sizes, data.
fn idx_bytes(magic: [u8; 4], sizes: &[u32], data: &[u8]) -> Vec<u8> {
    let mut bytes = magic.to_vec();
    for s in sizes {
        bytes.extend(s.to_be_bytes());
    }
    bytes.extend(data);
    bytes
}

/// Three 2×3 images, pixel values chosen to cover 0, 255 and uneven fractions.
fn three_images() -> (Vec<u8>, Vec<u8>) {
    let pixels: Vec<u8> = vec![0, 1, 2, 127, 128, 255, 3, 51, 102, 153, 204, 254, 17, 34, 68, 136, 200, 250];
    (idx_bytes([0, 0, 8, 3], &[3, 2, 3], &pixels), pixels)
}

fn labels_idx(labels: &[u8]) -> Vec<u8> {
    idx_bytes([0, 0, 8, 1], &[u32::try_from(labels.len()).expect("few labels")], labels)
}

const CSV: &str = "x1,label,x2,x3\n0.1,3,-2.5,1e-7\n1e10,0,0.3333333333333333,-0\n7,2.0,8,9\n";

fn csv_expected<F: two_layer_net::Scalar + std::str::FromStr>() -> Array2<F>
where
    <F as std::str::FromStr>::Err: std::fmt::Debug,
{
    let cells = [["0.1", "-2.5", "1e-7"], ["1e10", "0.3333333333333333", "-0"], ["7", "8", "9"]];
    Array2::from_shape_fn((3, 3), |(i, j)| cells[i][j].parse::<F>().expect("a number"))
}

fn assert_bitwise<F: two_layer_net::Scalar>(got: &Array2<F>, want: &Array2<F>) {
    assert_eq!(got.dim(), want.dim());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g.as_f64().to_bits(), w.as_f64().to_bits(), "{g} vs {w}");
    }
}

// ---------------------------------------------------------------------------------------------
// .npy

#[test]
fn npy_f64_and_f32_files_read_back_exactly_in_either_type() {
    let dir = TempDir::new("npy-values");
    let x64 = array![[0.1f64, -2.5, 1e-300], [3.0, 1e300, -0.0]];
    let x32 = array![[0.1f32, -2.5, 1e-30], [3.0, 1e30, -0.0]];
    let p64 = dir.npy("x64.npy", &x64);
    let p32 = dir.npy("x32.npy", &x32);

    assert_bitwise(&read_npy::<f64>(&p64).expect("f64 as f64"), &x64);
    assert_bitwise(&read_npy::<f64>(&p32).expect("f32 as f64"), &x32.mapv(f64::from));
    assert_bitwise(&read_npy::<f32>(&p32).expect("f32 as f32"), &x32);
    // 1e300 does not fit f32: the f64 file as f32 is an error, but a fitting one converts.
    let small = array![[0.1f64, -2.5], [3.0, 1e-3]];
    let p = dir.npy("small.npy", &small);
    assert_bitwise(&read_npy::<f32>(&p).expect("f64 as f32"), &small.mapv(|v| v as f32));
    match read_npy::<f32>(&p64) {
        Err(LoadError::Npy { path, message }) => {
            assert_eq!(path, p64);
            assert!(message.contains("[1, 1]") && message.contains("f32"), "{message}");
        }
        other => panic!("expected an Npy error, got {other:?}"),
    }
}

#[test]
fn npy_fortran_order_is_read_as_the_same_matrix_row_major() {
    let dir = TempDir::new("npy-fortran");
    let x = array![[1.0f64, 2.0, 3.0], [4.0, 5.0, 6.0]];
    // The transpose of a C-order array is F-order: ndarray-npy writes it with fortran_order.
    let mut t = Array2::zeros((2, 3).f());
    t.assign(&x);
    assert!(t.t().is_standard_layout());
    let p = dir.npy("f.npy", &t);
    let header = fs::read(&p).expect("read back");
    assert!(String::from_utf8_lossy(&header).contains("'fortran_order': True"));
    let got = read_npy::<f64>(&p).expect("Fortran-order f64");
    assert_eq!(got, x);
    assert!(got.is_standard_layout());
}

#[test]
fn a_1d_npy_where_2d_is_expected_is_an_npy_error() {
    let dir = TempDir::new("npy-1d");
    let p = dir.npy("v.npy", &array![1.0f64, 2.0, 3.0]);
    match read_npy::<f64>(&p) {
        Err(LoadError::Npy { path, message }) => {
            assert_eq!(path, p);
            assert!(message.contains("2-D") && message.contains("1-D"), "{message}");
        }
        other => panic!("expected an Npy error, got {other:?}"),
    }
    let p = dir.npy("t.npy", &ndarray::Array3::<f64>::zeros((1, 2, 3)));
    assert!(matches!(read_npy::<f32>(&p), Err(LoadError::Npy { .. })));
}

#[test]
fn an_integer_npy_where_floats_are_expected_is_an_npy_error_naming_the_dtype() {
    let dir = TempDir::new("npy-dtype");
    let p = dir.npy("i.npy", &array![[1i32, 2], [3, 4]]);
    match read_npy::<f64>(&p) {
        Err(LoadError::Npy { message, .. }) => assert!(message.contains("<i4"), "{message}"),
        other => panic!("expected an Npy error, got {other:?}"),
    }
}

#[test]
fn a_non_finite_npy_value_is_an_npy_error_with_its_index() {
    let dir = TempDir::new("npy-nan");
    let p = dir.npy("nan.npy", &array![[1.0f64, 2.0], [3.0, f64::NAN]]);
    match read_npy::<f64>(&p) {
        Err(LoadError::Npy { message, .. }) => {
            assert!(message.contains("[1, 1]") && message.contains("NaN"), "{message}")
        }
        other => panic!("expected an Npy error, got {other:?}"),
    }
    let p = dir.npy("inf.npy", &array![[1.0f32, f32::NEG_INFINITY, 0.0]]);
    match read_npy::<f32>(&p) {
        Err(LoadError::Npy { message, .. }) => {
            assert!(message.contains("[0, 1]") && message.contains("inf"), "{message}")
        }
        other => panic!("expected an Npy error, got {other:?}"),
    }
}

#[test]
fn malformed_npy_headers_are_npy_errors_without_large_allocations() {
    let p = Path::new("hostile.npy");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not npy", b"PK\x03\x04 a zip file".to_vec(), "magic"),
        ("empty", Vec::new(), "magic"),
        ("version 9", b"\x93NUMPY\x09\x00\x10\x00".to_vec(), "version 9"),
        ("no header length", b"\x93NUMPY\x01\x00\x10".to_vec(), "ends at byte 9"),
        ("header past the end", b"\x93NUMPY\x01\x00\xff\xff{}".to_vec(), "65535"),
        ("header of 200 bytes past the end", b"\x93NUMPY\x01\x00\xc8\x00{}".to_vec(), "ends at byte 12"),
        (
            "header too long",
            npy_bytes(
                &format!(
                    "{{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }}{}",
                    " ".repeat(10_000)
                ),
                &[0; 8],
            ),
            "more than the 10000",
        ),
        (
            "structured dtype",
            npy_bytes(
                "{'descr': [('a', '<f8'), ('b', '<f8')], 'fortran_order': False, 'shape': (1, 2), }",
                &[0; 32],
            ),
            "structured",
        ),
        ("v2 header past the end", b"\x93NUMPY\x02\x00\xff\xff\xff\xff{}".to_vec(), "4294967295"),
        // 2^40 × 2^20 f64s would be 8 EiB; the data is 16 bytes.
        (
            "huge shape",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776, 1048576), }",
                &[0; 16],
            ),
            "more elements",
        ),
        (
            "overflowing shape",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (18446744073709551615, 2), }",
                &[0; 16],
            ),
            "too large",
        ),
        // No elements, but ndarray refuses the shape (and ndarray-npy would unwrap that).
        (
            "empty but too large",
            npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (0, 9223372036854775808), }", &[]),
            "too large",
        ),
        (
            "empty but overflowing",
            npy_bytes(
                "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 0, 4294967296), }",
                &[],
            ),
            "too large",
        ),
        (
            "1-D, empty but too large",
            npy_bytes("{'descr': '<i8', 'fortran_order': False, 'shape': (0, 18446744073709551615), }", &[]),
            "too large",
        ),
        // A long but shallow header is parsed in reasonable time.
        ("wide", npy_bytes(&format!("[[{}]]", "1,".repeat(4900)), &[]), "not a dict"),
        // Deeply nested brackets make the header parser backtrack exponentially.
        ("nested", npy_bytes(&format!("{}{}", "{".repeat(40), "}".repeat(40)), &[]), "nest"),
        ("not a dict", npy_bytes("[1, 2]", &[]), "header"),
        (
            "missing data",
            npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }", &[0; 16]),
            "EOF",
        ),
        (
            "extra data",
            npy_bytes("{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1), }", &[0; 16]),
            "extra",
        ),
    ];
    for (what, bytes, needle) in cases {
        match parse_npy::<f64>(&bytes, p) {
            Err(LoadError::Npy { path, message }) => {
                assert_eq!(path, p, "{what}");
                assert!(message.contains(needle), "{what}: {message:?} lacks {needle:?}");
            }
            other => panic!("{what}: expected an Npy error, got {other:?}"),
        }
        assert!(matches!(parse_npy_labels(&bytes, p), Err(LoadError::Npy { .. })), "{what} (labels)");
    }
}

#[test]
fn labels_read_from_integer_and_float_npy_files() {
    let dir = TempDir::new("npy-labels");
    let want = array![3usize, 0, 9, 1];
    let cases = [
        dir.npy("i64.npy", &array![3i64, 0, 9, 1]),
        dir.npy("i32.npy", &array![3i32, 0, 9, 1]),
        dir.npy("i16.npy", &array![3i16, 0, 9, 1]),
        dir.npy("i8.npy", &array![3i8, 0, 9, 1]),
        dir.npy("u8.npy", &array![3u8, 0, 9, 1]),
        dir.npy("u16.npy", &array![3u16, 0, 9, 1]),
        dir.npy("u32.npy", &array![3u32, 0, 9, 1]),
        dir.npy("u64.npy", &array![3u64, 0, 9, 1]),
        dir.npy("f64.npy", &array![3.0f64, 0.0, 9.0, 1.0]),
        dir.npy("f32.npy", &array![3.0f32, -0.0, 9.0, 1.0]),
    ];
    for p in &cases {
        assert_eq!(read_npy_labels(p).unwrap_or_else(|e| panic!("{e}")), want, "{}", p.display());
    }
    // Big-endian integers too.
    let big =
        npy_bytes("{'descr': '>i4', 'fortran_order': False, 'shape': (2,), }", &[0, 0, 0, 7, 0, 0, 1, 0]);
    assert_eq!(parse_npy_labels(&big, Path::new("big.npy")).expect("big-endian i4"), array![7, 256]);
}

#[test]
fn a_bad_npy_label_is_a_label_error_with_its_index() {
    let dir = TempDir::new("npy-bad-labels");
    let cases: Vec<(PathBuf, u64, &str)> = vec![
        (dir.npy("neg.npy", &array![1i64, 0, -1, 2]), 2, "-1"),
        (dir.npy("neg8.npy", &array![-128i8]), 0, "-128"),
        (dir.npy("frac.npy", &array![1.0f64, 2.5]), 1, "2.5"),
        (dir.npy("nan.npy", &array![0.0f32, 1.0, f32::NAN]), 2, "NaN"),
        (dir.npy("inf.npy", &array![f64::INFINITY]), 0, "inf"),
        (dir.npy("negf.npy", &array![-1.0f64]), 0, "-1"),
        (dir.npy("huge.npy", &array![1e30f64]), 0, "1000000000000000000000000000000"),
    ];
    for (p, index, value) in cases {
        match read_npy_labels(&p) {
            Err(LoadError::Label { path, line, value: v }) => {
                assert_eq!((path, line, v.as_str()), (p.clone(), index, value), "{}", p.display());
            }
            other => panic!("{}: expected a Label error, got {other:?}", p.display()),
        }
    }
}

#[test]
fn labels_npy_of_the_wrong_shape_or_dtype_is_an_npy_error() {
    let dir = TempDir::new("npy-labels-shape");
    let p = dir.npy("m.npy", &array![[1i64, 2], [3, 4]]);
    match read_npy_labels(&p) {
        Err(LoadError::Npy { message, .. }) => {
            assert!(message.contains("1-D") && message.contains("2-D"), "{message}")
        }
        other => panic!("expected an Npy error, got {other:?}"),
    }
    let p = dir.npy("b.npy", &array![true, false]);
    match read_npy_labels(&p) {
        Err(LoadError::Npy { message, .. }) => assert!(message.contains("|b1"), "{message}"),
        other => panic!("expected an Npy error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// CSV

#[test]
fn csv_features_and_labels_read_back_exactly_in_f32_and_f64() {
    let dir = TempDir::new("csv-values");
    let p = dir.file("d.csv", CSV);
    let (x, y) = read_csv::<f64>(&p, "label").expect("f64");
    assert_bitwise(&x, &csv_expected::<f64>());
    assert_eq!(y, array![3, 0, 2]);
    let (x, y) = read_csv::<f32>(&p, "label").expect("f32");
    // Parsed straight into f32, not rounded twice through f64.
    assert_bitwise(&x, &csv_expected::<f32>());
    assert_eq!(y, array![3, 0, 2]);
}

#[test]
fn csv_accepts_quotes_whitespace_crlf_a_bom_and_a_missing_final_newline() {
    let text = "\u{feff}label,\"a\", b\r\n 1 ,\"1.5\",2\r\n0.0,  3,4";
    let (x, y) = parse_csv::<f64>(text.as_bytes(), Path::new("q.csv"), "label").expect("valid CSV");
    assert_eq!(x, array![[1.5, 2.0], [3.0, 4.0]]);
    assert_eq!(y, array![1, 0]);
    // Lines count right after CRLF record ends, blank lines and a BOM.
    let text = "\u{feff}label,a\r\n1,2\r\n\r\n\r\n0,x\r\n";
    match parse_csv::<f64>(text.as_bytes(), Path::new("q.csv"), "label") {
        Err(LoadError::Cell { line, column, value, .. }) => {
            assert_eq!((line, column.as_str(), value.as_str()), (5, "a", "x"));
        }
        other => panic!("expected a Cell error, got {other:?}"),
    }
    let text = "label,a\r\n1,2\r\n0\r\n";
    assert!(matches!(
        parse_csv::<f64>(text.as_bytes(), Path::new("q.csv"), "label"),
        Err(LoadError::Csv { line: 3, .. })
    ));
}

#[test]
fn csv_targets_read_back_in_the_order_asked_for() {
    let dir = TempDir::new("csv-targets");
    let p = dir.file("r.csv", "y1,x1,y2,x2\n1,0.1,-1,0.2\n2,0.3,-2,0.4\n3,0.5,-3,0.6\n");
    let (x, y) = read_csv_targets::<f64>(&p, &["y2", "y1"]).expect("f64");
    assert_eq!(x, array![[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]);
    assert_eq!(y, array![[-1.0, 1.0], [-2.0, 2.0], [-3.0, 3.0]]);
    let (x, y) = read_csv_targets::<f32>(&p, &["x2"]).expect("f32");
    assert_eq!(x, array![[1.0f32, 0.1, -1.0], [2.0, 0.3, -2.0], [3.0, 0.5, -3.0]]);
    assert_eq!(y, array![[0.2f32], [0.4], [0.6]]);
}

#[test]
fn a_ragged_csv_row_is_a_csv_error_with_its_line() {
    let dir = TempDir::new("csv-ragged");
    let short = dir.file("short.csv", "a,b,label\n1,2,0\n3,4\n5,6,1\n");
    let long = dir.file("long.csv", "a,b,label\n1,2,0\n3,4,1\n5,6,1,7\n");
    for (p, line, fields) in [(&short, 3, "2 fields"), (&long, 4, "4 fields")] {
        match read_csv::<f64>(p, "label") {
            Err(LoadError::Csv { path, line: l, message }) => {
                assert_eq!((&path, l), (p, line));
                assert!(message.contains(fields) && message.contains("header has 3"), "{message}");
            }
            other => panic!("expected a Csv error, got {other:?}"),
        }
    }
    // A ragged row is reported by the targets loader the same way.
    assert!(matches!(read_csv_targets::<f32>(&short, &["label"]), Err(LoadError::Csv { line: 3, .. })));
}

#[test]
fn csv_lines_are_physical_lines_counting_quoted_newlines() {
    // The record on lines 2–3 holds a quoted newline (trimmed away: the cell is `1`), line 4
    // is blank; the bad row is on line 5.
    let text = "a,label\n\"1\n\",0\n\n3,x\n";
    match parse_csv::<f64>(text.as_bytes(), Path::new("l.csv"), "label") {
        Err(LoadError::Label { line, value, .. }) => assert_eq!((line, value.as_str()), (5, "x")),
        other => panic!("expected a Label error, got {other:?}"),
    }
    // A record is reported at the line it starts on.
    let text = "a,label\n1,0\n\"1\n2\",0\n";
    match parse_csv::<f64>(text.as_bytes(), Path::new("l.csv"), "label") {
        Err(LoadError::Cell { line, column, value, .. }) => {
            assert_eq!((line, column.as_str(), value.as_str()), (3, "a", "1\n2"));
        }
        other => panic!("expected a Cell error, got {other:?}"),
    }
}

#[test]
fn a_bad_csv_cell_is_a_cell_error_with_line_column_and_value() {
    let cases = [
        ("a,b,label\n1,2,0\n3,hello,1\n", 3, "b", "hello"),
        ("a,b,label\n1,NaN,0\n", 2, "b", "NaN"),
        ("a,b,label\n1,2,0\n3,4,1\ninf,4,1\n", 4, "a", "inf"),
        ("a,b,label\n-infinity,2,0\n", 2, "a", "-infinity"),
        ("a,b,label\n1,,0\n", 2, "b", ""),
        ("a,b,label\n1,1e999,0\n", 2, "b", "1e999"),
        ("a,b,label\n1,2 3,0\n", 2, "b", "2 3"),
    ];
    for (text, line, column, value) in cases {
        match parse_csv::<f64>(text.as_bytes(), Path::new("c.csv"), "label") {
            Err(LoadError::Cell { path, line: l, column: c, value: v }) => {
                assert_eq!(
                    (path.as_path(), l, c.as_str(), v.as_str()),
                    (Path::new("c.csv"), line, column, value)
                );
            }
            other => panic!("{text:?}: expected a Cell error, got {other:?}"),
        }
    }
    // 1e39 is finite in f64 but not in f32.
    let text = b"a,label\n1e39,0\n";
    assert!(parse_csv::<f64>(text, Path::new("c.csv"), "label").is_ok());
    match parse_csv::<f32>(text, Path::new("c.csv"), "label") {
        Err(LoadError::Cell { line: 2, column, value, .. }) => {
            assert_eq!((column.as_str(), value.as_str()), ("a", "1e39"))
        }
        other => panic!("expected a Cell error, got {other:?}"),
    }
    // A bad target cell is a Cell error too, naming the target column.
    match parse_csv_targets::<f64>(b"x,y\n1,2\n3,?\n", Path::new("t.csv"), &["y"]) {
        Err(LoadError::Cell { line: 3, column, value, .. }) => {
            assert_eq!((column.as_str(), value.as_str()), ("y", "?"))
        }
        other => panic!("expected a Cell error, got {other:?}"),
    }
}

#[test]
fn a_bad_csv_label_is_a_label_error_with_its_line() {
    let cases = [
        ("a,label\n1,0\n2,-1\n", 3, "-1"),
        ("a,label\n1,2.5\n", 2, "2.5"),
        ("a,label\n1,0\n1,1\n1,cat\n", 4, "cat"),
        ("a,label\n1,NaN\n", 2, "NaN"),
        ("a,label\n1,\n", 2, ""),
        ("a,label\n1,1e30\n", 2, "1e30"),
        ("a,label\n1,18446744073709551616\n", 2, "18446744073709551616"),
        ("a,label\n1,-0.5\n", 2, "-0.5"),
    ];
    for (text, line, value) in cases {
        match parse_csv::<f32>(text.as_bytes(), Path::new("l.csv"), "label") {
            Err(LoadError::Label { path, line: l, value: v }) => {
                assert_eq!((path.as_path(), l, v.as_str()), (Path::new("l.csv"), line, value), "{text:?}");
            }
            other => panic!("{text:?}: expected a Label error, got {other:?}"),
        }
    }
    // Integral floats and the largest usize are labels.
    let (_, y) =
        parse_csv::<f32>(b"a,label\n1,3.0\n1,1e3\n1,18446744073709551615\n", Path::new("l.csv"), "label")
            .expect("integral labels");
    assert_eq!(y, array![3, 1000, usize::MAX]);
}

#[test]
fn a_missing_or_duplicated_csv_column_is_a_mismatch() {
    let p = Path::new("m.csv");
    match parse_csv::<f64>(b"a,b,class\n1,2,0\n", p, "label") {
        Err(LoadError::Mismatch { path, expected, found }) => {
            assert_eq!(path, p);
            assert!(expected.contains("\"label\""), "{expected}");
            assert!(found.contains("\"class\""), "{found}");
        }
        other => panic!("expected a Mismatch, got {other:?}"),
    }
    match parse_csv::<f64>(b"label,b,label\n1,2,0\n", p, "label") {
        Err(LoadError::Mismatch { expected, found, .. }) => {
            assert!(expected.contains("one column"), "{expected}");
            assert!(found.contains('2'), "{found}");
        }
        other => panic!("expected a Mismatch, got {other:?}"),
    }
    assert!(matches!(parse_csv_targets::<f64>(b"a,b\n1,2\n", p, &["c"]), Err(LoadError::Mismatch { .. })));
    assert!(matches!(
        parse_csv_targets::<f64>(b"a,b\n1,2\n", p, &["b", "b"]),
        Err(LoadError::Mismatch { .. })
    ));
    match parse_csv_targets::<f64>(b"a,b\n1,2\n", p, &[]) {
        Err(LoadError::Mismatch { expected, .. }) => assert!(expected.contains("target"), "{expected}"),
        other => panic!("expected a Mismatch, got {other:?}"),
    }
}

#[test]
fn an_empty_or_header_only_csv_is_a_mismatch() {
    let dir = TempDir::new("csv-empty");
    for (name, text, found) in [
        ("empty.csv", "", "empty file"),
        ("blank.csv", "\n\n", "empty file"),
        ("header.csv", "a,label\n", "only the header"),
        ("header-no-newline.csv", "a,label", "only the header"),
    ] {
        let p = dir.file(name, text);
        match read_csv::<f64>(&p, "label") {
            Err(LoadError::Mismatch { path, expected, found: f }) => {
                assert_eq!(path, p);
                assert!(expected.contains("data row"), "{name}: {expected}");
                assert!(f.contains(found), "{name}: {f}");
            }
            other => panic!("{name}: expected a Mismatch, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// IDX

#[test]
fn idx_images_and_labels_read_back_exactly_in_f32_and_f64() {
    let dir = TempDir::new("idx-values");
    let (bytes, pixels) = three_images();
    let p = dir.file("images", &bytes);
    let x64 = read_idx_images::<f64>(&p).expect("f64");
    let x32 = read_idx_images::<f32>(&p).expect("f32");
    assert_eq!(x64.dim(), (3, 6));
    assert_bitwise(&x64, &Array2::from_shape_fn((3, 6), |(i, j)| f64::from(pixels[i * 6 + j]) / 255.0));
    assert_bitwise(&x32, &Array2::from_shape_fn((3, 6), |(i, j)| f32::from(pixels[i * 6 + j]) / 255.0));
    assert_eq!((x64[[0, 0]], x64[[0, 5]], x64[[1, 1]]), (0.0, 1.0, 0.2));

    let p = dir.file("labels", labels_idx(&[7, 0, 255]));
    assert_eq!(read_idx_labels(&p).expect("labels"), array![7, 0, 255]);
    // Empty sets are valid IDX files.
    assert_eq!(parse_idx_labels(&labels_idx(&[]), &p).expect("no labels").len(), 0);
    assert_eq!(
        parse_idx_images::<f32>(&idx_bytes([0, 0, 8, 3], &[0, 28, 28], &[]), &p).expect("no images").dim(),
        (0, 784)
    );
}

#[test]
fn a_wrong_idx_magic_number_is_an_idx_error_at_offset_0() {
    let p = Path::new("bad-magic");
    let (images, _) = three_images();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("not idx", b"GIF89a and more bytes".to_vec(), "0x47494638"),
        ("labels as images", labels_idx(&[1, 2]), "dimension count 1, expected 3"),
        ("f32 elements", idx_bytes([0, 0, 0x0D, 3], &[1, 1, 1], &[0; 4]), "0x0d (f32)"),
        ("unknown code", idx_bytes([0, 0, 0x42, 3], &[1, 1, 1], &[0]), "0x42"),
    ];
    for (what, bytes, needle) in cases {
        match parse_idx_images::<f64>(&bytes, p) {
            Err(LoadError::Idx { path, offset, message }) => {
                assert_eq!((path.as_path(), offset), (p, 0), "{what}");
                assert!(message.contains(needle), "{what}: {message:?} lacks {needle:?}");
            }
            other => panic!("{what}: expected an Idx error, got {other:?}"),
        }
    }
    match parse_idx_labels(&images, p) {
        Err(LoadError::Idx { offset: 0, message, .. }) => {
            assert!(message.contains("dimension count 3, expected 1"), "{message}")
        }
        other => panic!("expected an Idx error, got {other:?}"),
    }
}

#[test]
fn a_truncated_idx_file_is_an_idx_error_at_its_end() {
    let p = Path::new("truncated");
    let (images, _) = three_images();
    // In the header: the offset is where the file ends.
    for len in [0, 3, 4, 10, 15] {
        match parse_idx_images::<f32>(&images[..len], p) {
            Err(LoadError::Idx { offset, message, .. }) => {
                assert_eq!(offset, len as u64);
                assert!(message.contains("16-byte header"), "{len}: {message}");
            }
            other => panic!("{len}: expected an Idx error, got {other:?}"),
        }
    }
    // In the data: the offset is where the data ends, the message says how long it should be.
    match parse_idx_images::<f32>(&images[..30], p) {
        Err(LoadError::Idx { offset: 30, message, .. }) => {
            assert!(message.contains("need 34 bytes"), "{message}")
        }
        other => panic!("expected an Idx error, got {other:?}"),
    }
    let labels = labels_idx(&[1, 2, 3]);
    match parse_idx_labels(&labels[..9], p) {
        Err(LoadError::Idx { offset: 9, message, .. }) => {
            assert!(message.contains("need 11 bytes"), "{message}")
        }
        other => panic!("expected an Idx error, got {other:?}"),
    }
    match parse_idx_labels(&labels[..6], p) {
        Err(LoadError::Idx { offset: 6, message, .. }) => {
            assert!(message.contains("8-byte header"), "{message}")
        }
        other => panic!("expected an Idx error, got {other:?}"),
    }
}

#[test]
fn trailing_bytes_after_idx_data_are_an_idx_error_at_the_end_of_the_data() {
    let (mut images, _) = three_images();
    images.extend([1, 2]);
    match parse_idx_images::<f64>(&images, Path::new("long")) {
        Err(LoadError::Idx { offset: 34, message, .. }) => {
            assert!(message.contains("2 bytes follow"), "{message}")
        }
        other => panic!("expected an Idx error, got {other:?}"),
    }
    let mut labels = labels_idx(&[1]);
    labels.push(0);
    assert!(matches!(parse_idx_labels(&labels, Path::new("long")), Err(LoadError::Idx { offset: 9, .. })));
}

#[test]
fn idx_sizes_that_overflow_are_an_idx_error_at_offset_4() {
    let bytes = idx_bytes([0, 0, 8, 3], &[u32::MAX, u32::MAX, u32::MAX], &[0; 8]);
    match parse_idx_images::<f32>(&bytes, Path::new("huge")) {
        Err(LoadError::Idx { offset: 4, message, .. }) => assert!(message.contains("overflow"), "{message}"),
        other => panic!("expected an Idx error, got {other:?}"),
    }
    // Sizes that do not overflow but exceed the file are a truncation, not an allocation.
    let bytes = idx_bytes([0, 0, 8, 3], &[60000, 28, 28], &[0; 8]);
    assert!(matches!(
        parse_idx_images::<f64>(&bytes, Path::new("short")),
        Err(LoadError::Idx { offset: 24, .. })
    ));
    let bytes = idx_bytes([0, 0, 8, 1], &[u32::MAX], &[0; 8]);
    assert!(matches!(parse_idx_labels(&bytes, Path::new("short")), Err(LoadError::Idx { offset: 16, .. })));
}

#[test]
fn mnist_reads_four_idx_files_and_checks_the_counts() {
    let dir = TempDir::new("mnist");
    let (images, pixels) = three_images();
    let one_image = idx_bytes([0, 0, 8, 3], &[1, 2, 3], &pixels[..6]);
    dir.file("train-images-idx3-ubyte", &images);
    dir.file("train-labels-idx1-ubyte", labels_idx(&[5, 0, 4]));
    dir.file("t10k-images-idx3-ubyte", &one_image);
    let labels_path = dir.file("t10k-labels-idx1-ubyte", labels_idx(&[7]));

    let ((x_train, y_train), (x_test, y_test)) = read_mnist::<f32>(&dir.0).expect("a small MNIST");
    assert_eq!((x_train.dim(), x_test.dim()), ((3, 6), (1, 6)));
    assert_eq!((y_train, y_test), (array![5, 0, 4], array![7]));
    assert_eq!(x_test.row(0), x_train.row(0));

    dir.file("t10k-labels-idx1-ubyte", labels_idx(&[7, 1]));
    match read_mnist::<f64>(&dir.0) {
        Err(LoadError::Mismatch { path, expected, found }) => {
            assert_eq!(path, labels_path);
            assert!(expected.contains("1 labels") && found.contains("2 labels"), "{expected} / {found}");
        }
        other => panic!("expected a Mismatch, got {other:?}"),
    }
    dir.file("t10k-labels-idx1-ubyte", labels_idx(&[7]));
    dir.file("t10k-images-idx3-ubyte", idx_bytes([0, 0, 8, 3], &[1, 1, 6], &pixels[..6]));
    assert!(read_mnist::<f64>(&dir.0).is_ok(), "1×6 and 2×3 images have as many pixels");
    dir.file("t10k-images-idx3-ubyte", idx_bytes([0, 0, 8, 3], &[1, 1, 5], &pixels[..5]));
    match read_mnist::<f64>(&dir.0) {
        Err(LoadError::Mismatch { path, expected, .. }) => {
            assert_eq!(path, dir.0.join("t10k-images-idx3-ubyte"));
            assert!(expected.contains("6 pixels"), "{expected}");
        }
        other => panic!("expected a Mismatch, got {other:?}"),
    }
}

#[test]
fn a_missing_mnist_file_is_an_io_error_naming_it() {
    let dir = TempDir::new("mnist-missing");
    let (images, _) = three_images();
    dir.file("train-images-idx3-ubyte", &images);
    dir.file("train-labels-idx1-ubyte.gz", b"\x1f\x8b not really gzip");
    match read_mnist::<f32>(&dir.0) {
        Err(e @ LoadError::Io { .. }) => {
            let LoadError::Io { path, source } = &e else { unreachable!() };
            assert_eq!(path, &dir.0.join("train-labels-idx1-ubyte"));
            assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            assert!(e.to_string().contains("train-labels-idx1-ubyte.gz"), "{e}");
            assert!(std::error::Error::source(&e).is_some());
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    fs::remove_file(dir.0.join("train-labels-idx1-ubyte.gz")).expect("remove");
    fs::remove_file(dir.0.join("train-images-idx3-ubyte")).expect("remove");
    match read_mnist::<f32>(&dir.0) {
        Err(LoadError::Io { path, .. }) => assert_eq!(path, dir.0.join("train-images-idx3-ubyte")),
        other => panic!("expected an Io error, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Every loader

#[test]
fn every_loader_reports_a_missing_file_as_io_naming_it() {
    let dir = TempDir::new("missing");
    let p = dir.0.join("nothing-here");
    let results: Vec<(&str, Result<(), LoadError>)> = vec![
        ("read_npy", read_npy::<f64>(&p).map(drop)),
        ("read_npy_labels", read_npy_labels(&p).map(drop)),
        ("read_csv", read_csv::<f32>(&p, "label").map(drop)),
        ("read_csv_targets", read_csv_targets::<f64>(&p, &["y"]).map(drop)),
        ("read_idx_images", read_idx_images::<f32>(&p).map(drop)),
        ("read_idx_labels", read_idx_labels(&p).map(drop)),
    ];
    for (what, result) in results {
        match result {
            Err(e @ LoadError::Io { .. }) => {
                assert!(e.to_string().contains(&*p.to_string_lossy()), "{what}: {e}");
                assert!(matches!(&e, LoadError::Io { path, .. } if *path == p), "{what}");
            }
            other => panic!("{what}: expected an Io error, got {other:?}"),
        }
    }
}

#[test]
fn every_error_displays_its_path_and_position_on_one_line() {
    let (images, _) = three_images();
    let errors: Vec<(LoadError, &str)> = vec![
        (
            parse_csv::<f64>(b"a,label\n1,0\n1\n", Path::new("d/r.csv"), "label").expect_err("ragged"),
            "d/r.csv:3: ",
        ),
        (
            parse_csv::<f64>(b"a,label\nz,0\n", Path::new("c.csv"), "label").expect_err("cell"),
            "c.csv:2: column \"a\"",
        ),
        (
            parse_csv::<f64>(b"a,label\n1,-3\n", Path::new("l.csv"), "label").expect_err("label"),
            "l.csv:2: label \"-3\"",
        ),
        (parse_csv::<f64>(b"a\n1\n", Path::new("m.csv"), "label").expect_err("mismatch"), "m.csv: expected"),
        (parse_idx_images::<f64>(&images[..20], Path::new("i")).expect_err("idx"), "i: byte 20: "),
        (parse_npy::<f64>(b"nope", Path::new("n.npy")).expect_err("npy"), "n.npy: "),
    ];
    for (e, prefix) in errors {
        let s = e.to_string();
        assert!(s.starts_with(prefix), "{s:?} does not start with {prefix:?}");
        assert!(!s.contains('\n'), "{s:?}");
        assert!(std::error::Error::source(&e).is_none());
    }
}

/// Every by-bytes parser on `bytes`, the errors formatted: none may panic.
fn every_parser(bytes: &[u8]) {
    let p = Path::new("fuzz");
    let _ = parse_idx_images::<f32>(bytes, p).map_err(|e| e.to_string());
    let _ = parse_idx_images::<f64>(bytes, p);
    let _ = parse_idx_labels(bytes, p).map_err(|e| e.to_string());
    let _ = parse_csv::<f32>(bytes, p, "label").map_err(|e| e.to_string());
    let _ = parse_csv::<f64>(bytes, p, "x2");
    let _ = parse_csv_targets::<f64>(bytes, p, &["x1", "label"]).map_err(|e| e.to_string());
    let _ = parse_npy::<f32>(bytes, p).map_err(|e| e.to_string());
    let _ = parse_npy::<f64>(bytes, p);
    let _ = parse_npy_labels(bytes, p).map_err(|e| e.to_string());
}

/// Every truncation and a handful of byte substitutions at every position of valid files:
/// the parsers return (never panic), and IDX, whose length is exact, fails on every strict
/// prefix.
#[test]
fn no_truncation_or_corruption_of_a_valid_file_panics() {
    let (images, _) = three_images();
    let labels = labels_idx(&[1, 2, 3, 4]);
    let csv = CSV.as_bytes();
    let mut npy = Vec::new();
    array![[1.0f64, 2.0], [3.0, 4.0]].write_npy(&mut npy).expect("npy to memory");
    let mut npy_labels = Vec::new();
    array![1i64, 2].write_npy(&mut npy_labels).expect("npy to memory");
    let p = Path::new("fuzz");

    for file in [&images[..], &labels, csv, &npy, &npy_labels] {
        for len in 0..=file.len() {
            every_parser(&file[..len]);
        }
        for i in 0..file.len() {
            for b in [0u8, 0xff, 0x80, b',', b'\n', b'"', b'-', b'9', b'(', b'[', b'{'] {
                let mut bytes = file.to_vec();
                bytes[i] = b;
                every_parser(&bytes);
            }
        }
    }
    for len in 0..images.len() {
        assert!(matches!(parse_idx_images::<f32>(&images[..len], p), Err(LoadError::Idx { .. })), "{len}");
    }
    for len in 0..labels.len() {
        assert!(matches!(parse_idx_labels(&labels[..len], p), Err(LoadError::Idx { .. })), "{len}");
    }
    for len in 0..npy.len() {
        assert!(matches!(parse_npy::<f64>(&npy[..len], p), Err(LoadError::Npy { .. })), "{len}");
    }
    assert!(parse_idx_images::<f32>(&images, p).is_ok());
    assert!(parse_idx_labels(&labels, p).is_ok());
    assert!(parse_npy::<f64>(&npy, p).is_ok());
    assert!(parse_npy_labels(&npy_labels, p).is_ok());
    // Every prefix of the CSV that ends in a complete row parses; the one with no data row
    // does not.
    for (len, _) in csv.iter().enumerate().filter(|(_, b)| **b == b'\n') {
        let result = parse_csv::<f64>(&csv[..=len], p, "label");
        assert_eq!(result.is_ok(), len > CSV.find('\n').unwrap_or(0), "{len}: {result:?}");
    }
}

#[test]
fn labels_from_every_source_agree() {
    let dir = TempDir::new("agree");
    let labels = [4u8, 0, 9, 9, 1];
    let want: Array1<usize> = labels.iter().map(|&l| usize::from(l)).collect();
    let from_npy = read_npy_labels(dir.npy("l.npy", &Array1::from_vec(labels.to_vec()))).expect("npy");
    let from_idx = read_idx_labels(dir.file("l.idx", labels_idx(&labels))).expect("idx");
    let csv: String =
        std::iter::once("x,label\n".to_owned()).chain(labels.iter().map(|l| format!("0,{l}\n"))).collect();
    let (_, from_csv) = read_csv::<f32>(dir.file("l.csv", csv), "label").expect("csv");
    assert_eq!((&from_npy, &from_idx, &from_csv), (&want, &want, &want));
}

/// The seeds in `fuzz/corpus/loaders/` run through every parser, and each is what its name
/// says for the parser of its format (`idx3-`, `idx1-`, `csv-` with a `label` column,
/// `npy-labels-`, `npy-`): `*-valid-*` loads, anything else is an error.
#[test]
fn the_fuzz_seeds_load_or_fail_as_named() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/loaders");
    let mut seen = 0;
    for entry in fs::read_dir(&dir).expect("the loaders corpus") {
        let path = entry.expect("a corpus entry").path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = fs::read(&path).expect("a seed");
        every_parser(&bytes);
        let ok = if name.starts_with("idx3-") {
            parse_idx_images::<f32>(&bytes, &path).is_ok()
        } else if name.starts_with("idx1-") {
            parse_idx_labels(&bytes, &path).is_ok()
        } else if name.starts_with("csv-") {
            parse_csv::<f64>(&bytes, &path, "label").is_ok()
        } else if name.starts_with("npy-labels-") {
            parse_npy_labels(&bytes, &path).is_ok()
        } else if name.starts_with("npy-") {
            parse_npy::<f64>(&bytes, &path).is_ok()
        } else {
            parse_idx_images::<f64>(&bytes, &path).is_ok()
                || parse_idx_labels(&bytes, &path).is_ok()
                || parse_npy::<f64>(&bytes, &path).is_ok()
                || parse_npy_labels(&bytes, &path).is_ok()
                || parse_csv::<f64>(&bytes, &path, "label").is_ok()
        };
        assert_eq!(ok, name.contains("-valid-"), "{name}");
        seen += 1;
    }
    assert!(seen >= 30, "only {seen} seeds in {}", dir.display());
}
