//! Zero heap allocations per steady-state step: after the first step at a batch size (which
//! grows the workspace), `train_step`, `forward` + `Mse::loss_and_grad` + `backward` + `step`,
//! and `backward_with_dx` allocate nothing, in f32 and f64, below and above ndarray's BLAS
//! cutoff; nor does any batch smaller than one already seen.
//!
//! A counting global allocator counts `alloc`, `alloc_zeroed` and `realloc` calls made on the
//! measuring thread only (a thread-local flag), and measurements are serialized, so the test
//! harness's other threads add no noise.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use two_layer_net::ndarray::{Array2, ArrayView2, s};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Adam, AdamW, Init, Loss, Momentum, Mse, Optimizer, Relu, Scalar, Scratch, Sgd, Slot, Tanh,
    TwoLayerNet,
};

struct Counting;

static ALLOCS: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    static ON: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if ON.try_with(Cell::get).unwrap_or(false) {
        ALLOCS.fetch_add(1, Ordering::SeqCst);
    }
}

// SAFETY: every call is forwarded unchanged to `System`; counting touches only an atomic and a
// const-initialized thread-local `Cell` (which never allocates).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded from the caller's contract.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// One measurement at a time, so that two tests measuring at once do not add up.
static SERIAL: Mutex<()> = Mutex::new(());

/// Heap allocations (and reallocations) made by `f` on this thread.
fn allocations<T>(f: impl FnOnce() -> T) -> (usize, T) {
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = ALLOCS.load(Ordering::SeqCst);
    ON.with(|on| on.set(true));
    let out = f();
    ON.with(|on| on.set(false));
    (ALLOCS.load(Ordering::SeqCst) - before, out)
}

/// Shapes `(N, D, H, K)`: the note's, all ones, one below and one above ndarray's BLAS cutoff
/// (any of m, n, k > 7).
const SHAPES: [(usize, usize, usize, usize); 4] = [(2, 3, 4, 2), (1, 1, 1, 1), (7, 5, 6, 3), (64, 20, 30, 5)];

/// Steady-state steps measured after the first.
const STEPS: usize = 4;

/// A deterministic `rows × cols` matrix with entries in [-0.5, 0.5).
fn data<F: Scalar>(rows: usize, cols: usize, salt: usize) -> Array2<F> {
    Array2::from_shape_fn((rows, cols), |(i, j)| F::cast(((i * 7 + j * 3 + salt) % 11) as f64 / 11.0 - 0.5))
}

fn net<F: Scalar, A: Activation>(d: usize, h: usize, k: usize, act: A) -> TwoLayerNet<F, A> {
    let mut rng = StdRng::seed_from_u64((d * 1000 + h * 10 + k) as u64);
    TwoLayerNet::<F>::with_init(d, h, k, Init::He, &mut rng).unwrap().with_activation(act)
}

/// forward, loss into the caller's `dyhat`, backward (with dX into `dx` if given), step.
fn split_step<F: Scalar, A: Activation>(
    net: &mut TwoLayerNet<F, A>,
    x: ArrayView2<'_, F>,
    y: ArrayView2<'_, F>,
    dyhat: &mut Array2<F>,
    dx: Option<&mut Array2<F>>,
) -> F {
    let yhat = net.forward(x).unwrap();
    let l = Mse.loss_and_grad(yhat, y, dyhat.view_mut()).unwrap();
    match dx {
        Some(dx) => net.backward_with_dx(x, dyhat.view(), dx.view_mut()).map(|_| ()).unwrap(),
        None => net.backward(x, dyhat.view()).map(|_| ()).unwrap(),
    }
    net.step(F::cast(1e-3)).unwrap();
    l
}

#[test]
fn the_counter_counts() {
    assert_eq!(allocations(|| ()).0, 0);
    let (n, v) = allocations(|| vec![1u8; 100]);
    assert_eq!(n, 1);
    let (n, v) = allocations(move || {
        let mut v = v;
        v.reserve_exact(10_000);
        v
    });
    assert_eq!(n, 1, "a realloc counts");
    assert_eq!(allocations(move || drop(v)).0, 0, "a dealloc does not");
    // The ndarray way of allocating counts too.
    assert_eq!(allocations(|| Array2::<f64>::zeros((3, 3))).0, 1);
    // Another thread's allocations do not count (its flag is off).
    let _one_at_a_time = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let before = ALLOCS.load(Ordering::SeqCst);
    let len = std::thread::spawn(|| vec![0u8; 100].len()).join().unwrap();
    assert_eq!(len, 100);
    assert_eq!(ALLOCS.load(Ordering::SeqCst), before);
}

/// `train_step`: the first step at a batch size allocates (the counter sees it), every later one
/// allocates nothing; then every smaller batch allocates nothing from its first step on, and a
/// larger batch allocates again.
fn train_step_steady<F: Scalar, A: Activation>(act: A) {
    for &(n, d, h, k) in &SHAPES {
        let what = format!("{} {} {n}x{d}x{h}x{k}", F::NAME, A::NAME);
        let mut net = net::<F, A>(d, h, k, act.clone());
        let (x, y) = (data::<F>(n, d, 0), data::<F>(n, k, 5));
        let lr = F::cast(1e-3);
        let (first, _) = allocations(|| net.train_step(x.view(), y.view(), &Mse, lr).unwrap());
        assert!(first >= 1, "{what}: the first step must grow the workspace (counter broken?)");
        for i in 0..STEPS {
            let (a, l) = allocations(|| net.train_step(x.view(), y.view(), &Mse, lr).unwrap());
            assert!(l.is_finite());
            assert_eq!(a, 0, "{what}: train_step {} allocated {a} times", i + 2);
        }
        // Column-major x (a transposed view): read in place by BLAS, no copy.
        let xt = x.t().as_standard_layout().into_owned();
        for _ in 0..2 {
            let (a, _) = allocations(|| net.train_step(xt.t(), y.view(), &Mse, lr).unwrap());
            assert_eq!(a, 0, "{what}: train_step on a column-major x allocated {a} times");
        }
        for m in [n / 2, 1].into_iter().filter(|&m| m >= 1 && m < n) {
            let (x, y) = (x.slice(s![..m, ..]), y.slice(s![..m, ..]));
            for i in 0..2 {
                let (a, _) = allocations(|| net.train_step(x, y, &Mse, lr).unwrap());
                assert_eq!(
                    a,
                    0,
                    "{what}: train_step #{} at the smaller batch {m} allocated {a} times",
                    i + 1
                );
            }
        }
        let (xl, yl) = (data::<F>(n + 1, d, 1), data::<F>(n + 1, k, 2));
        let (a, _) = allocations(|| net.train_step(xl.view(), yl.view(), &Mse, lr).unwrap());
        assert!(a >= 1, "{what}: a larger batch must grow the workspace");
    }
}

#[test]
fn train_step_allocates_nothing_in_steady_state_f64() {
    train_step_steady::<f64, _>(Relu);
    train_step_steady::<f64, _>(Tanh);
}

#[test]
fn train_step_allocates_nothing_in_steady_state_f32() {
    train_step_steady::<f32, _>(Relu);
}

/// `forward` + `Mse::loss_and_grad` + `backward` (or `backward_with_dx`) + `step`, into
/// caller-owned `dyhat` and `dx`: as for `train_step`.
fn split_steady<F: Scalar>(with_dx: bool) {
    for &(n, d, h, k) in &SHAPES {
        let what = format!("{} {n}x{d}x{h}x{k}, dx {with_dx}", F::NAME);
        let mut net = net::<F, Relu>(d, h, k, Relu);
        let (x, y) = (data::<F>(n, d, 0), data::<F>(n, k, 5));
        let mut dyhat = Array2::<F>::zeros((n, k));
        let mut dx = Array2::<F>::zeros((n, d));
        let (first, _) =
            allocations(|| split_step(&mut net, x.view(), y.view(), &mut dyhat, with_dx.then_some(&mut dx)));
        assert!(first >= 1, "{what}: the first step must grow the workspace (counter broken?)");
        for i in 0..STEPS {
            let (a, l) = allocations(|| {
                split_step(&mut net, x.view(), y.view(), &mut dyhat, with_dx.then_some(&mut dx))
            });
            assert!(l.is_finite());
            assert_eq!(a, 0, "{what}: step {} allocated {a} times", i + 2);
        }
        for m in [n / 2, 1].into_iter().filter(|&m| m >= 1 && m < n) {
            let (x, y) = (x.slice(s![..m, ..]), y.slice(s![..m, ..]));
            let mut dyhat = Array2::<F>::zeros((m, k));
            let mut dx = Array2::<F>::zeros((m, d));
            for i in 0..2 {
                let (a, _) =
                    allocations(|| split_step(&mut net, x, y, &mut dyhat, with_dx.then_some(&mut dx)));
                assert_eq!(a, 0, "{what}: step #{} at the smaller batch {m} allocated {a} times", i + 1);
            }
        }
        // A forward alone at a new larger batch grows the workspace.
        let xl = data::<F>(n + 1, d, 1);
        let (a, _) = allocations(|| net.forward(xl.view()).map(|_| ()).unwrap());
        assert!(a >= 1, "{what}: a larger batch must grow the workspace");
    }
}

#[test]
fn forward_loss_backward_step_allocate_nothing_in_steady_state() {
    split_steady::<f64>(false);
    split_steady::<f32>(false);
}

#[test]
fn backward_with_dx_allocates_nothing_in_steady_state() {
    split_steady::<f64>(true);
    split_steady::<f32>(true);
}

/// `train_step_with` (the four phases) with every optimizer, and one optimizer over the
/// network and a layer of the caller's own: the first step sizes the state, later ones
/// allocate nothing.
fn optimizer_steady<F: Scalar, O: Optimizer<F>>(mut make: impl FnMut() -> O, name: &str) {
    for &(n, d, h, k) in &SHAPES {
        let what = format!("{} {name} {n}x{d}x{h}x{k}", F::NAME);
        let mut net = net::<F, Relu>(d, h, k, Relu);
        let (x, y) = (data::<F>(n, d, 0), data::<F>(n, k, 5));
        let mut opt = make();
        let (first, _) = allocations(|| net.train_step_with(x.view(), y.view(), &Mse, &mut opt).unwrap());
        assert!(first >= 1, "{what}: the first step must grow the workspace (counter broken?)");
        for i in 0..STEPS {
            let (a, _) = allocations(|| net.train_step_with(x.view(), y.view(), &Mse, &mut opt).unwrap());
            assert_eq!(a, 0, "{what}: train_step_with {} allocated {a} times", i + 2);
        }
        // A pipeline step: the net and a buffer of the caller's in one optimizer, with dX.
        let mut opt = make();
        let (mut own, d_own) = (vec![F::cast(0.5); d * 3], vec![F::cast(0.1); d * 3]);
        let mut dyhat = Array2::<F>::zeros((n, k));
        let mut dx = Array2::<F>::zeros((n, d));
        let mut pipeline_step = || {
            let yhat = net.forward(x.view()).unwrap();
            Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut()).unwrap();
            net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap();
            opt.step(&mut [net.slot().unwrap(), Slot::new(&mut own, &d_own)]).unwrap();
        };
        allocations(&mut pipeline_step);
        for i in 0..STEPS {
            let (a, _) = allocations(&mut pipeline_step);
            assert_eq!(a, 0, "{what}: pipeline step {} allocated {a} times", i + 2);
        }
    }
}

#[test]
fn every_optimizer_allocates_nothing_in_steady_state() {
    fn all<F: Scalar>() {
        let lr = F::cast(1e-3);
        optimizer_steady::<F, _>(|| Sgd::new(lr), "sgd");
        optimizer_steady::<F, _>(|| Momentum::new(lr, F::cast(0.9)), "momentum");
        optimizer_steady::<F, _>(|| Momentum::nesterov(lr, F::cast(0.9)), "nesterov");
        optimizer_steady::<F, _>(|| Adam::new(lr), "adam");
        optimizer_steady::<F, _>(|| AdamW::new(lr, F::cast(0.01)), "adamw");
    }
    all::<f64>();
    all::<f32>();
}

/// Inference through `&self` with a caller's `Scratch`: nothing after the first batch.
#[test]
fn shared_inference_allocates_nothing_with_scratch() {
    for &(n, d, h, k) in &SHAPES {
        let net = net::<f32, Relu>(d, h, k, Relu);
        let (x, y) = (data::<f32>(n, d, 0), data::<f32>(n, k, 5));
        let mut scratch = Scratch::new();
        let (first, _) = allocations(|| net.forward_with(x.view(), &mut scratch).map(|_| ()).unwrap());
        assert!(first >= 1, "{n}x{d}x{h}x{k}: the first batch sizes the scratch");
        net.evaluate_with(x.view(), y.view(), &Mse, &mut scratch).unwrap();
        for _ in 0..STEPS {
            let (a, _) = allocations(|| net.forward_with(x.view(), &mut scratch).map(|_| ()).unwrap());
            assert_eq!(a, 0, "{n}x{d}x{h}x{k}: forward_with allocated {a} times");
            let (a, _) = allocations(|| net.evaluate_with(x.view(), y.view(), &Mse, &mut scratch).unwrap());
            assert_eq!(a, 0, "{n}x{d}x{h}x{k}: evaluate_with allocated {a} times");
        }
    }
}
