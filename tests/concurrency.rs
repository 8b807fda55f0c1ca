//! Networks trained at once on separate threads give bit-for-bit the results of the same
//! networks trained one after another: OpenBLAS is safe to call from several threads at a
//! time, and nothing in a network is shared with another. Checked with two and with four
//! networks, with OpenBLAS's own threads at its default and at 1 (`set_num_threads`).
//!
//! Also a compile-time check that every `TwoLayerNet` is `Send + Sync`.

use std::sync::{Mutex, MutexGuard, OnceLock};

use two_layer_net::ndarray::{Array1, Array2};
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::rand::{RngExt, SeedableRng};
use two_layer_net::{
    Activation, Adam, Identity, Init, LeakyRelu, Loss, Mse, Relu, Scalar, Sigmoid, SoftmaxCrossEntropy, Tanh,
    TwoLayerNet,
};

/// `TwoLayerNet<F, A>` is `Send + Sync` for both scalar types and every built-in activation:
/// a compile error here otherwise.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    macro_rules! each {
        ($($a:ty),*) => {$(
            send_sync::<TwoLayerNet<f32, $a>>();
            send_sync::<TwoLayerNet<f64, $a>>();
        )*};
    }
    each!(Relu, LeakyRelu, Sigmoid, Tanh, Identity);
};

/// The tests change OpenBLAS's process-wide thread count: one at a time.
fn exclusive() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// OpenBLAS's thread count when the process started (its default, or `OPENBLAS_NUM_THREADS`).
#[cfg(feature = "openblas")]
fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(two_layer_net::num_threads)
}

/// Sets OpenBLAS's thread count for one test: `None` for the default.
fn blas_threads(n: Option<usize>) -> usize {
    #[cfg(feature = "openblas")]
    {
        // The default is read before this (or any) test changes it.
        let default = default_threads();
        let n = n.unwrap_or(default);
        two_layer_net::set_num_threads(n);
        two_layer_net::num_threads()
    }
    #[cfg(not(feature = "openblas"))]
    {
        let _ = (n, OnceLock::<()>::new());
        0
    }
}

/// What a run leaves: every loss, and the final parameters, as bits.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    losses: Vec<u64>,
    params: Vec<u64>,
}

/// One of the networks, each different in scalar type, activation, shape, loss or optimizer.
/// Batches of 128 × 96 through 160 hidden units are large enough for OpenBLAS to split a GEMM
/// over its threads.
fn job(id: usize) -> Outcome {
    match id % 4 {
        0 => train::<f64, _, _>(id, Relu, Mse, false),
        1 => train::<f32, _, _>(id, Tanh, SoftmaxCrossEntropy, true),
        2 => train::<f64, _, _>(id, LeakyRelu { slope: 0.1 }, SoftmaxCrossEntropy, false),
        _ => train::<f32, _, _>(id, Sigmoid, Mse, true),
    }
}

trait Task<F: Scalar>: Loss<F> {
    type Data;
    fn data(rng: &mut StdRng, n: usize, k: usize) -> Self::Data;
    fn step<A: Activation>(
        &self,
        net: &mut TwoLayerNet<F, A>,
        x: &Array2<F>,
        t: &Self::Data,
        adam: Option<&mut Adam<F>>,
    ) -> F;
}

impl<F: Scalar> Task<F> for Mse {
    type Data = Array2<F>;
    fn data(rng: &mut StdRng, n: usize, k: usize) -> Array2<F> {
        Array2::from_shape_simple_fn((n, k), || F::cast(rng.random_range(-1.0..1.0)))
    }
    fn step<A: Activation>(
        &self,
        net: &mut TwoLayerNet<F, A>,
        x: &Array2<F>,
        y: &Array2<F>,
        adam: Option<&mut Adam<F>>,
    ) -> F {
        match adam {
            Some(opt) => net.train_step_with(x.view(), y.view(), self, opt),
            None => net.train_step(x.view(), y.view(), self, F::cast(1e-3)),
        }
        .unwrap()
    }
}

impl<F: Scalar> Task<F> for SoftmaxCrossEntropy {
    type Data = Array1<usize>;
    fn data(rng: &mut StdRng, n: usize, k: usize) -> Array1<usize> {
        Array1::from_shape_simple_fn(n, || rng.random_range(0..k))
    }
    fn step<A: Activation>(
        &self,
        net: &mut TwoLayerNet<F, A>,
        x: &Array2<F>,
        y: &Array1<usize>,
        adam: Option<&mut Adam<F>>,
    ) -> F {
        match adam {
            Some(opt) => net.train_step_with(x.view(), y.view(), self, opt),
            None => net.train_step(x.view(), y.view(), self, F::cast(1e-2)),
        }
        .unwrap()
    }
}

/// Trains net `id` for a few steps (SGD or Adam) on its own data, then one manual
/// forward / backward / step, and reports every loss and the final parameters.
fn train<F: Scalar, A: Activation, L: Task<F>>(id: usize, act: A, loss: L, adam: bool) -> Outcome {
    let (n, d, h, k) = (128 + 8 * id, 96, 160 - 8 * id, 10);
    let mut rng = StdRng::seed_from_u64(1000 + id as u64);
    let mut net = TwoLayerNet::<F>::with_init(d, h, k, Init::He, &mut rng).unwrap().with_activation(act);
    let x = Array2::from_shape_simple_fn((n, d), || F::cast(rng.random_range(-1.0..1.0)));
    let t = L::data(&mut rng, n, k);
    let mut opt = adam.then(|| Adam::new(F::cast(1e-3)));
    let mut losses = Vec::new();
    for _ in 0..12 {
        losses.push(loss.step(&mut net, &x, &t, opt.as_mut()).as_f64().to_bits());
    }
    let dyhat = Array2::from_elem((n, k), F::cast(1e-3));
    net.forward(x.view()).unwrap();
    net.backward(x.view(), dyhat.view()).unwrap();
    net.step(F::cast(1e-2)).unwrap();
    let params = net.params().as_slice().iter().map(|v| v.as_f64().to_bits()).collect();
    Outcome { losses, params }
}

/// Trains `count` nets one after another, then the same nets at once on `count` threads, and
/// compares bit for bit (three concurrent rounds, to give a race a chance to show).
fn concurrent_equals_sequential(count: usize, threads: Option<usize>) {
    let _guard = exclusive();
    let actual = blas_threads(threads);
    eprintln!("{count} nets, OpenBLAS threads {actual}");
    let sequential: Vec<Outcome> = (0..count).map(job).collect();
    for round in 0..3 {
        let concurrent: Vec<Outcome> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..count).map(|id| s.spawn(move || job(id))).collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        for (id, (c, q)) in concurrent.iter().zip(&sequential).enumerate() {
            assert!(
                c == q,
                "net {id} of {count}, OpenBLAS threads {actual}, round {round}: concurrent differs from sequential"
            );
        }
    }
    blas_threads(None);
}

#[test]
fn two_nets_at_once_default_blas_threads() {
    concurrent_equals_sequential(2, None);
}

#[test]
fn four_nets_at_once_default_blas_threads() {
    concurrent_equals_sequential(4, None);
}

#[test]
fn two_nets_at_once_one_blas_thread() {
    concurrent_equals_sequential(2, Some(1));
}

#[test]
fn four_nets_at_once_one_blas_thread() {
    concurrent_equals_sequential(4, Some(1));
}

/// The same net trained on a thread of its own and on the main thread (moved there and back):
/// `Send` in practice, not only in the type system.
#[test]
fn a_net_moves_between_threads() {
    let _guard = exclusive();
    let here = job(1);
    let there = std::thread::spawn(|| job(1)).join().unwrap();
    assert!(here == there);
}
