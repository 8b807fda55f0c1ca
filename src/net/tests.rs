//! Every product of a step goes to CBLAS, at every size, N = 1 and 2 included.

use ndarray::Array2;
use rand::{SeedableRng, rngs::StdRng};

use crate::blas::tests::calls;
use crate::{Mse, TwoLayerNet};

fn gemm_calls<T>(f: impl FnOnce() -> T) -> usize {
    let before = calls();
    f();
    calls() - before
}

#[test]
fn every_product_of_a_step_is_one_cblas_call() {
    let mut rng = StdRng::seed_from_u64(7);
    for (n, d, h, k) in [(1, 1, 1, 1), (2, 3, 4, 2), (5, 9, 8, 3), (64, 3, 4, 2)] {
        let mut net = TwoLayerNet::<f64>::new(d, h, k, &mut rng).unwrap();
        let x = Array2::from_shape_fn((n, d), |(i, j)| (i + 2 * j) as f64 * 0.1 - 0.3);
        let y = Array2::from_shape_fn((n, k), |(i, j)| (i * j) as f64 * 0.2);
        let dyhat = Array2::from_elem((n, k), 0.5);
        let mut dx = Array2::zeros((n, d));

        assert_eq!(gemm_calls(|| net.forward(x.view()).map(|_| ()).unwrap()), 2, "forward, {n}x{d}x{h}x{k}");
        assert_eq!(gemm_calls(|| net.backward(x.view(), dyhat.view()).map(|_| ()).unwrap()), 3, "backward");
        assert_eq!(
            gemm_calls(|| net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).map(|_| ()).unwrap()),
            4
        );
        assert_eq!(gemm_calls(|| net.step(1e-3).unwrap()), 0, "step is one pass, no GEMM");
        assert_eq!(gemm_calls(|| net.train_step(x.view(), y.view(), &Mse, 1e-3).unwrap()), 5, "train_step");
    }
}

/// The weight bound a fused SGD step carries to the next never falls below the true `max|w|`,
/// over many steps with an L2 decay, in f32 and f64; and every step stays fused.
#[test]
fn the_carried_weight_bound_is_an_upper_bound() {
    fn run<F: crate::Scalar>() {
        let mut rng = StdRng::seed_from_u64(11);
        let mut net = TwoLayerNet::<F>::with_init(6, 5, 3, crate::Init::He, &mut rng).unwrap();
        let loss = crate::L2::new(Mse, 1e-3);
        for step in 0..300 {
            let x =
                Array2::from_shape_fn((8, 6), |(i, j)| F::cast(((i * 7 + j * 3 + step) % 11) as f64 - 5.0));
            let y = Array2::from_shape_fn((8, 3), |(i, j)| F::cast(((i + j + step) % 5) as f64 * 0.3));
            let calls = gemm_calls(|| net.train_step(x.view(), y.view(), &loss, F::cast(1e-3)).unwrap());
            assert_eq!(calls, 5, "{} step {step} left the fused path", F::NAME);
            let bound = net.w_bound.expect("a fused step leaves a bound");
            let max = super::fused::weights_max(&net.params);
            assert!(bound >= max, "{} step {step}: bound {bound} < max|w| {max}", F::NAME);
        }
    }
    run::<f32>();
    run::<f64>();
}

/// `fused_update_bound` against the worst case: every product equal, so that the GEMM's sum
/// is as large as the bound allows. Just under `F::MAX / 2` the bound clears the update and
/// the computed weight is within it; just over, it does not clear it; nor does it clear an
/// update that is small only because `lr` is, on a gradient beyond `F::MAX / 2` (the unfused
/// path would refuse that gradient).
#[test]
fn the_fused_update_bound_covers_the_worst_case() {
    use crate::blas::gemm;
    use crate::workspace::{mat, mat_mut};
    for n in [1usize, 7, 1000, 100_000] {
        let (lr, reg, w, a) = (1.0f32, 2e-3f32, 1e3f32, 1e18f32);
        // b such that |lr|·n·a·b = 0.49·MAX.
        let b = 0.49 * f32::MAX / (n as f32 * a);
        let bound = super::fused::fused_update_bound(n, w, lr, reg, a, b).expect("0.49·MAX clears");
        let (xs, dys) = (vec![a; n], vec![-b; n]);
        let mut out = [w];
        gemm(-lr, mat(&xs, n, 1).t(), mat(&dys, n, 1), 1.0 - lr * reg, mat_mut(&mut out, 1, 1)).unwrap();
        assert!(out[0].is_finite() && out[0].abs() <= bound, "n {n}: |{}| > bound {bound}", out[0]);

        let b_over = 0.51 * f32::MAX / (n as f32 * a);
        assert_eq!(super::fused::fused_update_bound(n, w, lr, reg, a, b_over), None, "n {n}");
        let b_gradient = 0.6 * f32::MAX / (n as f32 * a);
        assert_eq!(super::fused::fused_update_bound(n, w, 0.25, reg, a, b_gradient), None, "n {n}: gradient");
    }
}

/// `A·W + b` both ways `linear_forward` can compute it (this machine's OpenBLAS picks one; the
/// other is checked here), against a plain loop, in f64.
#[test]
fn linear_forward_is_the_same_either_way() {
    use super::linear_forward;
    use crate::blas::{Mat, Overwrite};
    let (n, d, m) = (37, 11, 5);
    let a: Vec<f64> = (0..n * d).map(|i| ((i * 7) % 13) as f64 * 0.25 - 1.5).collect();
    let w: Vec<f64> = (0..d * m).map(|i| ((i * 5) % 11) as f64 * 0.125 - 0.6).collect();
    let b: Vec<f64> = (0..m).map(|j| j as f64 - 2.0).collect();
    let expected: Vec<f64> = (0..n * m)
        .map(|i| b[i % m] + (0..d).map(|l| a[i / m * d + l] * w[l * m + i % m]).sum::<f64>())
        .collect();
    for how in [Overwrite::Accumulate, Overwrite::Beta0] {
        let mut out = vec![f64::NAN; n * m];
        linear_forward(Mat::rows(&a, n, d), Mat::rows(&w, d, m), &b, &mut out, how).unwrap();
        for (i, (o, e)) in out.iter().zip(&expected).enumerate() {
            assert!((o - e).abs() <= 1e-12 * e.abs().max(1.0), "{how:?} [{i}]: {o} vs {e}");
        }
    }
}

/// `train_step` takes the fused path where `fusion_pays` says so and the four phases
/// elsewhere; on both sides it matches `train_step_with(Sgd)` (to rounding, bit for bit where
/// unfused), leaves no gradients behind, and, on the fused side, a weight bound.
#[test]
fn train_step_fuses_where_it_pays_and_matches_sgd_either_way() {
    use super::fused::fusion_pays;
    use crate::Sgd;
    for (n, d, h, k, fused) in
        [(2, 3, 4, 2, true), (64, 3, 4, 2, false), (40, 30, 20, 5, true), (600, 30, 20, 5, false)]
    {
        assert_eq!(fusion_pays(n, d, h, k), fused, "{n}x{d}x{h}x{k}");
        let mut rng = StdRng::seed_from_u64(n as u64);
        let net = TwoLayerNet::<f64>::with_init(d, h, k, crate::Init::He, &mut rng).unwrap();
        let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * 3 + j * 7) % 17) as f64 * 0.1 - 0.8);
        let y = Array2::from_shape_fn((n, k), |(i, j)| ((i + j) % 3) as f64 * 0.5);
        let (mut a, mut b) = (net.clone(), net);
        for _ in 0..3 {
            let la = a.train_step(x.view(), y.view(), &Mse, 0.05).unwrap();
            let lb = b.train_step_with(x.view(), y.view(), &Mse, &mut Sgd::new(0.05)).unwrap();
            assert_eq!(la.to_bits(), lb.to_bits(), "{n}x{d}x{h}x{k}: the loss precedes the update");
        }
        let (pa, pb) = (a.params().as_slice(), b.params().as_slice());
        for (i, (u, v)) in pa.iter().zip(pb).enumerate() {
            let tol = if fused { 1e-12 * v.abs().max(1.0) } else { 0.0 };
            assert!((u - v).abs() <= tol, "{n}x{d}x{h}x{k} [{i}]: {u} vs {v}");
        }
        assert_eq!(a.gradients().unwrap_err(), crate::Error::NoGradients);
        assert_eq!(a.w_bound.is_some(), fused, "{n}x{d}x{h}x{k}");
    }
}
