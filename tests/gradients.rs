//! Gradients: finite differences (the crate's checker and an independent one), the plain-loop
//! reference at 1e-12, the chain rule written as explicit Jacobians, f32 against f64, and
//! workspace reuse across batch sizes.
//!
//! Tolerances written `1e-12` are "absolute below magnitude 1, ∞-norm relative above it":
//! `max |actual − expected| ≤ 1e-12 · max(1, max |expected|)` (see `common::assert_close`).

mod common;

use common::*;
use two_layer_net::ndarray::{Array1, Array2, ArrayView2, array};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Error, GradCheck, Identity, LeakyRelu, Loss, Mse, Relu, Scalar, Sigmoid, Tanh, TwoLayerNet,
    check_gradients,
};

/// Shapes `(N, D, H, K)`: each of N, D, H, K equal to 1 somewhere, and a larger one.
const SHAPES: [(usize, usize, usize, usize); 6] =
    [(1, 3, 4, 2), (4, 1, 3, 2), (3, 4, 1, 2), (5, 3, 4, 1), (1, 1, 1, 1), (7, 5, 6, 3)];

/// Every pre-activation is at least this far from 0, so that a finite difference of step
/// ≤ 1e-5 (moving `Y1` by ≤ ~1e-5) never straddles the ReLU / leaky ReLU kink.
const MARGIN: f64 = 1e-3;

/// `|a − n| / max(|a| + |n|, 1e-8)`, the CS231n relative error.
fn rel_err(a: f64, n: f64) -> f64 {
    (a - n).abs() / (a.abs() + n.abs()).max(1e-8)
}

/// The loss of `net` on (`x`, `y`) through the public `forward` and `Mse`.
fn loss_of<A: Activation>(
    net: &mut TwoLayerNet<f64, A>,
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
) -> f64 {
    let mut scratch = Array2::zeros(y.raw_dim());
    let yhat = net.forward(x).expect("forward");
    Mse.loss_and_grad(yhat, y, scratch.view_mut()).expect("loss")
}

/// The analytic gradients of `net` on (`x`, `y`): the flat parameter gradient and dX.
fn analytic<A: Activation>(
    net: &TwoLayerNet<f64, A>,
    x: &Array2<f64>,
    y: &Array2<f64>,
) -> (Vec<f64>, Array2<f64>) {
    let mut net = net.clone();
    let mut dyhat = Array2::zeros(y.raw_dim());
    let mut dx = Array2::zeros(x.raw_dim());
    let yhat = net.forward(x.view()).unwrap();
    Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut()).unwrap();
    let g = net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap().as_slice().to_vec();
    (g, dx)
}

/// An independent central-difference check (step `eps`) of every parameter and every entry of
/// x: returns the largest relative error and where it was.
fn own_fd_check<A: Activation>(
    net: &TwoLayerNet<f64, A>,
    x: &Array2<f64>,
    y: &Array2<f64>,
    eps: f64,
) -> (f64, String) {
    let (g, dx) = analytic(net, x, y);
    let mut worst = (0.0, String::new());
    let mut record = |rel: f64, at: String| {
        let rel = if rel.is_nan() { f64::INFINITY } else { rel };
        if rel >= worst.0 {
            worst = (rel, at);
        }
    };
    let mut probe = net.clone();
    for (i, &a) in g.iter().enumerate() {
        let theta = probe.params().as_slice()[i];
        probe.params_mut().as_slice_mut()[i] = theta + eps;
        let up = loss_of(&mut probe, x.view(), y.view());
        probe.params_mut().as_slice_mut()[i] = theta - eps;
        let down = loss_of(&mut probe, x.view(), y.view());
        probe.params_mut().as_slice_mut()[i] = theta;
        let num = (up - down) / (2.0 * eps);
        record(rel_err(a, num), format!("{:?}: analytic {a}, numeric {num}", probe.params().locate(i)));
    }
    assert_eq!(bits(probe.params().as_slice()), bits(net.params().as_slice()), "probe restored");
    let mut xp = x.clone();
    for r in 0..x.nrows() {
        for c in 0..x.ncols() {
            let v = x[[r, c]];
            xp[[r, c]] = v + eps;
            let up = loss_of(&mut probe, xp.view(), y.view());
            xp[[r, c]] = v - eps;
            let down = loss_of(&mut probe, xp.view(), y.view());
            xp[[r, c]] = v;
            let num = (up - down) / (2.0 * eps);
            let a = dx[[r, c]];
            record(rel_err(a, num), format!("x[{r}, {c}]: analytic {a}, numeric {num}"));
        }
    }
    worst
}

/// For one activation, on every shape in [`SHAPES`]: the crate's `check_gradients`, the
/// independent check, and the analytic gradients against the plain-loop reference.
fn gradients_for<A: Activation>(act: A, r: RefAct, seed: u64) {
    for (case, &(n, d, h, k)) in SHAPES.iter().enumerate() {
        let what = format!("{} {n}x{d}x{h}x{k}", r.name);
        let (p, x, y) = problem(seed + case as u64, n, d, h, k, MARGIN);
        assert!(kink_margin(&p, x.view()) >= MARGIN, "{what}: a pre-activation is near 0");
        let net = p.net(act.clone());
        let before = bits(net.params().as_slice());

        let report = check_gradients(&net, x.view(), y.view(), &Mse, GradCheck::default()).unwrap();
        assert!(report.max_rel_error < 1e-6, "{what}: check_gradients {report:?}");
        for (name, e) in report.per_tensor {
            assert!(e < 1e-6, "{what}: {name} rel error {e}");
        }
        assert_eq!(report.checked, net.params().len() + n * d, "{what}: entries checked");
        assert_eq!(bits(net.params().as_slice()), before, "{what}: check_gradients changed the net");

        let (rel, at) = own_fd_check(&net, &x, &y, 1e-5);
        assert!(rel < 1e-6, "{what}: own finite differences: rel error {rel} at {at}");

        // The same gradients against the plain loops.
        let (g, dx) = analytic(&net, &x, &y);
        let fw = forward(&p, x.view(), &*r.f);
        let (_, dyhat) = mse(fw.yhat.view(), y.view());
        let rg = backward(&p, x.view(), &fw, dyhat.view(), &*r.df);
        let flat =
            RefParams { w1: rg.dw1.clone(), b1: rg.db1.clone(), w2: rg.dw2.clone(), b2: rg.db2.clone() }
                .flat();
        assert_close(&g, &flat, 1e-12, &format!("{what}: gradients vs reference"));
        assert_close2(dx.view(), rg.dx.view(), 1e-12, &format!("{what}: dX vs reference"));
    }
}

#[test]
fn gradients_relu() {
    gradients_for(Relu, RefAct::relu(), 100);
}

#[test]
fn gradients_leaky_relu() {
    // A slope far from the default, so that a slope ignored by the net would show.
    gradients_for(LeakyRelu { slope: 0.2 }, RefAct::leaky_relu(0.2), 200);
    gradients_for(LeakyRelu::default(), RefAct::leaky_relu(0.01), 250);
}

#[test]
fn gradients_sigmoid() {
    gradients_for(Sigmoid, RefAct::sigmoid(), 300);
}

#[test]
fn gradients_tanh() {
    gradients_for(Tanh, RefAct::tanh(), 400);
}

#[test]
fn gradients_identity() {
    gradients_for(Identity, RefAct::identity(), 500);
}

/// tanh with a wrong derivative (`1 − h` instead of `1 − h²`).
#[derive(Clone, Copy, Debug, Default)]
struct WrongTanh;

impl Activation for WrongTanh {
    const NAME: &'static str = "wrong_tanh";
    fn forward<F: Scalar>(&self, y: F) -> F {
        y.tanh()
    }
    fn backward<F: Scalar>(&self, _y: F, h: F, dh: F) -> F {
        dh * (F::one() - h)
    }
}

/// Both checkers see a wrong derivative: the assertions above can fail.
#[test]
fn a_wrong_derivative_is_caught() {
    let (p, x, y) = problem(600, 4, 3, 5, 2, MARGIN);
    let net = p.net(WrongTanh);
    let report = check_gradients(&net, x.view(), y.view(), &Mse, GradCheck::default()).unwrap();
    assert!(report.max_rel_error > 1e-2, "{report:?}");
    // W2 and b2 do not see the activation's derivative; W1, b1 and x do.
    assert!(report.per_tensor[2].1 < 1e-6 && report.per_tensor[3].1 < 1e-6, "{report:?}");
    assert!(["w1", "b1", "x"].contains(&report.worst.0), "{report:?}");
    let (rel, at) = own_fd_check(&net, &x, &y, 1e-5);
    assert!(rel > 1e-2, "own check missed the wrong derivative: {rel} at {at}");
}

/// The note's network: `new(3, 4, 2)` from `StdRng::seed_from_u64(42)` (ReLU), and the batch
/// of the crate's example; `biases` adds nonzero biases.
fn note_network(biases: bool) -> (TwoLayerNet<f64>, Array2<f64>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(42);
    let mut net = TwoLayerNet::<f64>::new(3, 4, 2, &mut rng).unwrap();
    if biases {
        let mut v = net.params_mut().view_mut();
        v.b1.assign(&array![0.3, -0.2, 0.1, -0.4]);
        v.b2.assign(&array![0.25, -0.5]);
    }
    let x = array![[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]];
    let y = array![[1.0, 0.0], [0.0, 1.0]];
    (net, x, y)
}

/// forward / loss / backward_with_dx / step, train_step, and the plain loops, for several
/// consecutive steps of the note's network: all agree to 1e-12.
#[test]
fn note_network_matches_reference() {
    let lr = 0.05;
    for biases in [false, true] {
        let (net, x, y) = note_network(biases);
        let r = RefAct::relu();
        let mut split = net.clone();
        let mut fused = net.clone();
        let mut p = RefParams::of(&net);
        assert!(kink_margin(&p, x.view()) > 1e-6, "ReLU mask must not depend on rounding");
        let mut dyhat = Array2::zeros((2, 2));
        let mut dx = Array2::zeros((2, 3));
        for step in 0..6 {
            let what = |s: &str| format!("biases {biases}, step {step}: {s}");
            let fw = forward(&p, x.view(), &*r.f);
            let (rl, rd) = mse(fw.yhat.view(), y.view());
            let rg = backward(&p, x.view(), &fw, rd.view(), &*r.df);
            let next = sgd(&p, &rg, lr);

            let yhat = split.forward(x.view()).unwrap();
            assert_close2(yhat, fw.yhat.view(), 1e-12, &what("yhat"));
            let l = Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut()).unwrap();
            assert_close(&[l], &[rl], 1e-12, &what("loss"));
            assert_close2(dyhat.view(), rd.view(), 1e-12, &what("dyhat"));
            let g = split.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap();
            assert_close2(g.w1(), rg.dw1.view(), 1e-12, &what("dW1"));
            assert_close1(g.b1(), rg.db1.view(), 1e-12, &what("db1"));
            assert_close2(g.w2(), rg.dw2.view(), 1e-12, &what("dW2"));
            assert_close1(g.b2(), rg.db2.view(), 1e-12, &what("db2"));
            assert_close2(dx.view(), rg.dx.view(), 1e-12, &what("dX"));
            // The gradients are not all zero (the comparison is not vacuous).
            assert!(max_abs(split.gradients().unwrap().as_slice()) > 1e-3, "{}", what("gradients vanish"));
            split.step(lr).unwrap();
            assert_close(split.params().as_slice(), &next.flat(), 1e-12, &what("params after step"));

            let lf = fused.train_step(x.view(), y.view(), &Mse, lr).unwrap();
            assert_close(&[lf], &[rl], 1e-12, &what("train_step loss"));
            assert_close(fused.params().as_slice(), &next.flat(), 1e-12, &what("params after train_step"));
            assert_close(
                fused.params().as_slice(),
                split.params().as_slice(),
                1e-12,
                &what("fused vs split"),
            );

            // The step moved the parameters by lr·dθ, which is not negligible.
            let moved = p.flat().iter().zip(&next.flat()).fold(0.0, |m: f64, (a, b)| m.max((a - b).abs()));
            assert!(moved > 1e-4, "{}", what("step too small to test"));
            p = next;
        }
    }
}

/// `∂ŷ/∂θ` for a θ that `ŷ` depends on linearly, by central differences through `forward`:
/// row `i·K + c`, column = index of θ; `set(net, j, v)` writes the j-th entry of θ.
fn fd_jacobian<A: Activation>(
    net: &TwoLayerNet<f64, A>,
    x: &Array2<f64>,
    entries: usize,
    get: impl Fn(&TwoLayerNet<f64, A>, usize) -> f64,
    set: impl Fn(&mut TwoLayerNet<f64, A>, usize, f64),
) -> Array2<f64> {
    let (n, k) = (x.nrows(), net.output_dim());
    let mut probe = net.clone();
    let mut j = Array2::zeros((n * k, entries));
    let eps = 1e-3;
    for e in 0..entries {
        let v = get(&probe, e);
        set(&mut probe, e, v + eps);
        let up = probe.forward(x.view()).unwrap().to_owned();
        set(&mut probe, e, v - eps);
        let down = probe.forward(x.view()).unwrap().to_owned();
        set(&mut probe, e, v);
        for (row, (u, d)) in up.iter().zip(&down).enumerate() {
            j[[row, e]] = (u - d) / (2.0 * eps);
        }
    }
    j
}

/// `Jᵀ·v` by plain loops.
fn jt_times(j: &Array2<f64>, v: &[f64]) -> Vec<f64> {
    assert_eq!(j.nrows(), v.len());
    (0..j.ncols()).map(|c| (0..j.nrows()).map(|r| j[[r, c]] * v[r]).sum()).collect()
}

fn flat2(a: ArrayView2<'_, f64>) -> Vec<f64> {
    a.iter().copied().collect()
}

/// The chain rule with explicit Jacobians: `Jᵀ·vec(dŷ)` for `J = ∂ŷ/∂H1`, `∂ŷ/∂W2`, `∂ŷ/∂b2`
/// (each also checked against finite differences of `forward`) equals `vec(dŷ·W2ᵀ)` and the
/// crate's dH1 (read through an identity activation), dW2 and db2.
#[test]
fn chain_rule_jacobians() {
    // N = D = 3 with X = I: with the identity activation H1 = W1 + b1 (row-wise), so
    // ∂ŷ/∂H1 = ∂ŷ/∂W1 and the crate's dW1 = Xᵀ·dY1 = dH1 exactly. Then a random X.
    let (n, d, h, k) = (3, 3, 4, 2);
    let (p, x_rand, _) = problem(700, n, d, h, k, 0.0);
    let eye = Array2::from_shape_fn((n, d), |(i, j)| if i == j { 1.0 } else { 0.0 });
    let mut rng = StdRng::seed_from_u64(701);
    let dyhat = uniform(&mut rng, n, k, 1.0);
    let v = flat2(dyhat.view());

    // ∂ŷ[i,c]/∂H1[j,h] = δij·W2[h,c]
    let mut jh = Array2::zeros((n * k, n * h));
    for i in 0..n {
        for c in 0..k {
            for hh in 0..h {
                jh[[i * k + c, i * h + hh]] = p.w2[[hh, c]];
            }
        }
    }
    let dh1 = jt_times(&jh, &v);
    let dh1_direct = matmul(dyhat.view(), transpose(p.w2.view()).view());
    assert_close(&dh1, &flat2(dh1_direct.view()), 1e-14, "Jᵀ·vec(dŷ) = vec(dŷ·W2ᵀ)");
    let dh1m = Array2::from_shape_vec((n, h), dh1.clone()).unwrap();

    for (x, exact) in [(&eye, true), (&x_rand, false)] {
        let mut net = p.net(Identity);
        let h1 = forward(&p, x.view(), &|y| y).h1;

        if exact {
            // J is the Jacobian of the crate's forward: ∂ŷ/∂H1 = ∂ŷ/∂W1 here.
            let fd = fd_jacobian(
                &net,
                x,
                d * h,
                |net, e| net.params().as_slice()[e],
                |net, e, v| net.params_mut().as_slice_mut()[e] = v,
            );
            assert_close2(fd.view(), jh.view(), 1e-9, "∂ŷ/∂H1 vs finite differences");
        }

        // ∂ŷ[i,c]/∂W2[hh,c'] = δcc'·H1[i,hh];  ∂ŷ[i,c]/∂b2[c'] = δcc'
        let mut jw2 = Array2::zeros((n * k, h * k));
        let mut jb2 = Array2::zeros((n * k, k));
        for i in 0..n {
            for c in 0..k {
                jb2[[i * k + c, c]] = 1.0;
                for hh in 0..h {
                    jw2[[i * k + c, hh * k + c]] = h1[[i, hh]];
                }
            }
        }
        let off_w2 = d * h + h;
        let off_b2 = off_w2 + h * k;
        let fd_w2 = fd_jacobian(
            &net,
            x,
            h * k,
            |net, e| net.params().as_slice()[off_w2 + e],
            |net, e, v| net.params_mut().as_slice_mut()[off_w2 + e] = v,
        );
        assert_close2(fd_w2.view(), jw2.view(), 1e-9, "∂ŷ/∂W2 vs finite differences");
        let fd_b2 = fd_jacobian(
            &net,
            x,
            k,
            |net, e| net.params().as_slice()[off_b2 + e],
            |net, e, v| net.params_mut().as_slice_mut()[off_b2 + e] = v,
        );
        assert_close2(fd_b2.view(), jb2.view(), 1e-9, "∂ŷ/∂b2 vs finite differences");

        let mut dx = Array2::zeros((n, d));
        net.forward(x.view()).unwrap();
        let g = net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap();
        assert_close(&flat2(g.w2()), &jt_times(&jw2, &v), 1e-12, "dW2 = Jᵀ·vec(dŷ)");
        assert_close(g.b2().as_slice().unwrap(), &jt_times(&jb2, &v), 1e-12, "db2 = Jᵀ·vec(dŷ)");
        if exact {
            assert_close(&flat2(g.w1()), &dh1, 1e-12, "dH1 (= dW1 with X = I) = Jᵀ·vec(dŷ)");
        }
        // Identity: dY1 = dH1, so dW1 = Xᵀ·dH1, db1 = Σ_rows dH1, dX = dH1·W1ᵀ.
        let xt = transpose(x.view());
        assert_close2(g.w1(), matmul(xt.view(), dh1m.view()).view(), 1e-12, "dW1 = Xᵀ·dH1");
        assert_close1(g.b1(), col_sums(dh1m.view()).view(), 1e-12, "db1 = Σ dH1");
        let w1t = transpose(p.w1.view());
        assert_close2(dx.view(), matmul(dh1m.view(), w1t.view()).view(), 1e-12, "dX = dH1·W1ᵀ");
    }
}

fn to_f32(a: &Array2<f64>) -> Array2<f32> {
    a.mapv(|v| v as f32)
}

fn widen(s: &[f32]) -> Vec<f64> {
    s.iter().map(|&v| f64::from(v)).collect()
}

/// `‖a − e‖₂ / ‖e‖₂`.
fn norm_rel(a: &[f64], e: &[f64]) -> f64 {
    assert_eq!(a.len(), e.len());
    let num: f64 = a.iter().zip(e).map(|(x, y)| (x - y) * (x - y)).sum();
    let den: f64 = e.iter().map(|y| y * y).sum();
    (num / den).sqrt()
}

/// The same network in f32 and f64 (parameters and data exactly representable in both): the
/// forward, the gradients, and several train_steps agree to f32 precision (normwise relative
/// 1e-5).
fn f32_vs_f64<A: Activation>(act: A, seed: u64) {
    let (p, x, y) = problem(seed, 7, 5, 6, 3, 1e-2);
    let round = |a: &Array2<f64>| a.mapv(|v| v as f32 as f64);
    let round1 = |a: &Array1<f64>| a.mapv(|v| v as f32 as f64);
    let p = RefParams { w1: round(&p.w1), b1: round1(&p.b1), w2: round(&p.w2), b2: round1(&p.b2) };
    let (x, y) = (round(&x), round(&y));
    let (x32, y32) = (to_f32(&x), to_f32(&y));
    let mut n64 = p.net(act.clone());
    let mut n32 = p.net_f32(act);
    assert_eq!(widen(n32.params().as_slice()), n64.params().as_slice(), "same starting parameters");

    let yhat64 = n64.forward(x.view()).unwrap().to_owned();
    let yhat32 = n32.forward(x32.view()).unwrap().to_owned();
    let rel = norm_rel(&widen(yhat32.as_slice().unwrap()), yhat64.as_slice().unwrap());
    assert!(rel < 1e-5, "yhat: {rel}");
    let d64 = Array2::from_elem((7, 3), 0.25);
    let d32 = to_f32(&d64);
    let g64 = n64.backward(x.view(), d64.view()).unwrap().as_slice().to_vec();
    let g32 = widen(n32.backward(x32.view(), d32.view()).unwrap().as_slice());
    let rel = norm_rel(&g32, &g64);
    assert!(rel < 1e-5, "gradients: {rel}");

    for step in 0..5 {
        let l64 = n64.train_step(x.view(), y.view(), &Mse, 0.05).unwrap();
        let l32 = n32.train_step(x32.view(), y32.view(), &Mse, 0.05).unwrap();
        assert!((f64::from(l32) - l64).abs() <= 1e-5 * l64.abs(), "step {step}: loss {l32} vs {l64}");
        let rel = norm_rel(&widen(n32.params().as_slice()), n64.params().as_slice());
        assert!(rel < 1e-5, "step {step}: params {rel}");
        // f32 really is f32: the two differ (by rounding), so the check is not comparing one
        // computation with itself.
        if step == 4 {
            assert!(rel > 0.0, "f32 and f64 bitwise equal after 5 steps");
        }
    }
}

#[test]
fn f32_agrees_with_f64() {
    f32_vs_f64(Relu, 800);
    f32_vs_f64(Tanh, 801);
}

/// Everything a net computes on the batch (`x`, `y`): ŷ, gradients, dX, the params after
/// `step`, and the train_step loss and params.
fn everything<A: Activation>(
    net: &mut TwoLayerNet<f64, A>,
    x: &Array2<f64>,
    y: &Array2<f64>,
) -> Vec<Vec<f64>> {
    let mut out = Vec::new();
    let mut dyhat = Array2::zeros(y.raw_dim());
    let mut dx = Array2::zeros(x.raw_dim());
    let yhat = net.forward(x.view()).unwrap();
    assert_eq!(yhat.dim(), y.dim());
    out.push(flat2(yhat));
    let yhat = net.forward(x.view()).unwrap();
    let l = Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut()).unwrap();
    out.push(vec![l]);
    out.push(net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut()).unwrap().as_slice().to_vec());
    out.push(flat2(dx.view()));
    net.step(0.1).unwrap();
    out.push(net.params().as_slice().to_vec());
    out.push(vec![net.train_step(x.view(), y.view(), &Mse, 0.1).unwrap()]);
    out.push(net.params().as_slice().to_vec());
    out
}

/// A smaller batch after a larger one (the workspace is reused, not regrown) gives what a fresh
/// net gives on it; so does a larger one after that.
#[test]
fn smaller_batch_after_larger_matches_fresh_net() {
    let (p, x_big, y_big) = problem(900, 9, 4, 6, 3, 1e-6);
    let mut rng = StdRng::seed_from_u64(901);
    let (x_small, y_small) = (uniform(&mut rng, 3, 4, 1.0), uniform(&mut rng, 3, 3, 1.0));
    let (x_mid, y_mid) = (uniform(&mut rng, 6, 4, 1.0), uniform(&mut rng, 6, 3, 1.0));

    let mut used = p.net(Tanh);
    everything(&mut used, &x_big, &y_big);
    assert_eq!(used.workspace_rows(), 9);
    for (x, y) in [(&x_small, &y_small), (&x_mid, &y_mid), (&x_big, &y_big), (&x_small, &y_small)] {
        let mut fresh = RefParams::of(&used).net(Tanh);
        let a = everything(&mut used, x, y);
        let b = everything(&mut fresh, x, y);
        assert_eq!(used.workspace_rows(), 9, "the workspace did not shrink or grow");
        assert_eq!(fresh.workspace_rows(), x.nrows());
        for (i, (a, b)) in a.iter().zip(&b).enumerate() {
            assert_close(a, b, 1e-13, &format!("batch {}: quantity {i}", x.nrows()));
        }
    }
}

/// `backward` with a batch size other than the last forward's is `NoForward`, naming both.
#[test]
fn backward_with_another_batch_size_is_no_forward() {
    let (p, x4, _) = problem(1000, 4, 3, 5, 2, 0.0);
    let mut rng = StdRng::seed_from_u64(1001);
    let x3 = uniform(&mut rng, 3, 3, 1.0);
    let (d4, d3) = (Array2::from_elem((4, 2), 0.5), Array2::from_elem((3, 2), 0.5));
    let mut net = p.net(Relu);

    net.forward(x4.view()).unwrap();
    assert_eq!(
        net.backward(x3.view(), d3.view()).unwrap_err(),
        Error::NoForward { batch: 3, cached: Some(4) }
    );
    // The forward pass over 4 rows is still there.
    net.backward(x4.view(), d4.view()).unwrap();

    net.forward(x3.view()).unwrap();
    let e = net.backward(x4.view(), d4.view()).unwrap_err();
    assert_eq!(e, Error::NoForward { batch: 4, cached: Some(3) });
    assert_eq!(e.to_string(), "backward on a batch of 4 rows, but the last forward pass had 3 rows");
    let mut dx = Array2::zeros((4, 3));
    assert!(matches!(
        net.backward_with_dx(x4.view(), d4.view(), dx.view_mut()),
        Err(Error::NoForward { batch: 4, cached: Some(3) })
    ));
    net.backward(x3.view(), d3.view()).unwrap();

    // A step changes the parameters, so the cached forward pass is gone.
    net.step(0.1).unwrap();
    assert_eq!(net.backward(x3.view(), d3.view()).unwrap_err(), Error::NoForward { batch: 3, cached: None });
    // So does a train_step, and a write through params_mut.
    net.forward(x3.view()).unwrap();
    net.train_step(x3.view(), d3.view(), &Mse, 0.1).unwrap();
    assert_eq!(net.backward(x3.view(), d3.view()).unwrap_err(), Error::NoForward { batch: 3, cached: None });
    net.forward(x3.view()).unwrap();
    net.params_mut().as_slice_mut()[0] += 1.0;
    assert_eq!(net.backward(x3.view(), d3.view()).unwrap_err(), Error::NoForward { batch: 3, cached: None });
}

/// The fused SGD step never stores the weight gradients, so `gradients()` after it is an
/// error, never stale values (it once left a mix of two batches there); the four-phase
/// `train_step_with` leaves the step's own gradients, those `backward` gives on that batch.
#[test]
fn gradients_after_a_step_are_the_steps_or_an_error() {
    let (mut net, x, y) = note_network(true);
    net.train_step(x.view(), y.view(), &Mse, 0.05).unwrap();
    assert_eq!(net.gradients().unwrap_err(), Error::NoGradients);

    let mut twin = net.clone();
    let mut dyhat = Array2::zeros(y.dim());
    let yhat = twin.forward(x.view()).unwrap();
    Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut()).unwrap();
    let expected = bits(twin.backward(x.view(), dyhat.view()).unwrap().as_slice());
    net.train_step_with(x.view(), y.view(), &Mse, &mut two_layer_net::Sgd::new(0.05)).unwrap();
    assert_eq!(bits(net.gradients().unwrap().as_slice()), expected);
}
