//! `Init::Orthogonal` (feature `linalg`): the weights are gain·(semi-)orthogonal, and the
//! same seed gives the same bits.
#![cfg(feature = "linalg")]

use ndarray::{Array2, ArrayView2};
use rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{Init, TwoLayerNet};

/// max |MᵀM − gain²·I| over the Gram matrix of the orthonormal side of `w`.
fn gram_error(w: ArrayView2<'_, f64>, gain: f64) -> f64 {
    let g: Array2<f64> = if w.nrows() >= w.ncols() { w.t().dot(&w) } else { w.dot(&w.t()) };
    let mut worst: f64 = 0.0;
    for ((i, j), v) in g.indexed_iter() {
        let want = if i == j { gain * gain } else { 0.0 };
        // A NaN must fail the check, not vanish in f64::max.
        let d = (v - want).abs();
        worst = if d.is_nan() { f64::INFINITY } else { worst.max(d) };
    }
    worst
}

#[test]
fn weights_are_orthogonal_in_both_orientations() {
    let mut rng = StdRng::seed_from_u64(3);
    // W1 is 30×8 (tall: orthonormal columns), W2 is 8×50 (wide: orthonormal rows).
    let net = TwoLayerNet::<f64>::with_init(30, 8, 50, Init::Orthogonal { gain: 2.0 }, &mut rng).unwrap();
    assert!(gram_error(net.w1(), 2.0) < 1e-12, "W1 not orthogonal: {}", gram_error(net.w1(), 2.0));
    assert!(gram_error(net.w2(), 2.0) < 1e-12, "W2 not orthogonal: {}", gram_error(net.w2(), 2.0));
    assert!(net.b1().iter().chain(net.b2()).all(|&b| b == 0.0));
    // Not the identity or a permutation: a Gaussian start gives dense Q.
    assert!(net.w1().iter().filter(|v| v.abs() > 1e-3).count() > 30 * 8 / 2);
}

#[test]
fn same_seed_same_bits_and_f32_works() {
    let init = Init::Orthogonal { gain: 1.0 };
    let a = TwoLayerNet::<f32>::with_init(16, 16, 4, init, &mut StdRng::seed_from_u64(9)).unwrap();
    let b = TwoLayerNet::<f32>::with_init(16, 16, 4, init, &mut StdRng::seed_from_u64(9)).unwrap();
    let bits = |n: &TwoLayerNet<f32>| n.params().as_slice().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&a), bits(&b));
    let w = a.w1().mapv(f64::from);
    assert!(gram_error(w.view(), 1.0) < 1e-5);
}
