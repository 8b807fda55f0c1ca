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
