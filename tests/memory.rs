//! The memory report: `param_bytes` and `workspace_bytes` follow their documented formulas,
//! and the workspace grows only with the largest batch seen.

use std::mem::size_of;

use two_layer_net::ndarray::Array2;
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{Mse, Scalar, TwoLayerNet};

fn check<F: Scalar>(d: usize, h: usize, k: usize) {
    let mut net = TwoLayerNet::<F>::new(d, h, k, &mut StdRng::seed_from_u64(1)).unwrap();
    let s = size_of::<F>();
    assert_eq!(net.param_bytes(), (d * h + h + h * k + k) * s);
    assert_eq!(net.params().len() * s, net.param_bytes(), "the buffer holds exactly that");
    assert_eq!(net.workspace_bytes(), 0, "nothing before the first batch");

    let workspace = |n: usize| ((3 * h + 2 * k) * n + h + k) * s;
    for (n, n_max) in [(5, 5), (17, 17), (3, 17), (17, 17), (40, 40), (1, 40)] {
        let x = Array2::from_elem((n, d), F::cast(0.5));
        let y = Array2::from_elem((n, k), F::cast(0.25));
        net.train_step(x.view(), y.view(), &Mse, F::cast(1e-3)).unwrap();
        assert_eq!(net.workspace_rows(), n_max, "after a batch of {n}");
        assert_eq!(net.workspace_bytes(), workspace(n_max), "after a batch of {n}");
    }
    net.release_workspace();
    assert_eq!((net.workspace_bytes(), net.workspace_rows()), (0, 0));
}

#[test]
fn bytes_follow_the_formulas() {
    check::<f32>(3, 4, 2);
    check::<f64>(3, 4, 2);
    check::<f32>(20, 9, 5);
    check::<f64>(1, 1, 1);
}
