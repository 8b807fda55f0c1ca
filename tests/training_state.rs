//! The training-state file: what it holds, and that another shape, activation, optimizer
//! kind or dtype, or damaged bytes, are typed errors that leave what they were restored into
//! unchanged. (That a run resumes from it bit for bit is `tests/resume.rs`.)

mod common;

use common::bits;
use two_layer_net::ndarray::array;
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Adam, CheckpointError, Error, Momentum, Mse, Optimizer, OptimizerState, Sgd, Slot, SlotState, Tanh,
    TrainingState, TwoLayerNet,
};

/// A 3→4→2 net after two Adam steps, the Adam, and the state holding both and a user tensor.
fn trained() -> (TwoLayerNet<f64>, Adam<f64>, TrainingState<f64>) {
    let mut net = TwoLayerNet::<f64>::new(3, 4, 2, &mut StdRng::seed_from_u64(0)).unwrap();
    let (x, y) = (array![[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]], array![[1.0, 0.0], [0.0, 1.0]]);
    let mut adam = Adam::new(1e-2);
    for _ in 0..2 {
        net.train_step_with(x.view(), y.view(), &Mse, &mut adam).unwrap();
    }
    let mut state = TrainingState::new();
    state.set_net("net", &net).unwrap();
    state.set_optimizer("opt", &adam).unwrap();
    state.set_tensor("scale", &[2, 1], &[0.5, 2.0]).unwrap();
    state.loop_state_mut().insert("epoch".into(), "3".into());
    state.metadata_mut().insert("classes".into(), "cat,dog".into());
    (net, adam, state)
}

#[test]
fn a_state_round_trips_through_bytes_and_files() {
    let (net, adam, state) = trained();
    let bytes = state.to_bytes().unwrap();
    let back = TrainingState::<f64>::from_bytes(&bytes).unwrap();
    assert_eq!(back, state);
    // Deterministic: the same state gives the same bytes, also after a round trip.
    assert_eq!(state.to_bytes().unwrap(), bytes);
    assert_eq!(back.to_bytes().unwrap(), bytes);
    assert_eq!(back.tensor("scale"), Some((&[2usize, 1][..], &[0.5, 2.0][..])));
    assert_eq!(back.tensor("opt.0.exp_avg").map(|(s, _)| s.to_vec()), Some(vec![net.params().len()]));
    assert_eq!(back.loop_state()["epoch"], "3");
    assert_eq!(back.metadata()["classes"], "cat,dog");

    let dir = std::env::temp_dir().join(format!("two-layer-net-state-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("state.safetensors");
    state.save(&path).unwrap();
    let loaded = TrainingState::<f64>::load(&path).unwrap();
    let mut net2 = TwoLayerNet::<f64>::new(3, 4, 2, &mut StdRng::seed_from_u64(9)).unwrap();
    let mut adam2 = Adam::new(0.5);
    loaded.restore_net("net", &mut net2).unwrap();
    loaded.restore_optimizer("opt", &mut adam2).unwrap();
    assert_eq!(bits(net2.params().as_slice()), bits(net.params().as_slice()));
    assert_eq!(adam2.state(), adam.state());
    let names: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "only the state file is left: {names:?}");
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(matches!(state.save(dir.join("state.safetensors")), Err(CheckpointError::Io { .. })));
}

#[test]
fn restoring_into_what_does_not_fit_is_a_typed_error_that_changes_nothing() {
    let (_, _, state) = trained();
    let entry = |r: Result<(), CheckpointError>| match r {
        Err(CheckpointError::Entry { name, .. }) => name,
        other => panic!("expected an Entry error, got {other:?}"),
    };

    let mut wide = TwoLayerNet::<f64>::new(3, 5, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    let before = wide.params().clone();
    assert_eq!(entry(state.restore_net("net", &mut wide)), "net.h");
    assert_eq!(wide.params(), &before);

    let mut tanh = TwoLayerNet::<f64, Tanh>::new(3, 4, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    let before = tanh.params().clone();
    assert_eq!(entry(state.restore_net("net", &mut tanh)), "net.activation");
    assert_eq!(tanh.params(), &before);

    let mut right = TwoLayerNet::<f64>::new(3, 4, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    assert_eq!(entry(state.restore_net("other", &mut right)), "other.d");

    let mut momentum = Momentum::new(0.1, 0.9);
    assert_eq!(entry(state.restore_optimizer("opt", &mut momentum)), "opt.kind");
    assert_eq!(momentum.state(), Momentum::new(0.1, 0.9).state());
    assert_eq!(entry(state.restore_optimizer("nope", &mut Sgd::new(0.1))), "nope.kind");

    let mut out = [0.0; 2];
    assert!(matches!(state.restore_tensor("scale", &[1, 2], &mut out), Err(CheckpointError::Shape { .. })));
    assert_eq!(entry(state.restore_tensor("missing", &[2], &mut out)), "missing");
    assert_eq!(out, [0.0; 2]);
}

#[test]
fn another_dtype_or_damaged_bytes_are_refused() {
    let (_, _, state) = trained();
    let bytes = state.to_bytes().unwrap();
    assert!(matches!(
        TrainingState::<f32>::from_bytes(&bytes),
        Err(CheckpointError::Metadata { key: "dtype", .. })
    ));
    // A parameter checkpoint is not a training state.
    let net = TwoLayerNet::<f64>::new(3, 4, 2, &mut StdRng::seed_from_u64(0)).unwrap();
    let checkpoint = two_layer_net::to_bytes(&net).unwrap();
    assert!(matches!(
        TrainingState::<f64>::from_bytes(&checkpoint),
        Err(CheckpointError::Metadata { key: "format", .. })
    ));
    // Every truncation, and a byte flipped anywhere, is an error or a state; never a panic.
    for len in 0..bytes.len() {
        assert!(TrainingState::<f64>::from_bytes(&bytes[..len]).is_err(), "truncated to {len}");
    }
    for i in (0..bytes.len()).step_by(7) {
        let mut flipped = bytes.clone();
        flipped[i] ^= 0x5a;
        let _ = TrainingState::<f64>::from_bytes(&flipped);
    }
}

#[test]
fn a_non_finite_value_is_neither_saved_nor_loaded() {
    let mut state = TrainingState::<f32>::new();
    assert!(matches!(
        state.set_tensor("t", &[2], &[1.0, f32::NAN]),
        Err(CheckpointError::NonFinite { index: 1, .. })
    ));
    assert!(matches!(state.set_tensor("t", &[3], &[1.0, 2.0]), Err(CheckpointError::Shape { .. })));
    state.set_tensor("t", &[2], &[1.0, 2.0]).unwrap();
    let mut bytes = state.to_bytes().unwrap();
    let at = bytes.len() - 4;
    bytes[at..].copy_from_slice(&f32::INFINITY.to_le_bytes());
    assert!(matches!(TrainingState::<f32>::from_bytes(&bytes), Err(CheckpointError::NonFinite { .. })));
}

/// An optimizer whose state is whatever the test says: names and step counts no built-in
/// optimizer has.
struct Fixed(OptimizerState<f64>);

impl Optimizer<f64> for Fixed {
    fn step(&mut self, _: &mut [Slot<'_, f64>]) -> Result<(), Error> {
        Ok(())
    }
    fn learning_rate(&self) -> f64 {
        0.0
    }
    fn set_learning_rate(&mut self, _: f64) {}
    fn state(&self) -> OptimizerState<f64> {
        self.0.clone()
    }
    fn set_state(&mut self, state: OptimizerState<f64>) -> Result<(), Error> {
        self.0 = state;
        Ok(())
    }
}

fn fixed(buffers: &[&str], hyper: &[(&str, f64)], step: u64) -> Fixed {
    Fixed(OptimizerState {
        kind: "fixed".into(),
        hyperparameters: hyper.iter().map(|&(n, v)| (n.to_owned(), v)).collect(),
        buffer_names: buffers.iter().map(|&b| b.to_owned()).collect(),
        slots: vec![SlotState { step, buffers: vec![vec![1.0]; buffers.len()] }],
    })
}

/// Every setter refuses what the file could not hold or would read back as something else,
/// and leaves the state as it was: names of the loop's and the user's sections, the header's
/// own key, a float tensor and a step count of one name, names the comma-joined lists cannot
/// hold, step counts beyond I64, shapes whose product overflows (it wrapped to 0), and
/// hyperparameters that are not finite.
#[test]
fn the_setters_refuse_what_the_file_cannot_hold() {
    let (net, adam, state) = trained();
    let entry = |r: Result<(), CheckpointError>, what: &str| {
        assert!(matches!(r, Err(CheckpointError::Entry { .. })), "{what}: {r:?}");
    };
    let mut s = state.clone();
    for name in ["loop", "user", "loop.a", "user.b"] {
        entry(s.set_net(name, &net), name);
        entry(s.set_optimizer(name, &adam), name);
    }
    entry(s.set_tensor("__metadata__", &[1], &[1.0]), "__metadata__");
    entry(s.set_tensor("opt.0.step", &[1], &[1.0]), "a step count's name");
    s.set_tensor("fixed.0.step", &[1], &[1.0]).unwrap();
    entry(s.set_optimizer("fixed", &fixed(&["m"], &[], 1)), "a tensor's name as a step count");
    s = state.clone();
    for buffers in [&["a,b"][..], &[""], &["step"]] {
        entry(s.set_optimizer("f", &fixed(buffers, &[], 1)), &format!("{buffers:?}"));
    }
    entry(s.set_optimizer("f", &fixed(&[], &[("x,y", 1.0)], 1)), "a hyperparameter with a comma");
    entry(s.set_optimizer("f", &fixed(&["m", "m"], &[], 1)), "a buffer name twice");
    entry(s.set_optimizer("f", &fixed(&[], &[("lr", 1.0), ("lr", 2.0)], 1)), "a hyperparameter twice");
    entry(s.set_optimizer("f", &fixed(&["m"], &[], 1 << 63)), "a step beyond I64");
    for v in [f64::NAN, f64::INFINITY] {
        entry(s.set_optimizer("f", &fixed(&["m"], &[("lr", v)], 1)), "a non-finite hyperparameter");
    }
    let r = s.set_tensor("t", &[1 << 63, 2], &[]);
    assert!(matches!(r, Err(CheckpointError::Shape { .. })), "{r:?}");
    assert_eq!(s, state, "nothing was recorded");
    // What the setters do take reads back.
    s.set_optimizer("f", &fixed(&["m"], &[("lr", 0.5)], (1 << 63) - 1)).unwrap();
    let back = TrainingState::<f64>::from_bytes(&s.to_bytes().unwrap()).unwrap();
    assert_eq!(back, s);
    let mut f = fixed(&[], &[], 0);
    back.restore_optimizer("f", &mut f).unwrap();
    assert_eq!(f.0, fixed(&["m"], &[("lr", 0.5)], (1 << 63) - 1).0);
}

/// `to_bytes` and `save` refuse a state that safetensors readers would refuse, rather than
/// write a file `from_bytes` cannot read: a header over the 100 MB limit, and a dimension of
/// an empty tensor beyond the file's length.
#[test]
fn what_cannot_be_read_back_is_not_written() {
    let (_, _, state) = trained();
    let mut big = state.clone();
    big.metadata_mut().insert("blob".into(), "a".repeat(100_000_001));
    let r = big.to_bytes();
    assert!(matches!(r, Err(CheckpointError::Unreadable(_))), "{:?}", r.map(|b| b.len()));
    let dir = std::env::temp_dir().join(format!("two-layer-net-unreadable-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    assert!(matches!(big.save(dir.join("s")), Err(CheckpointError::Unreadable(_))));
    assert!(!dir.join("s").exists());
    std::fs::remove_dir_all(&dir).unwrap();
    drop(big);

    let mut empty = state.clone();
    empty.set_tensor("none", &[0, 1 << 40], &[]).unwrap();
    assert!(matches!(empty.to_bytes(), Err(CheckpointError::Unreadable(_))));
    empty.set_tensor("none", &[0, 3], &[]).unwrap();
    assert_eq!(TrainingState::<f64>::from_bytes(&empty.to_bytes().unwrap()).unwrap(), empty);
}

/// A hyperparameter finite in f64 but not in f32 (`lr = 1e39`) is refused when an f32 state
/// is restored, rather than coming through as ∞.
#[test]
fn a_hyperparameter_beyond_f32_is_refused_by_an_f32_state() {
    let mut net = TwoLayerNet::<f32>::new(2, 3, 1, &mut StdRng::seed_from_u64(0)).unwrap();
    let mut adam = Adam::<f32>::new(1e-2);
    let (x, y) = (array![[1.0f32, 2.0]], array![[0.5f32]]);
    net.train_step_with(x.view(), y.view(), &Mse, &mut adam).unwrap();
    let mut state = TrainingState::<f32>::new();
    state.set_optimizer("opt", &adam).unwrap();
    let bytes = state.to_bytes().unwrap();
    let lr = format!("{:?}", f64::from(1e-2f32));
    for huge in ["1e39", "1e300"] {
        let edited = edit_header(
            &bytes,
            &format!("\"opt.hyper.lr\":\"{lr}\""),
            &format!("\"opt.hyper.lr\":\"{huge}\""),
        );
        let back = TrainingState::<f32>::from_bytes(&edited).unwrap();
        let mut fresh = Adam::<f32>::new(0.5);
        let r = back.restore_optimizer("opt", &mut fresh);
        assert!(matches!(&r, Err(CheckpointError::Entry { name, .. }) if name == "opt.hyper.lr"), "{r:?}");
        assert_eq!(fresh.lr, 0.5);
    }
}

/// `bytes` (a safetensors file) with `from` replaced by `to` in its header.
fn edit_header(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&bytes[8..8 + n]).unwrap();
    assert!(header.contains(from), "{from} not in {header}");
    let mut header = header.trim_end().replace(from, to);
    while !header.len().is_multiple_of(8) {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&bytes[8 + n..]);
    out
}

/// One call of the training state's writing API, as the property test draws it.
#[derive(Clone, Debug)]
enum Op {
    Tensor(String, Vec<usize>, Vec<f64>),
    Net(String, [usize; 3], u64),
    Optimizer(String, Vec<String>, Vec<(String, f64)>, Vec<(u64, usize)>),
    Loop(String, String),
    Metadata(String, String),
}

mod ops {
    use proptest::prelude::*;

    use super::Op;

    /// Names a user may pick, the reserved and awkward ones among them.
    pub fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            3 => "[a-c.]{1,4}",
            1 => "[a-c0-9.,\"\\\\é\u{0}]{0,6}",
            1 => proptest::sample::select(vec!["__metadata__", "loop", "user", "user.x", "loop.best_params", "opt.0.step", "step", ""]).prop_map(str::to_owned),
        ]
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![20 => any::<f64>().prop_filter("finite", |v| v.is_finite()), 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)]
    }

    fn step() -> impl Strategy<Value = u64> {
        prop_oneof![4 => 0..1000u64, 1 => Just(i64::MAX as u64), 1 => Just(1 << 63), 1 => Just(u64::MAX)]
    }

    fn tensor() -> impl Strategy<Value = Op> {
        (name(), proptest::collection::vec(0..4usize, 0..4)).prop_flat_map(|(name, shape)| {
            let n: usize = shape.iter().product();
            // Sometimes one value too many: refused.
            (Just(name), Just(shape), proptest::collection::vec(value(), n..=n + 1))
                .prop_map(|(name, shape, values)| Op::Tensor(name, shape, values))
        })
    }

    /// An `Op::Optimizer`: buffer and hyperparameter names, and per slot a step count and a
    /// buffer length.
    pub fn optimizer() -> impl Strategy<Value = Op> {
        (
            name(),
            proptest::collection::vec(name(), 0..3),
            proptest::collection::vec((name(), value()), 0..3),
            proptest::collection::vec((step(), 0..3usize), 0..3),
        )
            .prop_map(|(n, b, h, s)| Op::Optimizer(n, b, h, s))
    }

    pub fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => tensor(),
            2 => (name(), [1..4usize, 1..4, 1..4], any::<u64>()).prop_map(|(n, dims, seed)| Op::Net(n, dims, seed)),
            2 => optimizer(),
            1 => (".{0,6}", ".{0,6}").prop_map(|(k, v)| Op::Loop(k, v)),
            1 => (".{0,6}", ".{0,6}").prop_map(|(k, v)| Op::Metadata(k, v)),
        ]
    }
}

use proptest::prelude::ProptestConfig;
use proptest::test_runner::TestCaseError;

/// The optimizer an `Op::Optimizer` records (an empty one for other ops): each slot's
/// buffers differ, from each other and from other slots'.
fn optimizer_of(op: &Op) -> Fixed {
    let Op::Optimizer(_, buffers, hyper, slots) = op else { return fixed(&[], &[], 0) };
    let slots = slots
        .iter()
        .enumerate()
        .map(|(i, &(step, len))| SlotState {
            step,
            buffers: (0..buffers.len()).map(|b| vec![(10 * i + b) as f64; len]).collect(),
        })
        .collect();
    Fixed(OptimizerState {
        kind: "fixed".into(),
        hyperparameters: hyper.clone(),
        buffer_names: buffers.clone(),
        slots,
    })
}

/// `op` applied to `state`.
fn apply(state: &mut TrainingState<f64>, op: &Op) -> Result<(), CheckpointError> {
    match op {
        Op::Tensor(name, shape, values) => state.set_tensor(name, shape, values),
        Op::Net(name, [d, h, k], seed) => {
            let net = TwoLayerNet::<f64>::new(*d, *h, *k, &mut StdRng::seed_from_u64(*seed)).unwrap();
            state.set_net(name, &net)
        }
        Op::Optimizer(name, ..) => state.set_optimizer(name, &optimizer_of(op)),
        Op::Loop(key, value) => {
            state.loop_state_mut().insert(key.clone(), value.clone());
            Ok(())
        }
        Op::Metadata(key, value) => {
            state.metadata_mut().insert(key.clone(), value.clone());
            Ok(())
        }
    }
}

proptest::proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(256) })]

    /// Whatever the training state's API takes, the file holds: any sequence of setter calls
    /// (reserved, empty and awkward names, overflowing and mismatched shapes, NaN, steps
    /// beyond I64 among them) leaves a state that `to_bytes` writes and `from_bytes` reads
    /// back equal, and every refused call leaves the state as it was.
    #[test]
    fn every_state_the_api_builds_reads_back_equal(ops in proptest::collection::vec(ops::op(), 0..8)) {
        let mut state = TrainingState::<f64>::new();
        for op in &ops {
            let before = state.clone();
            if apply(&mut state, op).is_err() {
                proptest::prop_assert_eq!(&state, &before, "a refused {:?} changed the state", op);
            }
        }
        let bytes = state.to_bytes().map_err(|e| TestCaseError::fail(format!("not written: {e}")))?;
        let back = TrainingState::<f64>::from_bytes(&bytes)
            .map_err(|e| TestCaseError::fail(format!("written but not read: {e}")))?;
        proptest::prop_assert_eq!(&back, &state);
    }

    /// An optimizer state the setter takes is restored from the file as it was given:
    /// names, hyperparameters, step counts and buffers.
    #[test]
    fn every_optimizer_state_the_api_takes_is_restored(op in ops::optimizer()) {
        let mut state = TrainingState::<f64>::new();
        let Op::Optimizer(name, ..) = &op else { unreachable!() };
        if apply(&mut state, &op).is_ok() {
            let back = TrainingState::<f64>::from_bytes(&state.to_bytes().unwrap()).unwrap();
            let mut got = fixed(&[], &[], 0);
            back.restore_optimizer(name, &mut got).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            proptest::prop_assert_eq!(got.0, optimizer_of(&op).0);
        }
    }
}
