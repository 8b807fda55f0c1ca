//! The training-state file: what it holds, and that another shape, activation, optimizer
//! kind or dtype, or damaged bytes, are typed errors that leave what they were restored into
//! unchanged. (That a run resumes from it bit for bit is `tests/resume.rs`.)

mod common;

use common::bits;
use two_layer_net::ndarray::array;
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{Adam, CheckpointError, Momentum, Mse, Optimizer, Sgd, Tanh, TrainingState, TwoLayerNet};

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
