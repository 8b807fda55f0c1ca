//! Standardization fitted on one set and applied to another, and kept in a training state.

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
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

/// Values near the type's limit: four rows of 1e308 had a mean of ∞ (the sum overflowed)
/// and transformed to −∞; deviations on both sides of the mean overflowed `x − mean`.
#[test]
fn values_near_the_limit_give_finite_statistics() {
    let x = Array2::from_elem((4, 1), 1e308);
    let s = Standardizer::fit(x.view()).unwrap();
    assert_eq!((s.mean()[0], s.std()[0]), (1e308, 1.0));
    assert_eq!(s.transform(x.view()).unwrap(), Array2::<f64>::zeros((4, 1)));
    let x = array![[1.7e308], [-1.7e308], [-1.7e308]];
    let s = Standardizer::fit(x.view()).unwrap();
    let z = s.transform(x.view()).unwrap();
    // ±1.7e308 around a mean of −1.7e308/3: z = (2, −1, −1)/√2.
    for (z, e) in z.iter().zip([2.0, -1.0, -1.0]) {
        assert!((z - e / 2f64.sqrt()).abs() < 1e-12, "{z}");
    }
}

/// Whatever `fit` gives, `save` writes and `restore` reads back equal, and `transform` of the
/// data it was fitted on is finite: over columns of any finite values, constant, nearly
/// constant and subnormal ones among them, in f32 and f64.
fn round_trips<F: two_layer_net::Scalar>(rows: usize, columns: &[Vec<f64>]) -> Result<(), TestCaseError> {
    let x = Array2::from_shape_fn((rows, columns.len()), |(i, j)| F::cast(columns[j][i % columns[j].len()]));
    let s = Standardizer::fit(x.view()).map_err(|e| TestCaseError::fail(format!("fit: {e}")))?;
    let z = s.transform(x.view()).unwrap();
    prop_assert!(z.iter().all(|v| v.is_finite()), "transform gave {:?} with std {:?}", z, s.std());
    let mut state = TrainingState::<F>::new();
    s.save(&mut state, "scaler").map_err(|e| TestCaseError::fail(format!("save: {e}")))?;
    let back = TrainingState::<F>::from_bytes(&state.to_bytes().unwrap()).unwrap();
    let restored =
        Standardizer::restore(&back, "scaler").map_err(|e| TestCaseError::fail(format!("restore: {e}")))?;
    prop_assert_eq!(restored, s);
    Ok(())
}

/// A column's values: a few of any finite magnitude, or one value repeated, or subnormals.
fn column() -> impl Strategy<Value = Vec<f64>> {
    let value = prop_oneof![
        proptest::num::f64::NORMAL | proptest::num::f64::ZERO,
        proptest::num::f64::SUBNORMAL,
        (-1e3..1e3f64),
        Just(1e-45),
    ];
    prop_oneof![
        proptest::collection::vec(value.clone(), 1..4),
        value.prop_map(|v| vec![v]),
        (-1e3..1e3f64).prop_map(|v| vec![v, v + v * 1e-16]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { failure_persistence: None, ..ProptestConfig::with_cases(512) })]

    #[test]
    fn every_scaler_fit_gives_is_saved_and_restored(rows in 1..12usize, columns in proptest::collection::vec(column(), 1..4)) {
        round_trips::<f64>(rows, &columns)?;
        // In f32 the values that overflow it are left out (fit refuses them, rightly).
        let narrow: Vec<Vec<f64>> = columns.iter().map(|c| c.iter().map(|&v| if (v as f32).is_finite() { v } else { 1.0 }).collect()).collect();
        round_trips::<f32>(rows, &narrow)?;
    }
}
