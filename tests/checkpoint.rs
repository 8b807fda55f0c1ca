//! Checkpoints: bit-exact round trips (f32, f64, every activation, a non-default leaky slope),
//! identical training after a load, every validation error with its message, truncation at
//! every byte and flips of every byte (an error or a well-formed network, never a panic),
//! atomic writes, and Python interop (`scripts/check_interop.py`: numpy, safetensors and,
//! when installed, PyTorch) when a Python with numpy and safetensors is found.

mod common;

use std::collections::HashMap;
use std::error::Error as _;
use std::ffi::OsString;
use std::fs;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use common::bits;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use two_layer_net::ndarray::{Array2, Axis};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Adam, CheckpointError, Error, Identity, LeakyRelu, Mse, Optimizer, Relu, Scalar, Sigmoid,
    Tanh, TrainingState, TwoLayerNet, from_bytes, from_bytes_with, load, load_with, save, to_bytes,
};

/// A fresh directory under the system temp dir, removed (with its contents) on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("two-layer-net-ckpt-{tag}-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("create the temp dir");
        TempDir(dir)
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The names in the directory, sorted.
    fn entries(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(&self.0)
            .expect("read the temp dir")
            .map(|e| e.expect("dir entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A D→H→K network whose every parameter (biases included) is distinct and nonzero.
fn sample_net<F: Scalar>(d: usize, h: usize, k: usize, seed: u64) -> TwoLayerNet<F> {
    let mut net = TwoLayerNet::<F>::new(d, h, k, &mut StdRng::seed_from_u64(seed)).expect("net");
    for (i, p) in net.params_mut().as_slice_mut().iter_mut().enumerate() {
        *p = F::cast(((i as f64 + 1.0) * 0.731 + seed as f64).sin() * 1.7);
    }
    net
}

/// `(D, H, K)` of a network.
fn dims<F: Scalar, A: Activation>(net: &TwoLayerNet<F, A>) -> (usize, usize, usize) {
    (net.input_dim(), net.hidden_dim(), net.output_dim())
}

/// A 5×`cols` input with entries in (−2, 2).
fn batch<F: Scalar>(cols: usize, phase: f64) -> Array2<F> {
    Array2::from_shape_fn((5, cols), |(i, j)| F::cast(((i * cols + j) as f64 * 1.3 + phase).cos() * 2.0))
}

/// One tensor of a hand-built file: name, dtype, shape, little-endian bytes.
type RawTensor = (String, Dtype, Vec<usize>, Vec<u8>);

/// `n` copies of `v` as little-endian f64 bytes.
fn f64_bytes(n: usize, v: f64) -> Vec<u8> {
    (0..n).flat_map(|_| v.to_le_bytes()).collect()
}

/// The four f64 tensors of a D→H→K network, every value 0.5.
fn raw_tensors(d: usize, h: usize, k: usize) -> Vec<RawTensor> {
    [("w1", vec![d, h]), ("b1", vec![h]), ("w2", vec![h, k]), ("b2", vec![k])]
        .into_iter()
        .map(|(name, shape)| {
            let n = shape.iter().product();
            (name.to_owned(), Dtype::F64, shape, f64_bytes(n, 0.5))
        })
        .collect()
}

/// The metadata `save` writes for an f64 ReLU D→H→K network.
fn raw_metadata(d: usize, h: usize, k: usize) -> HashMap<String, String> {
    [
        ("format", "two-layer-net".to_owned()),
        ("version", env!("CARGO_PKG_VERSION").to_owned()),
        ("dtype", "f64".to_owned()),
        ("d", d.to_string()),
        ("h", h.to_string()),
        ("k", k.to_string()),
        ("activation", "relu".to_owned()),
        ("layout", "in_out".to_owned()),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_owned(), value))
    .collect()
}

/// A safetensors file built with the safetensors crate directly.
fn raw_file(tensors: &[RawTensor], metadata: Option<HashMap<String, String>>) -> Vec<u8> {
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            (name.clone(), TensorView::new(*dtype, shape.clone(), data).expect("consistent raw tensor"))
        })
        .collect();
    safetensors::serialize(views, metadata).expect("serialize")
}

/// `from_bytes` as an f64 ReLU network.
fn load_f64(bytes: &[u8]) -> Result<TwoLayerNet<f64>, CheckpointError> {
    from_bytes(bytes)
}

#[test]
fn raw_file_of_the_reference_layout_loads() {
    // The hand-built files below differ from this one in one thing each.
    let net = load_f64(&raw_file(&raw_tensors(3, 4, 2), Some(raw_metadata(3, 4, 2)))).expect("valid file");
    assert_eq!(dims(&net), (3, 4, 2));
    assert!(net.params().as_slice().iter().all(|&v| v == 0.5));
}

#[test]
fn f64_round_trip_is_bit_exact() {
    let dir = TempDir::new("f64");
    let path = dir.join("net.safetensors");
    let mut net = sample_net::<f64>(3, 5, 2, 1);
    let special = [-0.0, 5e-324, f64::MIN_POSITIVE, f64::MAX, f64::MIN, f64::EPSILON, 1.0 / 3.0];
    net.params_mut().as_slice_mut()[..special.len()].copy_from_slice(&special);

    save(&net, &path).expect("save");
    let bytes = to_bytes(&net).expect("to_bytes");
    assert_eq!(fs::read(&path).expect("read"), bytes, "save writes to_bytes");
    assert_eq!(to_bytes(&net.clone()).expect("to_bytes"), bytes, "the same network, the same bytes");
    let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    assert_eq!(header_len % 8, 0, "the data starts 8-byte aligned");
    let back: TwoLayerNet<f64> = load(&path).expect("load");
    assert_eq!(dims(&back), (3, 5, 2));
    assert_eq!(bits(back.params().as_slice()), bits(net.params().as_slice()));
    assert_eq!(dir.entries(), ["net.safetensors"]);
}

#[test]
fn f32_round_trip_is_bit_exact() {
    let dir = TempDir::new("f32");
    let path = dir.join("net.safetensors");
    let mut net = sample_net::<f32>(4, 3, 3, 2);
    let special = [-0.0, 1e-45, f32::MIN_POSITIVE, f32::MAX, f32::MIN, f32::EPSILON, 1.0 / 3.0];
    net.params_mut().as_slice_mut()[..special.len()].copy_from_slice(&special);

    save(&net, &path).expect("save");
    let back: TwoLayerNet<f32> = load(&path).expect("load");
    assert_eq!(dims(&back), (4, 3, 3));
    assert_eq!(bits(back.params().as_slice()), bits(net.params().as_slice()));
}

/// `net` with activation `act` survives `to_bytes`/`from_bytes_with` bit for bit.
fn round_trip_with<A: Activation + PartialEq>(act: A) {
    let net = sample_net::<f64>(2, 3, 2, 3).with_activation(act.clone());
    let back =
        from_bytes_with::<f64, A>(&to_bytes(&net).expect("to_bytes"), act.clone()).expect("from_bytes");
    assert_eq!(back.activation(), &act);
    assert_eq!(bits(back.params().as_slice()), bits(net.params().as_slice()), "{}", act.describe());
}

/// An activation whose description needs JSON escaping.
#[derive(Clone, Debug, PartialEq)]
struct Quoted;

impl Activation for Quoted {
    const NAME: &'static str = "quoted";
    fn describe(&self) -> String {
        "quoted \"name\" \\ with\ttabs,\nlines, \u{1} and é".to_owned()
    }
    fn forward<F: Scalar>(&self, y: F) -> F {
        y
    }
    fn backward<F: Scalar>(&self, _y: F, _h: F, dh: F) -> F {
        dh
    }
}

#[test]
fn every_activation_round_trips() {
    round_trip_with(Relu);
    round_trip_with(Sigmoid);
    round_trip_with(Tanh);
    round_trip_with(Identity);
    round_trip_with(LeakyRelu::default());
    round_trip_with(LeakyRelu { slope: 0.2 });
    round_trip_with(Quoted);

    // Its description is stored as a JSON string, read back verbatim by safetensors.
    let bytes = to_bytes(&sample_net::<f64>(2, 3, 2, 3).with_activation(Quoted)).expect("to_bytes");
    let (_, header) = SafeTensors::read_metadata(&bytes).expect("header");
    assert_eq!(header.metadata().as_ref().and_then(|m| m.get("activation")), Some(&Quoted.describe()));
}

#[test]
fn leaky_relu_slope_is_recorded_and_checked() {
    let dir = TempDir::new("leaky");
    let path = dir.join("leaky.safetensors");
    let leaky = LeakyRelu { slope: 0.2 };
    let net = sample_net::<f32>(3, 4, 2, 4).with_activation(leaky);
    save(&net, &path).expect("save");

    let back = load_with::<f32, _>(&path, leaky).expect("load_with the same slope");
    assert_eq!(back.activation().slope, 0.2);
    assert_eq!(bits(back.params().as_slice()), bits(net.params().as_slice()));

    // The default slope (0.01) is another activation.
    let err = load::<f32, LeakyRelu>(&path).expect_err("default slope");
    match &err {
        CheckpointError::Metadata { key: "activation", expected, found: Some(found) } => {
            assert_eq!(
                (expected.as_str(), found.as_str()),
                ("leaky_relu(slope=0.01)", "leaky_relu(slope=0.2)")
            );
        }
        other => panic!("expected an activation metadata error, got {other:?}"),
    }
    assert_eq!(
        err.to_string(),
        r#"metadata `activation`: expected "leaky_relu(slope=0.01)", found "leaky_relu(slope=0.2)""#
    );
    assert!(matches!(load::<f32, Relu>(&path), Err(CheckpointError::Metadata { key: "activation", .. })));
}

/// Five SGD steps of `a` and `b` on the same batch give bitwise the same losses and parameters.
fn assert_trains_identically<F: Scalar, A: Activation>(mut a: TwoLayerNet<F, A>, mut b: TwoLayerNet<F, A>) {
    let (d, _, k) = dims(&a);
    let x = batch::<F>(d, 0.0);
    let y = batch::<F>(k, 0.5);
    for step in 0..5 {
        let la = a.train_step(x.view(), y.view(), &Mse, F::cast(0.05)).expect("step a");
        let lb = b.train_step(x.view(), y.view(), &Mse, F::cast(0.05)).expect("step b");
        assert_eq!(la.as_f64().to_bits(), lb.as_f64().to_bits(), "loss at step {step}: {la} vs {lb}");
    }
    assert_eq!(bits(a.params().as_slice()), bits(b.params().as_slice()), "parameters after training");
}

#[test]
fn loaded_net_trains_identically() {
    let dir = TempDir::new("train");
    let (p64, p32) = (dir.join("f64.safetensors"), dir.join("f32.safetensors"));

    let net64 = sample_net::<f64>(3, 6, 2, 5).with_activation(Tanh);
    save(&net64, &p64).expect("save f64");
    assert_trains_identically(net64, load::<f64, Tanh>(&p64).expect("load f64"));

    let leaky = LeakyRelu { slope: 0.1 };
    let net32 = sample_net::<f32>(3, 6, 2, 6).with_activation(leaky);
    save(&net32, &p32).expect("save f32");
    assert_trains_identically(net32, load_with::<f32, _>(&p32, leaky).expect("load f32"));
}

#[test]
fn file_holds_the_documented_tensors_and_metadata() {
    let net = sample_net::<f32>(3, 4, 2, 7).with_activation(LeakyRelu { slope: 0.2 });
    let bytes = to_bytes(&net).expect("to_bytes");
    let file = SafeTensors::deserialize(&bytes).expect("a safetensors file");

    let mut names = file.names();
    names.sort();
    assert_eq!(names, ["b1", "b2", "w1", "w2"]);
    for (name, shape, values) in [
        ("w1", vec![3, 4], net.w1().iter().copied().collect::<Vec<_>>()),
        ("b1", vec![4], net.b1().to_vec()),
        ("w2", vec![4, 2], net.w2().iter().copied().collect()),
        ("b2", vec![2], net.b2().to_vec()),
    ] {
        let t = file.tensor(name).expect("tensor");
        assert_eq!((t.dtype(), t.shape()), (Dtype::F32, shape.as_slice()), "{name}");
        let expected: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(t.data(), expected.as_slice(), "{name}: (in, out) row-major, little-endian");
    }

    let (_, header) = SafeTensors::read_metadata(&bytes).expect("header");
    let mut expected = raw_metadata(3, 4, 2);
    expected.insert("dtype".into(), "f32".into());
    expected.insert("activation".into(), "leaky_relu(slope=0.2)".into());
    assert_eq!(header.metadata().as_ref(), Some(&expected));
}

#[test]
fn wrong_dtype_is_refused() {
    let bytes32 = to_bytes(&sample_net::<f32>(3, 4, 2, 8)).expect("to_bytes");
    let err = load_f64(&bytes32).expect_err("f32 file as f64");
    assert!(
        matches!(&err, CheckpointError::DType { tensor, expected: "F64", found } if tensor == "w1" && found == "F32"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "tensor `w1`: expected dtype F64, found F32");

    let bytes64 = to_bytes(&sample_net::<f64>(3, 4, 2, 8)).expect("to_bytes");
    let err = from_bytes::<f32, Relu>(&bytes64).expect_err("f64 file as f32");
    assert!(
        matches!(&err, CheckpointError::DType { expected: "F32", found, .. } if found == "F64"),
        "{err:?}"
    );

    // One tensor of another dtype of the same width.
    let mut tensors = raw_tensors(3, 4, 2);
    tensors[1].1 = Dtype::I64;
    let err = load_f64(&raw_file(&tensors, Some(raw_metadata(3, 4, 2)))).expect_err("I64 b1");
    assert_eq!(err.to_string(), "tensor `b1`: expected dtype F64, found I64");

    // F64 tensors under a metadata dtype of f32.
    let mut meta = raw_metadata(3, 4, 2);
    meta.insert("dtype".into(), "f32".into());
    let err = load_f64(&raw_file(&raw_tensors(3, 4, 2), Some(meta))).expect_err("metadata dtype");
    assert!(matches!(&err, CheckpointError::Metadata { key: "dtype", .. }), "{err:?}");
    assert_eq!(err.to_string(), r#"metadata `dtype`: expected "f64", found "f32""#);
}

#[test]
fn wrong_activation_is_refused() {
    let bytes = to_bytes(&sample_net::<f64>(3, 4, 2, 9)).expect("to_bytes"); // ReLU
    let err = from_bytes::<f64, Tanh>(&bytes).expect_err("tanh");
    assert_eq!(err.to_string(), r#"metadata `activation`: expected "tanh", found "relu""#);
    let err = from_bytes_with::<f64, _>(&bytes, LeakyRelu { slope: 0.0 }).expect_err("leaky");
    assert!(matches!(err, CheckpointError::Metadata { key: "activation", .. }), "{err:?}");
}

#[test]
fn metadata_dims_must_match_the_tensors() {
    let tensors = raw_tensors(3, 4, 2);
    let with = |key: &str, value: Option<&str>| {
        let mut meta = raw_metadata(3, 4, 2);
        match value {
            Some(v) => meta.insert(key.to_owned(), v.to_owned()),
            None => meta.remove(key),
        };
        load_f64(&raw_file(&tensors, Some(meta))).expect_err(key)
    };

    let err = with("d", Some("5"));
    assert!(
        matches!(&err, CheckpointError::Metadata { key: "d", expected, found: Some(f) } if expected == "3" && f == "5")
    );
    assert_eq!(err.to_string(), r#"metadata `d`: expected "3", found "5""#);
    let err = with("k", Some("3"));
    assert!(
        matches!(&err, CheckpointError::Metadata { key: "k", expected, .. } if expected == "2"),
        "{err:?}"
    );
    let err = with("h", None);
    assert!(matches!(&err, CheckpointError::Metadata { key: "h", found: None, .. }), "{err:?}");
    assert!(err.to_string().contains("found no such key"), "{err}");
    let err = with("k", Some("two"));
    assert!(
        matches!(&err, CheckpointError::Metadata { key: "k", found: Some(f), .. } if f == "two"),
        "{err:?}"
    );
}

#[test]
fn inconsistent_tensor_shapes_are_refused() {
    let meta = || Some(raw_metadata(3, 4, 2));
    let reshape = |i: usize, shape: Vec<usize>| {
        let mut tensors = raw_tensors(3, 4, 2);
        let n = shape.iter().product();
        tensors[i].2 = shape;
        tensors[i].3 = f64_bytes(n, 0.5);
        load_f64(&raw_file(&tensors, meta())).expect_err("bad shape")
    };
    let shape_err = |err: CheckpointError| match err {
        CheckpointError::Shape { tensor, expected, found } => (tensor, expected, found),
        other => panic!("expected a shape error, got {other:?}"),
    };

    assert_eq!(shape_err(reshape(1, vec![5])), ("b1".into(), vec![4], vec![5]));
    assert_eq!(shape_err(reshape(1, vec![1, 4])), ("b1".into(), vec![4], vec![1, 4]));
    assert_eq!(shape_err(reshape(2, vec![5, 2])), ("w2".into(), vec![4, 2], vec![5, 2]));
    assert_eq!(shape_err(reshape(3, vec![2, 1])), ("b2".into(), vec![2], vec![2, 1]));
    // PyTorch's (out, in) layout.
    let err = reshape(0, vec![4, 3]);
    assert_eq!(err.to_string(), "tensor `w1`: expected shape [3, 4], found [4, 3]");
    assert_eq!(shape_err(err), ("w1".into(), vec![3, 4], vec![4, 3]));
}

#[test]
fn extra_or_missing_tensors_are_refused() {
    let mut tensors = raw_tensors(3, 4, 2);
    tensors.push(("fc3".into(), Dtype::F64, vec![2], f64_bytes(2, 1.0)));
    let err = load_f64(&raw_file(&tensors, Some(raw_metadata(3, 4, 2)))).expect_err("extra");
    assert!(matches!(&err, CheckpointError::UnexpectedTensor { tensor } if tensor == "fc3"), "{err:?}");
    assert_eq!(err.to_string(), "unexpected tensor `fc3`: expected only w1, b1, w2, b2");

    let mut tensors = raw_tensors(3, 4, 2);
    tensors.retain(|t| t.0 != "b2");
    let err = load_f64(&raw_file(&tensors, Some(raw_metadata(3, 4, 2)))).expect_err("missing b2");
    assert!(
        matches!(&err, CheckpointError::MissingTensor { tensor: "b2", found } if found == &["b1", "w1", "w2"])
    );
    assert_eq!(err.to_string(), "missing tensor `b2`: expected w1, b1, w2, b2, found [b1, w1, w2]");

    // A renamed tensor is reported as missing, with the name it has in the list.
    let mut tensors = raw_tensors(3, 4, 2);
    tensors[0].0 = "fc1.weight".into();
    let err = load_f64(&raw_file(&tensors, Some(raw_metadata(3, 4, 2)))).expect_err("renamed");
    assert!(
        err.to_string().contains("missing tensor `w1`") && err.to_string().contains("fc1.weight"),
        "{err}"
    );
}

#[test]
fn foreign_or_missing_metadata_is_refused() {
    let tensors = raw_tensors(3, 4, 2);
    let err = load_f64(&raw_file(&tensors, None)).expect_err("no metadata");
    assert!(matches!(&err, CheckpointError::Metadata { key: "format", found: None, .. }), "{err:?}");
    assert_eq!(err.to_string(), r#"metadata `format`: expected "two-layer-net", found no such key"#);

    let mut meta = raw_metadata(3, 4, 2);
    meta.insert("layout".into(), "out_in".into());
    let err = load_f64(&raw_file(&tensors, Some(meta))).expect_err("layout");
    assert_eq!(err.to_string(), r#"metadata `layout`: expected "in_out", found "out_in""#);

    // Another version and keys of its own are fine.
    let mut meta = raw_metadata(3, 4, 2);
    meta.insert("version".into(), "9.9.9".into());
    meta.insert("note".into(), "epoch 12".into());
    assert!(load_f64(&raw_file(&tensors, Some(meta))).is_ok());
}

#[test]
fn non_finite_values_are_refused() {
    let mut tensors = raw_tensors(3, 4, 2);
    tensors[2].3[3 * 8..4 * 8].copy_from_slice(&f64::NAN.to_le_bytes());
    let err = load_f64(&raw_file(&tensors, Some(raw_metadata(3, 4, 2)))).expect_err("NaN");
    assert!(
        matches!(&err, CheckpointError::NonFinite { tensor, index: 3, value } if tensor == "w2" && value.is_nan())
    );
    assert_eq!(err.to_string(), "tensor `w2`: element 3 is NaN, expected a finite value");

    let net32 = sample_net::<f32>(3, 4, 2, 10);
    let mut bytes = to_bytes(&net32).expect("to_bytes");
    let b1_first = net32.b1()[0].to_le_bytes();
    let at = bytes.windows(4).position(|w| w == b1_first).expect("b1[0] in the file");
    bytes[at..at + 4].copy_from_slice(&f32::NEG_INFINITY.to_le_bytes());
    let err = from_bytes::<f32, Relu>(&bytes).expect_err("-inf");
    assert!(matches!(&err, CheckpointError::NonFinite { tensor, index: 0, .. } if tensor == "b1"), "{err:?}");

    // Nor is such a network saved.
    let dir = TempDir::new("nan");
    let mut net = sample_net::<f64>(3, 4, 2, 11);
    net.params_mut().as_slice_mut()[13] = f64::INFINITY; // b1[1]
    let err = save(&net, dir.join("nan.safetensors")).expect_err("save inf");
    assert!(matches!(&err, CheckpointError::NonFinite { tensor, index: 1, .. } if tensor == "b1"), "{err:?}");
    assert_eq!(dir.entries(), Vec::<String>::new(), "nothing written");
}

#[test]
fn zero_dimension_is_refused() {
    let mut meta = raw_metadata(0, 4, 2);
    meta.insert("d".into(), "0".into());
    let err = load_f64(&raw_file(&raw_tensors(0, 4, 2), Some(meta))).expect_err("d = 0");
    assert!(matches!(&err, CheckpointError::Net(Error::Empty { operand: "d", .. })), "{err:?}");
    assert!(err.source().is_some());
}

#[test]
fn unaligned_bytes_load() {
    let net = sample_net::<f64>(3, 4, 2, 12);
    let bytes = to_bytes(&net).expect("to_bytes");
    for shift in 1..8 {
        let mut buf = vec![0u8; shift];
        buf.extend_from_slice(&bytes);
        let back = load_f64(&buf[shift..]).expect("shifted");
        assert_eq!(bits(back.params().as_slice()), bits(net.params().as_slice()), "shift {shift}");
    }
}

#[test]
fn unreadable_path_is_an_io_error_naming_it() {
    let dir = TempDir::new("io");
    let path = dir.join("does-not-exist.safetensors");
    let err = load::<f64, Relu>(&path).expect_err("nonexistent");
    assert!(matches!(&err, CheckpointError::Io { path: p, .. } if p == &path), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert!(err.source().is_some());

    // A directory is not a checkpoint either.
    assert!(matches!(load::<f64, Relu>(&dir.0), Err(CheckpointError::Io { .. })));
}

/// Every prefix of `bytes` (length 0 to len − 1) is an error, and none panics.
fn assert_truncations_fail(bytes: &[u8]) {
    for cut in 0..bytes.len() {
        let result = catch_unwind(|| load_f64(&bytes[..cut]).map(|_| ()));
        match result {
            Ok(Err(_)) => {}
            Ok(Ok(())) => panic!("the first {cut} of {} bytes loaded", bytes.len()),
            Err(_) => panic!("the first {cut} of {} bytes panicked", bytes.len()),
        }
    }
}

#[test]
fn truncation_at_every_offset_is_an_error() {
    let bytes = to_bytes(&sample_net::<f64>(3, 4, 2, 13)).expect("to_bytes");
    assert_truncations_fail(&bytes);
    let bytes32 = to_bytes(&sample_net::<f32>(3, 4, 2, 13)).expect("to_bytes");
    for cut in 0..bytes32.len() {
        assert!(from_bytes::<f32, Relu>(&bytes32[..cut]).is_err(), "f32, cut at {cut}");
    }
}

#[test]
fn every_byte_flip_is_an_error_or_a_well_formed_net() {
    let bytes = to_bytes(&sample_net::<f64>(3, 4, 2, 14)).expect("to_bytes");
    let (mut ok, mut err) = (0, 0);
    for i in 0..bytes.len() {
        for mask in [0x01u8, 0x20, 0x80, 0xFF] {
            let mut flipped = bytes.clone();
            flipped[i] ^= mask;
            let result = catch_unwind(AssertUnwindSafe(|| load_f64(&flipped)));
            match result {
                Ok(Ok(net)) => {
                    assert_eq!(dims(&net), (3, 4, 2), "byte {i} ^ {mask:#x}");
                    assert!(net.params().as_slice().iter().all(|v| v.is_finite()), "byte {i} ^ {mask:#x}");
                    ok += 1;
                }
                Ok(Err(e)) => {
                    assert!(!e.to_string().is_empty());
                    err += 1;
                }
                Err(_) => panic!("byte {i} ^ {mask:#x} panicked"),
            }
        }
    }
    // Flips in the tensor data mostly give another valid network; flips in the header errors.
    assert!(ok > 0 && err > 0, "ok {ok}, err {err}");
}

#[test]
fn crafted_offsets_do_not_overflow() {
    // Eight U8 tensors of 2⁶¹ − 1 bytes each: the offsets sum to 2⁶⁴ − 8, which safetensors
    // 0.8.0 adds to the header length unchecked.
    let n: u64 = (1 << 61) - 1;
    let entries: Vec<String> = (0..8u64)
        .map(|i| {
            format!(r#""t{i}":{{"dtype":"U8","shape":[{n}],"data_offsets":[{},{}]}}"#, i * n, (i + 1) * n)
        })
        .collect();
    let header = format!("{{{}}}", entries.join(","));
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend_from_slice(header.as_bytes());
    let result = catch_unwind(|| load_f64(&bytes).map(|_| ()));
    assert!(matches!(result, Ok(Err(CheckpointError::Format(_)))), "{result:?}");
}

#[test]
fn save_replaces_an_existing_file() {
    let dir = TempDir::new("replace");
    let path = dir.join("net.safetensors");
    fs::write(&path, b"not a checkpoint").expect("write");
    let (a, b) = (sample_net::<f64>(3, 4, 2, 15), sample_net::<f64>(2, 5, 3, 16));
    save(&a, &path).expect("save a over junk");
    save(&b, &path).expect("save b over a");
    let back: TwoLayerNet<f64> = load(&path).expect("load");
    assert_eq!(dims(&back), (2, 5, 3));
    assert_eq!(bits(back.params().as_slice()), bits(b.params().as_slice()));
    assert_eq!(dir.entries(), ["net.safetensors"], "no temporary file left");
}

/// A save removes the temporary files of the same path that dead writers left (their lock is
/// free), and keeps those of a live writer (whose lock is held), and those of other paths.
#[test]
fn save_removes_the_temporary_files_of_dead_writers_only() {
    let dir = TempDir::new("stale");
    let path = dir.join("net.safetensors");
    let dead = [".net.safetensors.tmp-4000000-0", ".net.safetensors.tmp-4000000-1"];
    for name in dead {
        fs::write(dir.join(name), b"half a checkpoint").expect("write");
    }
    let live = fs::File::create(dir.join(".net.safetensors.tmp-4000001-0")).expect("create");
    live.lock().expect("lock");
    fs::write(dir.join(".other.safetensors.tmp-4000000-0"), b"another path's").expect("write");
    save(&sample_net::<f64>(3, 4, 2, 19), &path).expect("save");
    assert_eq!(
        dir.entries(),
        [".net.safetensors.tmp-4000001-0", ".other.safetensors.tmp-4000000-0", "net.safetensors"]
    );
    drop(live);
    save(&sample_net::<f64>(3, 4, 2, 20), &path).expect("save");
    assert_eq!(dir.entries(), [".other.safetensors.tmp-4000000-0", "net.safetensors"]);
}

#[cfg(unix)]
#[test]
fn saved_file_has_the_permissions_file_create_gives() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("mode");
    let reference = dir.join("reference");
    fs::File::create(&reference).expect("create");
    let path = dir.join("net.safetensors");
    save(&sample_net::<f32>(2, 2, 2, 17), &path).expect("save");
    let mode = |p: &Path| fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&path), mode(&reference));
}

#[test]
fn save_into_a_missing_directory_fails_and_creates_nothing() {
    let dir = TempDir::new("nodir");
    let missing = dir.join("missing");
    let path = missing.join("net.safetensors");
    let err = save(&sample_net::<f64>(3, 4, 2, 18), &path).expect_err("missing dir");
    assert!(matches!(&err, CheckpointError::Io { path: p, .. } if p == &path), "{err:?}");
    assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    assert!(!missing.exists());
    assert_eq!(dir.entries(), Vec::<String>::new());
}

#[test]
fn save_over_a_directory_fails_and_leaves_no_temporary_file() {
    let dir = TempDir::new("isdir");
    let path = dir.join("net.safetensors");
    fs::create_dir(&path).expect("mkdir");
    let err = save(&sample_net::<f64>(3, 4, 2, 19), &path).expect_err("target is a directory");
    assert!(matches!(&err, CheckpointError::Io { .. }), "{err:?}");
    assert_eq!(dir.entries(), ["net.safetensors"]);
    assert!(path.is_dir());
}

#[test]
fn concurrent_saves_leave_one_complete_checkpoint() {
    let dir = TempDir::new("race");
    let path = dir.join("net.safetensors");
    let nets: Vec<TwoLayerNet<f64>> = (0..3).map(|i| sample_net::<f64>(3, 4, 2, 20 + i)).collect();
    std::thread::scope(|s| {
        for net in &nets {
            s.spawn(|| {
                for _ in 0..4 {
                    save(net, &path).expect("save");
                }
            });
        }
    });
    let back: TwoLayerNet<f64> = load(&path).expect("load");
    assert!(nets.iter().any(|n| bits(n.params().as_slice()) == bits(back.params().as_slice())));
    assert_eq!(dir.entries(), ["net.safetensors"]);
}

/// The first Python that imports numpy and safetensors: `$TWO_LAYER_NET_PYTHON`, then
/// `python3`.
fn find_python() -> Option<OsString> {
    let candidates = std::env::var_os("TWO_LAYER_NET_PYTHON").into_iter().chain([OsString::from("python3")]);
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import numpy, safetensors"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// `a` as a JSON array of arrays, each value written exactly (shortest round-trip form).
fn json_matrix<F: Scalar>(a: &Array2<F>) -> String {
    let rows: Vec<String> = a
        .rows()
        .into_iter()
        .map(|r| {
            format!("[{}]", r.iter().map(|v| format!("{:?}", v.as_f64())).collect::<Vec<_>>().join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// Saves `net` as `{name}.safetensors` and, next to it, `{name}.json` with a batch `x` and
/// `ŷ = net(x)` (the last entry of `ŷ` moved by `tamper`); returns the two paths.
fn interop_case<F: Scalar, A: Activation>(
    dir: &TempDir,
    name: &str,
    mut net: TwoLayerNet<F, A>,
    tamper: f64,
) -> [PathBuf; 2] {
    let ckpt = dir.join(&format!("{name}.safetensors"));
    let json = dir.join(&format!("{name}.json"));
    save(&net, &ckpt).expect("save");
    let x = batch::<F>(net.input_dim(), 0.25);
    let mut yhat = net.forward(x.view()).expect("forward").to_owned();
    let last = yhat.last_mut().expect("nonempty");
    *last = F::cast(last.as_f64() + tamper);
    let expect = format!(
        "{{\"dtype\": \"{}\", \"activation\": \"{}\", \"x\": {}, \"yhat\": {}}}\n",
        F::NAME,
        net.activation().describe(),
        json_matrix(&x),
        json_matrix(&yhat)
    );
    fs::write(&json, expect).expect("write json");
    [ckpt, json]
}

/// A training state (a network, Adam's state after two steps, a tensor and metadata of the
/// user's) saved as `{name}.safetensors`, and next to it `{name}.json` listing every tensor it
/// must hold (numpy dtype, shape, values) and metadata entries it must have (one of its
/// values off by one ulp when `tamper`).
fn interop_state_case(dir: &TempDir, name: &str, tamper: bool) -> [PathBuf; 2] {
    let mut net = sample_net::<f32>(3, 4, 2, 34);
    let mut adam = Adam::new(1e-2);
    let x = batch::<f32>(3, 0.5);
    let y = Array2::from_shape_fn((x.nrows(), 2), |(i, j)| (i + j) as f32 * 0.25);
    for _ in 0..2 {
        net.train_step_with(x.view(), y.view(), &Mse, &mut adam).expect("step");
    }
    let mut state = TrainingState::new();
    state.set_net("net", &net).expect("set_net");
    state.set_optimizer("opt", &adam).expect("set_optimizer");
    state.set_tensor("scaler.mean", &[3], &[0.5, -1.25, 3.0]).expect("set_tensor");
    state.metadata_mut().insert("run".into(), "interop".into());
    let path = dir.join(&format!("{name}.safetensors"));
    state.save(&path).expect("save the state");

    let f32s = |v: &[f32]| v.iter().map(|x| format!("{:?}", f64::from(*x))).collect::<Vec<_>>().join(", ");
    let mut tensors = Vec::new();
    let parts = [("w1", "[3, 4]", net.w1()), ("b1", "[4]", net.b1().insert_axis(Axis(0)))];
    let parts =
        parts.into_iter().chain([("w2", "[4, 2]", net.w2()), ("b2", "[2]", net.b2().insert_axis(Axis(0)))]);
    for (t, shape, v) in parts {
        let v: Vec<f32> = v.iter().copied().collect();
        tensors.push(format!("\"net.{t}\": [\"float32\", {shape}, [{}]]", f32s(&v)));
    }
    let opt = adam.state();
    for (i, slot) in opt.slots.iter().enumerate() {
        tensors.push(format!("\"opt.{i}.step\": [\"int64\", [], [{}]]", slot.step));
        for (buffer, v) in opt.buffer_names.iter().zip(&slot.buffers) {
            let mut v = v.clone();
            if tamper {
                v[0] = f32::from_bits(v[0].to_bits() + 1);
            }
            let v = &v;
            tensors.push(format!("\"opt.{i}.{buffer}\": [\"float32\", [{}], [{}]]", v.len(), f32s(v)));
        }
    }
    tensors.push("\"scaler.mean\": [\"float32\", [3], [0.5, -1.25, 3.0]]".into());
    let metadata = [
        ("format", "two-layer-net/training-state"),
        ("dtype", "f32"),
        ("net.d", "3"),
        ("net.activation", "relu"),
        ("opt.kind", "adam"),
        ("opt.buffers", "exp_avg,exp_avg_sq"),
        ("user.run", "interop"),
    ];
    let metadata: Vec<String> = metadata.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
    let json = dir.join(&format!("{name}.json"));
    let expected = format!(
        "{{\"kind\": \"training-state\", \"tensors\": {{{}}}, \"metadata\": {{{}}}}}\n",
        tensors.join(", "),
        metadata.join(", ")
    );
    fs::write(&json, expected).expect("write json");
    [path, json]
}

/// The README's promise that Python reads the files: checkpoints through numpy (and torch when
/// it is installed), a training state through `safetensors.numpy`. Needs a Python with numpy
/// and safetensors; `.ci/run` provides one, and under CI (`CI` set) its absence fails the test.
#[test]
fn python_reads_the_checkpoint() {
    let Some(python) = find_python() else {
        let what = "no Python with numpy and safetensors ($TWO_LAYER_NET_PYTHON or python3)";
        assert!(std::env::var_os("CI").is_none(), "{what}: CI must provide one (.ci/run makes a venv)");
        eprintln!("note: {what}; interop not checked (under CI this fails)");
        return;
    };
    let dir = TempDir::new("interop");
    let cases = [
        interop_case(&dir, "relu64", sample_net::<f64>(3, 5, 2, 30), 0.0),
        interop_case(
            &dir,
            "leaky32",
            sample_net::<f32>(4, 6, 3, 31).with_activation(LeakyRelu { slope: 0.2 }),
            0.0,
        ),
        interop_case(&dir, "tanh64", sample_net::<f64>(2, 3, 1, 32).with_activation(Tanh), 0.0),
        // The script must notice a wrong output: this pair fails, the others pass.
        interop_case(&dir, "tampered", sample_net::<f64>(3, 5, 2, 33), 1e-6),
        interop_state_case(&dir, "state32", false),
        interop_state_case(&dir, "tampered_state", true),
    ];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/check_interop.py");
    // One run for all cases: importing torch takes seconds.
    let out = Command::new(&python).arg(&script).args(cases.iter().flatten()).output().expect("run python");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("{stdout}{stderr}");
    assert_eq!(out.status.code(), Some(1), "exit status: only the tampered cases fail");
    for name in ["relu64", "leaky32", "tanh64", "state32"] {
        assert!(stdout.contains(&format!("{name}.safetensors: ok")), "{name} did not pass");
    }
    assert!(
        stderr.contains("tampered.safetensors: FAILED: numpy forward"),
        "the tampered case was not caught"
    );
    assert!(
        stderr.contains("tampered_state.safetensors: FAILED: opt.0.exp_avg: values differ"),
        "the tampered state was not caught"
    );
    assert_eq!(stderr.matches("FAILED").count(), 2);
}
