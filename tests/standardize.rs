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

/// A column constant up to rounding is constant, as scikit-learn's `_is_constant_feature`
/// decides: ten rows of 0.1 had `std = 1.39e-17` and transformed to 1.0, not 0.
#[test]
fn a_column_constant_up_to_rounding_maps_to_zero() {
    let values: [f64; 10] = [0.1, 0.3, 0.7, 1.1, 2.2, 1e-5, 123.456, -0.6, 1.0 / 3.0, 1e10 / 7.0];
    let x = Array2::from_shape_fn((10, values.len()), |(_, j)| values[j]);
    let s = Standardizer::fit(x.view()).unwrap();
    assert!(s.std().iter().all(|&v| v == 1.0), "{:?}", s.std());
    assert!(s.transform(x.view()).unwrap().iter().all(|&v| v.abs() < 1e-12));
    // A small but real spread is not constant.
    let spread = array![[1.0f64, 0.0], [1.0 + 1e-9, 0.0]];
    assert!((Standardizer::fit(spread.view()).unwrap().std()[0] - 5e-10).abs() < 1e-15);
}

/// An f32 column whose deviation is subnormal in f32 (`[0, 1e-45]`) is constant: `std` was 0
/// in f32, `transform` gave NaN and ∞, and `restore` refused the scaler `save` wrote, with
/// "expected shape [2], found [2]". Whatever `fit` gives, `save` writes and `restore` reads.
#[test]
fn a_deviation_below_the_normal_range_is_constant_and_round_trips() {
    let x = array![[0.0f32, 1.0], [1e-45, 2.0], [0.0, 3.0], [1e-45, 4.0]];
    let s = Standardizer::fit(x.view()).unwrap();
    assert_eq!(s.std()[0], 1.0);
    assert!(s.transform(x.view()).unwrap().iter().all(|v| v.is_finite()));
    let mut state = TrainingState::new();
    s.save(&mut state, "scaler").unwrap();
    let state = TrainingState::<f32>::from_bytes(&state.to_bytes().unwrap()).unwrap();
    assert_eq!(Standardizer::restore(&state, "scaler").unwrap(), s);

    // A deviation of 0 written by hand is refused, naming it.
    let mut state = TrainingState::<f32>::new();
    state.set_tensor("bad.mean", &[2], &[0.0, 0.0]).unwrap();
    state.set_tensor("bad.std", &[2], &[1.0, 0.0]).unwrap();
    let e = Standardizer::restore(&state, "bad").unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Entry { name, found: Some(f), .. } if name == "bad.std" && f == "0"),
        "{e:?}"
    );
    state.set_tensor("bad.std", &[1, 2], &[1.0, 1.0]).unwrap();
    let e = Standardizer::restore(&state, "bad").unwrap_err();
    assert!(
        matches!(&e, CheckpointError::Shape { expected, found, .. } if expected == &[2] && found == &[1, 2]),
        "{e:?}"
    );
}
