//! Hostile numbers and hostile sizes.
//!
//! Numbers: NaN or ±∞ anywhere in X or in the targets, values that overflow f32 (~1e30) or f64,
//! and denormal inputs, for every built-in activation, both losses, f32 and f64, and both
//! update paths (SGD fused into the backward GEMMs, and Adam through `train_step_with`). A
//! training step that meets a non-finite value refuses with `Error::NonFinite` and leaves the
//! parameters bitwise as they were; `forward_checked` reports a non-finite output. Denormals
//! are finite numbers: they train.
//!
//! Sizes: dimensions whose buffers would overflow `usize` or exceed memory, batches of 2³¹
//! rows or more (as broadcast views: nothing that large is allocated), dimensions beyond
//! BLAS's 32-bit int: a typed error, never an abort.

mod common;

use std::fmt::Debug;

use common::bits;
use two_layer_net::ndarray::{Array1, Array2, ArrayView2};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Adam, Error, Identity, Init, LeakyRelu, Mse, Relu, Scalar, Sigmoid, SoftmaxCrossEntropy,
    Tanh, TwoLayerNet,
};

const N: usize = 3;
const D: usize = 2;
const H: usize = 4;
const K: usize = 3;

fn all_finite<F: Scalar>(s: &[F]) -> bool {
    s.iter().all(|v| v.is_finite())
}

/// A D→H→K net with He weights and small nonzero biases, the batch `x` (N×D), MSE targets
/// `y` (N×K) and class labels, all finite and moderate.
fn setup<F: Scalar, A: Activation>(
    act: A,
    seed: u64,
) -> (TwoLayerNet<F, A>, Array2<F>, Array2<F>, Array1<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut net = TwoLayerNet::<F>::with_init(D, H, K, Init::He, &mut rng).unwrap().with_activation(act);
    let mut p = net.params_mut().view_mut();
    p.b1.iter_mut().enumerate().for_each(|(i, b)| *b = F::cast(0.1 * i as f64 - 0.15));
    p.b2.iter_mut().enumerate().for_each(|(i, b)| *b = F::cast(0.05 * i as f64));
    let x = Array2::from_shape_fn((N, D), |(i, j)| F::cast(0.3 * i as f64 - 0.4 * j as f64 + 0.2));
    let y = Array2::from_shape_fn((N, K), |(i, j)| F::cast(((i + 2 * j) % 3) as f64 * 0.5 - 0.5));
    let labels = Array1::from_shape_fn(N, |i| i % K);
    (net, x, y, labels)
}

/// The four training steps under test: (MSE, SCE) × (fused SGD, Adam).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    MseSgd,
    MseAdam,
    SceSgd,
    SceAdam,
}

const STEPS: [Step; 4] = [Step::MseSgd, Step::MseAdam, Step::SceSgd, Step::SceAdam];

fn train<F: Scalar, A: Activation>(
    net: &mut TwoLayerNet<F, A>,
    step: Step,
    x: ArrayView2<'_, F>,
    y: &Array2<F>,
    labels: &Array1<usize>,
) -> Result<F, Error> {
    let lr = F::cast(0.05);
    match step {
        Step::MseSgd => net.train_step(x, y.view(), &Mse, lr),
        Step::MseAdam => net.train_step_with(x, y.view(), &Mse, &mut Adam::new(lr)),
        Step::SceSgd => net.train_step(x, labels.view(), &SoftmaxCrossEntropy, lr),
        Step::SceAdam => net.train_step_with(x, labels.view(), &SoftmaxCrossEntropy, &mut Adam::new(lr)),
    }
}

/// A training step that must be refused: `Error::NonFinite`, parameters bitwise unchanged.
#[track_caller]
fn assert_refused<F: Scalar, A: Activation>(
    net: &mut TwoLayerNet<F, A>,
    step: Step,
    x: ArrayView2<'_, F>,
    y: &Array2<F>,
    labels: &Array1<usize>,
    what: &str,
) {
    let before = bits(net.params().as_slice());
    let r = train(net, step, x, y, labels);
    assert!(
        matches!(r, Err(Error::NonFinite { what: "y1" | "loss" | "gradient" })),
        "{} {} {step:?}, {what}: expected NonFinite, got {r:?}",
        F::NAME,
        A::NAME
    );
    assert_eq!(
        bits(net.params().as_slice()),
        before,
        "{} {} {step:?}, {what}: parameters changed",
        F::NAME,
        A::NAME
    );
}

/// Every position of x and of y, each set to each hostile value in turn.
fn non_finite_anywhere<F: Scalar, A: Activation>(act: A) {
    let (mut net, x, y, labels) = setup::<F, A>(act, 1);
    let hostile = [F::nan(), F::infinity(), F::neg_infinity()];
    for step in STEPS {
        for &v in &hostile {
            for pos in 0..x.len() {
                let mut bad = x.clone();
                bad.as_slice_mut().unwrap()[pos] = v;
                assert_refused(&mut net, step, bad.view(), &y, &labels, &format!("x[{pos}] = {v}"));
                // Also as a column-major view of the same values.
                let t = bad.t().to_owned();
                assert_refused(&mut net, step, t.t(), &y, &labels, &format!("x[{pos}] = {v}, column-major"));
            }
            if matches!(step, Step::MseSgd | Step::MseAdam) {
                for pos in 0..y.len() {
                    let mut bad = y.clone();
                    bad.as_slice_mut().unwrap()[pos] = v;
                    assert_refused(&mut net, step, x.view(), &bad, &labels, &format!("y[{pos}] = {v}"));
                }
            }
        }
    }
    // Nothing was applied: the clean batch still trains, on the original parameters.
    let (fresh, ..) = setup::<F, A>(act_of(&net), 1);
    assert_eq!(bits(net.params().as_slice()), bits(fresh.params().as_slice()));
    for step in STEPS {
        let l = train(&mut net, step, x.view(), &y, &labels).unwrap();
        assert!(l.is_finite());
    }
    assert!(all_finite(net.params().as_slice()));
}

fn act_of<F: Scalar, A: Activation>(net: &TwoLayerNet<F, A>) -> A {
    net.activation().clone()
}

/// `forward_checked` fails exactly when ŷ has a non-finite entry; NaN anywhere in x always
/// reaches ŷ (every activation maps NaN to NaN); ±∞ does through a non-saturating activation.
fn forward_checked_reports<F: Scalar, A: Activation>(act: A, inf_reaches_output: bool) {
    let (mut net, x, ..) = setup::<F, A>(act, 2);
    let before = bits(net.params().as_slice());
    for v in [F::nan(), F::infinity(), F::neg_infinity()] {
        for pos in 0..x.len() {
            let mut bad = x.clone();
            bad.as_slice_mut().unwrap()[pos] = v;
            let finite = all_finite(net.forward(bad.view()).unwrap().as_slice().unwrap());
            let checked = net.forward_checked(bad.view()).map(|y| y.to_owned());
            match checked {
                Err(Error::NonFinite { what: "yhat" }) => assert!(!finite),
                Ok(y) => {
                    assert!(finite && all_finite(y.as_slice().unwrap()));
                    assert!(
                        !v.is_nan() && !inf_reaches_output,
                        "{} {}: x[{pos}] = {v} gave a finite output",
                        F::NAME,
                        A::NAME
                    );
                }
                Err(e) => panic!("forward_checked: {e:?}"),
            }
        }
    }
    assert_eq!(bits(net.params().as_slice()), before, "forward changed the parameters");
    assert!(net.forward_checked(x.view()).is_ok());
}

macro_rules! each_activation {
    ($f:ident, $($arg:expr),*) => {{
        $f::<f32, _>(Relu, $($arg),*);
        $f::<f64, _>(Relu, $($arg),*);
        $f::<f32, _>(LeakyRelu::default(), $($arg),*);
        $f::<f64, _>(LeakyRelu { slope: 0.2 }, $($arg),*);
        $f::<f32, _>(Sigmoid, $($arg),*);
        $f::<f64, _>(Sigmoid, $($arg),*);
        $f::<f32, _>(Tanh, $($arg),*);
        $f::<f64, _>(Tanh, $($arg),*);
        $f::<f32, _>(Identity, $($arg),*);
        $f::<f64, _>(Identity, $($arg),*);
    }};
}

#[test]
fn nan_or_inf_anywhere_in_x_or_targets_is_refused() {
    each_activation!(non_finite_anywhere,);
}

#[test]
fn forward_checked_reports_non_finite_output() {
    // With ±∞ in x: Identity and leaky ReLU pass it on, ReLU does when a unit sees +∞ (this
    // problem's weights give one), sigmoid and tanh saturate to a finite output.
    forward_checked_reports::<f32, _>(Identity, true);
    forward_checked_reports::<f64, _>(Identity, true);
    forward_checked_reports::<f32, _>(LeakyRelu::default(), true);
    forward_checked_reports::<f64, _>(LeakyRelu::default(), true);
    forward_checked_reports::<f32, _>(Relu, false);
    forward_checked_reports::<f64, _>(Relu, false);
    forward_checked_reports::<f32, _>(Sigmoid, false);
    forward_checked_reports::<f64, _>(Sigmoid, false);
    forward_checked_reports::<f32, _>(Tanh, false);
    forward_checked_reports::<f64, _>(Tanh, false);
}

fn mse(step: Step) -> bool {
    matches!(step, Step::MseSgd | Step::MseAdam)
}

/// How an activation treats a huge pre-activation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Identity, leaky ReLU: passes it on (with its sign) to ŷ, so the loss overflows.
    Linear,
    /// ReLU: passes it on, or maps it to 0 when it is negative (a unit that is off).
    Relu,
    /// Sigmoid, tanh: bounded, so ŷ stays finite.
    Saturating,
}

/// Values that overflow F in the MSE loss (or earlier): refused, parameters bitwise unchanged.
/// Where the loss (softmax cross-entropy) or the activation can turn a huge but finite x into a finite ŷ (sigmoid, tanh, ReLU
/// with every unit off), the step is legitimately finite: then it must leave finite
/// parameters. `forward_checked` fails exactly when ŷ is not finite.
fn overflow<F: Scalar, A: Activation>(act: A, huge: f64, kind: Kind) {
    let (mut net, x, y, labels) = setup::<F, A>(act, 3);
    for step in STEPS {
        let mut refused = 0;
        for sign in [1.0, -1.0] {
            let v = F::cast(sign * huge);
            assert!(v.is_finite(), "{huge} must be finite in {}", F::NAME);
            // Every entry of x huge.
            let bad = x.mapv(|_| v);
            let before = bits(net.params().as_slice());
            let mut probe = net.clone();
            match train(&mut probe, step, bad.view(), &y, &labels) {
                Err(Error::NonFinite { .. }) => {
                    assert_eq!(bits(probe.params().as_slice()), before);
                    refused += 1;
                }
                // Softmax cross-entropy subtracts the row maximum: huge finite logits give a
                // finite loss and gradient, so the step is legitimate (if large).
                Ok(l) if kind != Kind::Linear || !mse(step) => {
                    assert!(l.is_finite());
                    assert!(all_finite(probe.params().as_slice()), "{} {} {step:?}", F::NAME, A::NAME);
                }
                other => {
                    panic!("{} {} {step:?}: x = {v}: expected NonFinite, got {other:?}", F::NAME, A::NAME)
                }
            }
            // Huge MSE targets overflow the loss for every activation.
            if mse(step) {
                let bad_y = y.mapv(|_| v);
                assert_refused(&mut net, step, x.view(), &bad_y, &labels, &format!("y = {v}"));
            }
            let out_finite = all_finite(net.forward(bad.view()).unwrap().as_slice().unwrap());
            assert_eq!(net.forward_checked(bad.view()).is_ok(), out_finite);
        }
        // ReLU: a unit off for +x is on for −x (unless its weights sum to 0), so one sign
        // reaches the loss.
        if kind == Kind::Relu && mse(step) {
            assert!(refused >= 1, "{} relu {step:?}: x = ±{huge:e} never refused", F::NAME);
        }
    }
    assert!(all_finite(net.params().as_slice()));
}

#[test]
fn overflow_is_refused() {
    for (huge_f32, huge_f64) in [(1e30, 1e200), (3e38, 1e308)] {
        overflow::<f32, _>(Relu, huge_f32, Kind::Relu);
        overflow::<f64, _>(Relu, huge_f64, Kind::Relu);
        overflow::<f32, _>(LeakyRelu::default(), huge_f32, Kind::Linear);
        overflow::<f64, _>(LeakyRelu::default(), huge_f64, Kind::Linear);
        overflow::<f32, _>(Identity, huge_f32, Kind::Linear);
        overflow::<f64, _>(Identity, huge_f64, Kind::Linear);
        overflow::<f32, _>(Sigmoid, huge_f32, Kind::Saturating);
        overflow::<f64, _>(Sigmoid, huge_f64, Kind::Saturating);
        overflow::<f32, _>(Tanh, huge_f32, Kind::Saturating);
        overflow::<f64, _>(Tanh, huge_f64, Kind::Saturating);
    }
}

/// Overflow inside the forward pass: with all-ones weights, `Y1 = 2·x`; x = 3e38 (f32) makes
/// `Y1 = ∞`, so ŷ is not finite and `forward_checked` says so; x = 1e30 gives a finite ŷ
/// (8e30) that `forward_checked` passes and a training step refuses (its loss overflows).
#[test]
fn overflow_in_the_forward_pass() {
    let ones2 = Array2::<f32>::ones((2, 4));
    let ones_w2 = Array2::<f32>::ones((4, 1));
    let (b1, b2) = (Array1::<f32>::zeros(4), Array1::<f32>::zeros(1));
    let mut net =
        TwoLayerNet::<f32>::from_params(ones2.view(), b1.view(), ones_w2.view(), b2.view()).unwrap();
    let before = bits(net.params().as_slice());
    let y = Array2::<f32>::zeros((1, 1));
    let x = Array2::from_elem((1, 2), 3e38f32);
    assert_eq!(net.forward_checked(x.view()).map(|_| ()), Err(Error::NonFinite { what: "yhat" }));
    assert_eq!(net.train_step(x.view(), y.view(), &Mse, 0.1), Err(Error::NonFinite { what: "y1" }));
    let x = Array2::from_elem((1, 2), 1e30f32);
    assert_eq!(net.forward_checked(x.view()).unwrap()[[0, 0]], 8e30);
    assert_eq!(net.train_step(x.view(), y.view(), &Mse, 0.1), Err(Error::NonFinite { what: "loss" }));
    let mut adam = Adam::new(0.1);
    assert_eq!(
        net.train_step_with(x.view(), y.view(), &Mse, &mut adam),
        Err(Error::NonFinite { what: "loss" })
    );
    assert_eq!(bits(net.params().as_slice()), before);
}

/// Denormal inputs (and targets) are finite: every step trains and leaves finite parameters;
/// forward_checked accepts them.
fn denormals<F: Scalar, A: Activation>(act: A) {
    let (mut net, x, y, labels) = setup::<F, A>(act, 4);
    let tiny = F::min_positive_value() / F::cast(1024.0);
    assert!(tiny > F::zero() && !tiny.is_normal(), "{tiny} is a denormal {}", F::NAME);
    let dx = x.mapv(|v| v.signum() * tiny);
    let dy = y.mapv(|v| v.signum() * tiny);
    assert!(net.forward_checked(dx.view()).is_ok());
    for step in STEPS {
        for _ in 0..3 {
            let l = train(&mut net, step, dx.view(), &dy, &labels).unwrap();
            assert!(l.is_finite());
        }
    }
    assert!(all_finite(net.params().as_slice()));
    // And a normal batch afterwards.
    train(&mut net, Step::MseSgd, x.view(), &y, &labels).unwrap();
}

#[test]
fn denormal_inputs_train() {
    each_activation!(denormals,);
}

// ---------------------------------------------------------------------------------------------
// Sizes.

/// Whether the kernel hands out any amount of virtual memory (`vm.overcommit_memory = 1`): a
/// huge allocation that must fail might then succeed and be filled. Tests whose allocation is
/// below the address-space limit are skipped there.
fn always_overcommits() -> bool {
    std::fs::read_to_string("/proc/sys/vm/overcommit_memory").is_ok_and(|s| s.trim() == "1")
}

#[track_caller]
fn assert_too_large<T: Debug>(r: Result<T, Error>, what: &str) {
    match r {
        Err(Error::TooLarge { .. }) => {}
        other => panic!("{what}: expected TooLarge, got {other:?}"),
    }
}

#[test]
fn parameters_beyond_memory_are_too_large() {
    let mut rng = StdRng::seed_from_u64(0);
    // W1 alone is 2^44 f64 or 2^45 f32 scalars, 2^47 bytes (128 TiB): beyond the 47-bit user
    // address space of x86-64, so try_reserve fails whatever the kernel's overcommit setting.
    assert_too_large(TwoLayerNet::<f64>::new(1 << 22, 1 << 22, 1, &mut rng), "f64 2^22 x 2^22");
    assert_too_large(TwoLayerNet::<f32>::new(1 << 23, 1 << 22, 1, &mut rng), "f32 2^23 x 2^22");
    // Each dimension fits i32; the buffer, about 2^63 scalars, exceeds isize::MAX bytes.
    assert_too_large(
        TwoLayerNet::<f64>::new(i32::MAX as usize, i32::MAX as usize, i32::MAX as usize, &mut rng),
        "overflow",
    );
    // 2^40 scalars: 8 TiB (f64) or 4 TiB (f32), far beyond this machine's memory; an
    // allocation that the kernel refuses unless it overcommits without limit.
    if always_overcommits() {
        eprintln!("SKIPPED new(1 << 20, 1 << 20, 1): vm.overcommit_memory = 1 would hand out 8 TiB");
    } else {
        assert_too_large(TwoLayerNet::<f64>::new(1 << 20, 1 << 20, 1, &mut rng), "f64 2^20 x 2^20");
        assert_too_large(TwoLayerNet::<f32>::new(1 << 20, 1 << 20, 1, &mut rng), "f32 2^20 x 2^20");
        assert_too_large(
            TwoLayerNet::<f64, Tanh>::with_init(1 << 20, 1 << 20, 1, Init::He, &mut rng),
            "with_init",
        );
    }
}

#[test]
fn dimensions_beyond_blas_int_are_too_large() {
    let mut rng = StdRng::seed_from_u64(0);
    for big in [1usize << 31, (1 << 31) + 7, 1 << 40, usize::MAX] {
        for (d, h, k) in [(big, 1, 1), (1, big, 1), (1, 1, big)] {
            assert_too_large(TwoLayerNet::<f32>::new(d, h, k, &mut rng), "f32 new");
            assert_too_large(TwoLayerNet::<f64, Sigmoid>::new(d, h, k, &mut rng), "f64 new");
        }
    }
    // i32::MAX itself fits BLAS; its buffer (2^31·8 bytes per weight matrix) is then refused or
    // allocated, never an abort. Only checked where huge allocations fail.
    if !always_overcommits() {
        let r = TwoLayerNet::<f64>::new(i32::MAX as usize, 1 << 12, 1, &mut rng);
        assert_too_large(r, "i32::MAX x 4096");
    }
}

#[test]
fn huge_broadcast_batches_are_refused() {
    let (mut net, _, y, labels) = setup::<f64, Relu>(Relu, 5);
    let before = bits(net.params().as_slice());
    let xrow = Array2::<f64>::zeros((1, D));
    let yrow = Array2::<f64>::zeros((1, K));
    let lrow = Array1::<usize>::zeros(1);
    for rows in [1usize << 31, (1 << 31) + 1, 1 << 40] {
        let x = xrow.broadcast((rows, D)).unwrap();
        let yb = yrow.broadcast((rows, K)).unwrap();
        let lb = lrow.broadcast(rows).unwrap();
        let mut dx = Array2::<f64>::zeros((1, D));
        assert_too_large(net.forward(x), "forward");
        assert_too_large(net.forward_checked(x), "forward_checked");
        assert_too_large(net.predict(x), "predict");
        assert_too_large(net.backward(x, yb), "backward");
        assert_too_large(net.backward_with_dx(x, yb, dx.view_mut()), "backward_with_dx");
        assert_too_large(net.train_step(x, yb, &Mse, 0.1), "train_step mse");
        assert_too_large(net.train_step(x, lb, &SoftmaxCrossEntropy, 0.1), "train_step sce");
        assert_too_large(net.train_step_with(x, yb, &Mse, &mut Adam::new(0.1)), "train_step_with adam");
    }
    // Below 2^31 rows, but the batch workspace ((3H + 2K)·N scalars) exceeds the address
    // space: try_reserve refuses it.
    let mut wide = TwoLayerNet::<f32>::new(1, 1 << 17, 1, &mut StdRng::seed_from_u64(6)).unwrap();
    let wide_before = bits(wide.params().as_slice());
    let rows = (1usize << 31) - 1;
    let xrow = Array2::<f32>::zeros((1, 1));
    let x = xrow.broadcast((rows, 1)).unwrap();
    let yrow = Array2::<f32>::zeros((1, 1));
    let yb = yrow.broadcast((rows, 1)).unwrap();
    assert_too_large(wide.forward(x), "forward, workspace 2^48 scalars");
    assert_too_large(wide.train_step(x, yb, &Mse, 0.1), "train_step, workspace 2^48 scalars");
    assert_eq!(bits(wide.params().as_slice()), wide_before);
    assert_eq!(wide.workspace_rows(), 0, "a refused batch left a workspace");
    // The nets still work at a normal size.
    assert_eq!(bits(net.params().as_slice()), before);
    let x = Array2::<f64>::zeros((N, D));
    net.train_step(x.view(), y.view(), &Mse, 0.1).unwrap();
    net.train_step(x.view(), labels.view(), &SoftmaxCrossEntropy, 0.1).unwrap();
}

/// Regression: fused SGD computes `W1 ← W1 − lr·Xᵀ·dY1` inside one GEMM and never looks at
/// the weight gradient, so a finite batch whose gradient overflowed once wrote −∞ into `W1`
/// and returned `Ok`, where Adam refused the same step. The fused step now proves from
/// `max|X|`, `max|dY1|` (and the other layer's) that its GEMMs cannot overflow, and otherwise
/// takes the unfused path, which checks the gradients.
#[test]
fn fused_sgd_refuses_an_overflowing_gradient() {
    fused_sgd_overflow(Relu);
    fused_sgd_overflow(Identity);
}

/// A 1→1→1 f32 net with weights `w1`, `w2` and zero biases.
fn net_1x1x1<A: Activation>(w1: f32, w2: f32, act: A) -> TwoLayerNet<f32, A> {
    let (w1, w2) = (Array2::from_elem((1, 1), w1), Array2::from_elem((1, 1), w2));
    let (b1, b2) = (Array1::zeros(1), Array1::zeros(1));
    TwoLayerNet::<f32>::from_params(w1.view(), b1.view(), w2.view(), b2.view()).unwrap().with_activation(act)
}

/// 1→1→1, f32, `W1 = 1e-10`, `W2 = 1`, biases 0, `x = 1e28`, `y = 0`, lr 0.1: `Y1 = 1e18`,
/// `ŷ = 1e18`, loss 1e36 (finite), but `dW1 = x·dY1 = 1e28·2e18` overflows to ∞.
fn fused_sgd_overflow<A: Activation>(act: A) {
    let net = net_1x1x1(1e-10, 1.0, act);
    let x = Array2::from_elem((1, 1), 1e28f32);
    let y = Array2::from_elem((1, 1), 0.0f32);
    let before = bits(net.params().as_slice());

    let mut adam = net.clone();
    let r = adam.train_step_with(x.view(), y.view(), &Mse, &mut Adam::new(0.1));
    assert_eq!(r, Err(Error::NonFinite { what: "gradient" }), "{}", A::NAME);
    assert_eq!(bits(adam.params().as_slice()), before);

    let mut sgd = net.clone();
    let r = sgd.train_step(x.view(), y.view(), &Mse, 0.1);
    assert_eq!(r, Err(Error::NonFinite { what: "gradient" }), "{}", A::NAME);
    assert_eq!(bits(sgd.params().as_slice()), before, "{}", A::NAME);
}

/// A step whose gradients are finite but whose update `θ − lr·dθ` overflows (a finite but
/// absurd learning rate) is refused whole with `NonFinite { what: "update" }`, through the
/// fused path and through `step`.
#[test]
fn an_overflowing_sgd_update_is_refused_whole() {
    // x = 1, y = 0, every parameter 1 (biases 0): every gradient is 2 or 4, lr·dθ overflows.
    let x = Array2::from_elem((2, 1), 1.0f32);
    let y = Array2::from_elem((2, 1), 0.0f32);
    for lr in [3e38f32, -3e38, f32::MAX] {
        let net = net_1x1x1(1.0, 1.0, Identity);
        let before = bits(net.params().as_slice());
        let mut fused = net.clone();
        let r = fused.train_step(x.view(), y.view(), &Mse, lr);
        assert_eq!(r, Err(Error::NonFinite { what: "update" }), "lr {lr}: train_step");
        assert_eq!(bits(fused.params().as_slice()), before, "lr {lr}: train_step");

        let mut split = net.clone();
        let yhat = split.forward(x.view()).unwrap().to_owned();
        let mut dyhat = Array2::zeros((2, 1));
        two_layer_net::Loss::loss_and_grad(&Mse, yhat.view(), y.view(), dyhat.view_mut()).unwrap();
        split.backward(x.view(), dyhat.view()).unwrap();
        assert!(all_finite(split.gradients().unwrap().as_slice()));
        assert_eq!(split.step(lr), Err(Error::NonFinite { what: "update" }), "lr {lr}: step");
        assert_eq!(bits(split.params().as_slice()), before, "lr {lr}: step");
    }
}

/// A batch on which the fused step's overflow bound `n·max|X|·max|dY1|` is far beyond
/// `f32::MAX` while the actual `Xᵀ·dY1` is moderate (the large `x` and the large `dY1` sit in
/// different rows): the step is not refused, and takes the unfused path, whose result it
/// matches bit for bit.
#[test]
fn a_loose_overflow_bound_falls_back_to_the_exact_step() {
    // Row 0: x = 1e30, ŷ = 1e30·1e-30 = 1, y = 1.5, dŷ = −0.5 → x·dY1 = −5e29.
    // Row 1: x = 1e-30, ŷ ≈ 0, y = 1e9, dŷ ≈ −1e9 → x·dY1 ≈ −1e-21.
    // Bound: 2·1e30·1e9 = 2e39 > f32::MAX.
    let net = net_1x1x1(1e-30, 1.0, Identity);
    let x = Array2::from_shape_vec((2, 1), vec![1e30f32, 1e-30]).unwrap();
    let y = Array2::from_shape_vec((2, 1), vec![1.5f32, 1e9]).unwrap();
    let lr = 1e-31f32;

    let mut fused = net.clone();
    let l = fused.train_step(x.view(), y.view(), &Mse, lr).unwrap();
    assert!(l.is_finite() && all_finite(fused.params().as_slice()));

    let mut split = net.clone();
    let yhat = split.forward(x.view()).unwrap().to_owned();
    let mut dyhat = Array2::zeros((2, 1));
    two_layer_net::Loss::loss_and_grad(&Mse, yhat.view(), y.view(), dyhat.view_mut()).unwrap();
    split.backward(x.view(), dyhat.view()).unwrap();
    split.step(lr).unwrap();
    assert_eq!(bits(fused.params().as_slice()), bits(split.params().as_slice()));
    assert_ne!(bits(fused.params().as_slice()), bits(net.params().as_slice()), "the step moved nothing");
}

/// Regression: `train_step_with` once checked the learning rate only for plain SGD, so Adam,
/// AdamW or momentum with a NaN or ±∞ learning rate returned `Ok` and wrote NaN into every
/// parameter. Every optimizer's rate is now checked (`NonFinite { what: "lr" }`).
#[test]
fn a_non_finite_learning_rate_is_refused_for_every_optimizer() {
    let (net, x, y, _) = setup::<f64, Relu>(Relu, 7);
    let before = bits(net.params().as_slice());
    for lr in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut sgd = net.clone();
        assert_eq!(sgd.train_step(x.view(), y.view(), &Mse, lr), Err(Error::NonFinite { what: "lr" }));
        let runs: [(&str, TwoLayerNet<f64>, Result<f64, Error>); 3] = {
            let (mut a, mut w, mut m) = (net.clone(), net.clone(), net.clone());
            let ra = a.train_step_with(x.view(), y.view(), &Mse, &mut Adam::new(lr));
            let rw = w.train_step_with(x.view(), y.view(), &Mse, &mut two_layer_net::AdamW::new(lr, 0.01));
            let rm = m.train_step_with(x.view(), y.view(), &Mse, &mut two_layer_net::Momentum::new(lr, 0.9));
            [("adam", a, ra), ("adamw", w, rw), ("momentum", m, rm)]
        };
        for (name, after, r) in runs {
            assert!(
                matches!(r, Err(Error::NonFinite { what: "lr" }))
                    && bits(after.params().as_slice()) == before,
                "{name}, lr {lr}: returned {r:?}; parameters finite afterwards: {}",
                all_finite(after.params().as_slice())
            );
        }
    }
}

/// Regression: `gemm` copies an operand that BLAS cannot address (here a broadcast, stride 0);
/// it once did so with an infallible allocation, so a broadcast batch whose dense size exceeds
/// memory aborted the process instead of returning `TooLarge`, although the batch has fewer
/// than 2³¹ rows and its workspace fits. Run in a child process, so that an abort fails this
/// test instead of killing the test binary.
#[test]
fn huge_broadcast_x_is_too_large_not_an_abort() {
    const CHILD: &str = "TWO_LAYER_NET_HOSTILE_CHILD";
    if std::env::var_os(CHILD).is_some() {
        // N·D = 2^48 scalars (2^50 bytes): beyond the address space, so the allocation fails
        // on any kernel setting. The workspace is N·(3H + 2K) = 5·2^24 scalars: it fits.
        let mut net = TwoLayerNet::<f32>::new(1 << 24, 1, 1, &mut StdRng::seed_from_u64(0)).unwrap();
        let row = Array2::<f32>::zeros((1, 1 << 24));
        let x = row.broadcast((1 << 24, 1 << 24)).unwrap();
        let r = net.forward(x).map(|y| y.dim());
        assert_too_large(r, "forward on a 2^24 x 2^24 broadcast");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args(["--exact", "huge_broadcast_x_is_too_large_not_an_abort", "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the child {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).lines().take(12).collect::<Vec<_>>().join("\n")
    );
}
