//! Standardization fitted on one set and applied to another, and kept in a training state.

use two_layer_net::ndarray::{Array2, array};
use two_layer_net::{CheckpointError, Error, Standardizer, TrainingState};

#[test]
fn standardizer_matches_scikit_learns_scaler() {
    // sklearn.preprocessing.StandardScaler().fit([[1, 2, 5], [3, 6, 5], [5, 7, 5]]):
    // mean_ = [3, 5, 5], scale_ = [1.63299316, 2.1602469, 1.0]
    let x = array![[1.0, 2.0, 5.0], [3.0, 6.0, 5.0], [5.0, 7.0, 5.0]];
    let s = Standardizer::fit(x.view()).unwrap();
    assert_eq!(s.mean().to_vec(), [3.0, 5.0, 5.0]);
    let expected_std = [(8.0f64 / 3.0).sqrt(), (14.0f64 / 3.0).sqrt(), 1.0];
    for (a, e) in s.std().iter().zip(expected_std) {
        assert!((a - e).abs() < 1e-15);
    }
    let z = s.transform(x.view()).unwrap();
    for col in z.columns() {
        assert!(col.sum().abs() < 1e-12);
    }
    assert!(z.column(2).iter().all(|&v| v == 0.0), "a constant column maps to 0");
    let other = array![[3.0, 5.0, 6.0]];
    assert_eq!(s.transform(other.view()).unwrap(), array![[0.0, 0.0, 1.0]]);
    let mut in_place = other.clone();
    s.transform_in_place(in_place.view_mut()).unwrap();
    assert_eq!(in_place, array![[0.0, 0.0, 1.0]]);
}

#[test]
fn bad_input_is_refused() {
    assert!(matches!(Standardizer::<f64>::fit(Array2::zeros((0, 3)).view()), Err(Error::Empty { .. })));
    assert!(matches!(Standardizer::fit(array![[1.0, f64::NAN]].view()), Err(Error::NonFinite { what: "x" })));
    let s = Standardizer::fit(array![[1.0f32, 2.0]].view()).unwrap();
    assert_eq!(
        s.transform(array![[1.0f32, 2.0, 3.0]].view()).unwrap_err(),
        Error::ShapeMismatch { operand: "x", expected: [1, 2], actual: [1, 3] }
    );
}

#[test]
fn a_standardizer_round_trips_through_a_training_state() {
    let s = Standardizer::fit(array![[1.0f32, 2.0], [4.0, -2.0], [0.5, 0.0]].view()).unwrap();
    let mut state = TrainingState::new();
    s.save(&mut state, "scaler").unwrap();
    let state = TrainingState::<f32>::from_bytes(&state.to_bytes().unwrap()).unwrap();
    assert_eq!(Standardizer::restore(&state, "scaler").unwrap(), s);
    assert!(matches!(Standardizer::restore(&state, "other"), Err(CheckpointError::Entry { .. })));
}
