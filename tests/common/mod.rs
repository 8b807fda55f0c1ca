//! A plain-loop f64 reference for the integration tests: forward, MSE, backward and SGD written
//! as nested loops over ndarray indexing, with no BLAS and no ndarray linear algebra, so that
//! the crate's CBLAS path is compared against something that shares none of its code.
//!
//! ```text
//! Y1 = X·W1 + b1    H1 = f(Y1)    ŷ = H1·W2 + b2
//! L = (1/N)·Σᵢⱼ (ŷ − y)²   dŷ = (2/N)(ŷ − y)
//! dW2 = H1ᵀ·dŷ   db2 = Σ_rows dŷ   dH1 = dŷ·W2ᵀ   dY1 = dH1 ⊙ f'(Y1)
//! dW1 = Xᵀ·dY1   db1 = Σ_rows dY1   dX = dY1·W1ᵀ   SGD: θ ← θ − lr·dθ
//! ```
//!
//! Beside the reference: random networks, tolerance checks and bit patterns shared by the test
//! crates.

// Each test crate uses a different subset of these helpers.
#![allow(dead_code)]

use std::any::Any;

use two_layer_net::ndarray::{Array1, Array2, ArrayView1, ArrayView2};
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::rand::{RngExt, SeedableRng};
use two_layer_net::{Activation, Scalar, TwoLayerNet};

/// An elementwise activation as two closures: `f(y)` and `f'(y)` (both of the pre-activation).
pub struct RefAct {
    pub name: &'static str,
    pub f: Box<dyn Fn(f64) -> f64>,
    pub df: Box<dyn Fn(f64) -> f64>,
    /// Whether `f'` jumps at 0 (finite differences must not straddle it).
    pub kink: bool,
}

impl RefAct {
    pub fn relu() -> Self {
        RefAct {
            name: "relu",
            f: Box::new(|y| if y > 0.0 { y } else { 0.0 }),
            df: Box::new(|y| if y > 0.0 { 1.0 } else { 0.0 }),
            kink: true,
        }
    }
    pub fn leaky_relu(slope: f64) -> Self {
        RefAct {
            name: "leaky_relu",
            f: Box::new(move |y| if y > 0.0 { y } else { slope * y }),
            df: Box::new(move |y| if y > 0.0 { 1.0 } else { slope }),
            kink: true,
        }
    }
    pub fn sigmoid() -> Self {
        fn s(y: f64) -> f64 {
            1.0 / (1.0 + (-y).exp())
        }
        RefAct { name: "sigmoid", f: Box::new(s), df: Box::new(|y| s(y) * (1.0 - s(y))), kink: false }
    }
    pub fn tanh() -> Self {
        RefAct {
            name: "tanh",
            f: Box::new(f64::tanh),
            df: Box::new(|y| 1.0 - y.tanh() * y.tanh()),
            kink: false,
        }
    }
    pub fn identity() -> Self {
        RefAct { name: "identity", f: Box::new(|y| y), df: Box::new(|_| 1.0), kink: false }
    }
}

/// `W1` (D×H), `b1` (H), `W2` (H×K), `b2` (K).
#[derive(Clone, Debug, PartialEq)]
pub struct RefParams {
    pub w1: Array2<f64>,
    pub b1: Array1<f64>,
    pub w2: Array2<f64>,
    pub b2: Array1<f64>,
}

/// What the forward pass keeps.
#[derive(Clone, Debug)]
pub struct RefForward {
    pub y1: Array2<f64>,
    pub h1: Array2<f64>,
    pub yhat: Array2<f64>,
}

/// Every gradient of the backward pass, the intermediate ones included.
#[derive(Clone, Debug)]
pub struct RefGrads {
    pub dw1: Array2<f64>,
    pub db1: Array1<f64>,
    pub dw2: Array2<f64>,
    pub db2: Array1<f64>,
    pub dx: Array2<f64>,
    pub dh1: Array2<f64>,
    pub dy1: Array2<f64>,
}

impl RefParams {
    /// `(D, H, K)`.
    pub fn dims(&self) -> (usize, usize, usize) {
        (self.w1.nrows(), self.w1.ncols(), self.w2.ncols())
    }

    /// Weights and biases uniform in `[-scale, scale)`.
    pub fn random(rng: &mut StdRng, d: usize, h: usize, k: usize, scale: f64) -> Self {
        RefParams {
            w1: uniform(rng, d, h, scale),
            b1: uniform(rng, 1, h, scale).row(0).to_owned(),
            w2: uniform(rng, h, k, scale),
            b2: uniform(rng, 1, k, scale).row(0).to_owned(),
        }
    }

    /// The parameters of an f64 network.
    pub fn of<A: Activation>(net: &TwoLayerNet<f64, A>) -> Self {
        RefParams {
            w1: net.w1().to_owned(),
            b1: net.b1().to_owned(),
            w2: net.w2().to_owned(),
            b2: net.b2().to_owned(),
        }
    }

    /// An f64 network with these parameters and the activation `act`.
    pub fn net<A: Activation>(&self, act: A) -> TwoLayerNet<f64, A> {
        TwoLayerNet::<f64>::from_params(self.w1.view(), self.b1.view(), self.w2.view(), self.b2.view())
            .expect("consistent shapes")
            .with_activation(act)
    }

    /// An f32 network with these parameters rounded to f32.
    pub fn net_f32<A: Activation>(&self, act: A) -> TwoLayerNet<f32, A> {
        let c2 = |a: &Array2<f64>| a.mapv(|v| v as f32);
        let c1 = |a: &Array1<f64>| a.mapv(|v| v as f32);
        TwoLayerNet::<f32>::from_params(
            c2(&self.w1).view(),
            c1(&self.b1).view(),
            c2(&self.w2).view(),
            c1(&self.b2).view(),
        )
        .expect("consistent shapes")
        .with_activation(act)
    }

    /// All parameters flattened in the crate's layout: `W1`, `b1`, `W2`, `b2`, each row-major.
    pub fn flat(&self) -> Vec<f64> {
        self.w1.iter().chain(&self.b1).chain(&self.w2).chain(&self.b2).copied().collect()
    }
}

/// A `rows × cols` matrix, entries uniform in `[-scale, scale)`.
pub fn uniform(rng: &mut StdRng, rows: usize, cols: usize, scale: f64) -> Array2<f64> {
    Array2::from_shape_fn((rows, cols), |_| rng.random_range(-scale..scale))
}

/// A D→H→K ReLU network with every parameter (biases included) drawn uniformly in [−1, 1)
/// from `seed`.
pub fn random_net(d: usize, h: usize, k: usize, seed: u64) -> TwoLayerNet<f64> {
    random_net_with(d, h, k, seed)
}

/// [`random_net`] with another activation.
pub fn random_net_with<A: Activation + Default>(
    d: usize,
    h: usize,
    k: usize,
    seed: u64,
) -> TwoLayerNet<f64, A> {
    RefParams::random(&mut StdRng::seed_from_u64(seed), d, h, k, 1.0).net(A::default())
}

/// `C = A·B` by the textbook triple loop.
pub fn matmul(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let (m, kk) = a.dim();
    let (kb, n) = b.dim();
    assert_eq!(kk, kb, "matmul inner dimensions");
    let mut c = Array2::zeros((m, n));
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0;
            for t in 0..kk {
                s += a[[i, t]] * b[[t, j]];
            }
            c[[i, j]] = s;
        }
    }
    c
}

/// `Aᵀ`, copied element by element.
pub fn transpose(a: ArrayView2<'_, f64>) -> Array2<f64> {
    let (m, n) = a.dim();
    let mut t = Array2::zeros((n, m));
    for i in 0..m {
        for j in 0..n {
            t[[j, i]] = a[[i, j]];
        }
    }
    t
}

/// `Σ_rows a`.
pub fn col_sums(a: ArrayView2<'_, f64>) -> Array1<f64> {
    let mut s = Array1::zeros(a.ncols());
    for i in 0..a.nrows() {
        for j in 0..a.ncols() {
            s[j] += a[[i, j]];
        }
    }
    s
}

/// `Y1 = X·W1 + b1`, `H1 = f(Y1)`, `ŷ = H1·W2 + b2`.
pub fn forward(p: &RefParams, x: ArrayView2<'_, f64>, f: &dyn Fn(f64) -> f64) -> RefForward {
    let (n, d) = x.dim();
    let (pd, h, k) = p.dims();
    assert_eq!(d, pd, "x columns");
    let mut y1 = Array2::zeros((n, h));
    let mut h1 = Array2::zeros((n, h));
    let mut yhat = Array2::zeros((n, k));
    for i in 0..n {
        for j in 0..h {
            let mut s = p.b1[j];
            for t in 0..d {
                s += x[[i, t]] * p.w1[[t, j]];
            }
            y1[[i, j]] = s;
            h1[[i, j]] = f(s);
        }
        for c in 0..k {
            let mut s = p.b2[c];
            for j in 0..h {
                s += h1[[i, j]] * p.w2[[j, c]];
            }
            yhat[[i, c]] = s;
        }
    }
    RefForward { y1, h1, yhat }
}

/// How far two f64 forward passes of a 1-Lipschitz activation (ReLU, tanh, …) through `p` may
/// differ, entry by entry, when each sums its products in another order (another BLAS
/// kernel, batch size or thread split): each sum of `n` terms is within `γₙ·Σ|terms|` of the
/// exact one (`γₙ ≈ n·u`, `u = ε/2`, whatever the order, FMA or blocking), the hidden layer's
/// error passes through `|W2|`, so each pass is within `(D+1 + H+1)·u·B` of the exact output,
/// where `B = (|X|·|W1| + |b1|)·|W2| + |b2|`; two passes, twice that.
pub fn reordering_bound(p: &RefParams, x: ArrayView2<'_, f64>) -> Array2<f64> {
    let abs = RefParams { w1: p.w1.abs(), b1: p.b1.abs(), w2: p.w2.abs(), b2: p.b2.abs() };
    let (d, h, _) = p.dims();
    let terms = (d + 1 + h + 1) as f64;
    forward(&abs, x.abs().view(), &|y| y).yhat * (terms * f64::EPSILON)
}

/// `L = (1/N)·Σᵢⱼ (ŷ − y)²` and `dŷ = (2/N)(ŷ − y)`.
pub fn mse(yhat: ArrayView2<'_, f64>, y: ArrayView2<'_, f64>) -> (f64, Array2<f64>) {
    assert_eq!(yhat.dim(), y.dim());
    let (n, k) = yhat.dim();
    let mut l = 0.0;
    let mut d = Array2::zeros((n, k));
    for i in 0..n {
        for c in 0..k {
            let r = yhat[[i, c]] - y[[i, c]];
            l += r * r;
            d[[i, c]] = 2.0 * r / n as f64;
        }
    }
    (l / n as f64, d)
}

/// Every gradient from the upstream `dŷ`, with `df = f'` of the pre-activation.
pub fn backward(
    p: &RefParams,
    x: ArrayView2<'_, f64>,
    fw: &RefForward,
    dyhat: ArrayView2<'_, f64>,
    df: &dyn Fn(f64) -> f64,
) -> RefGrads {
    let (n, d) = x.dim();
    let (_, h, k) = p.dims();
    assert_eq!(dyhat.dim(), (n, k), "dyhat shape");
    // dW2 = H1ᵀ·dŷ, db2 = Σ_rows dŷ
    let mut dw2 = Array2::zeros((h, k));
    let mut db2 = Array1::zeros(k);
    for i in 0..n {
        for c in 0..k {
            db2[c] += dyhat[[i, c]];
            for j in 0..h {
                dw2[[j, c]] += fw.h1[[i, j]] * dyhat[[i, c]];
            }
        }
    }
    // dH1 = dŷ·W2ᵀ, dY1 = dH1 ⊙ f'(Y1)
    let mut dh1 = Array2::zeros((n, h));
    let mut dy1 = Array2::zeros((n, h));
    for i in 0..n {
        for j in 0..h {
            let mut s = 0.0;
            for c in 0..k {
                s += dyhat[[i, c]] * p.w2[[j, c]];
            }
            dh1[[i, j]] = s;
            dy1[[i, j]] = s * df(fw.y1[[i, j]]);
        }
    }
    // dW1 = Xᵀ·dY1, db1 = Σ_rows dY1, dX = dY1·W1ᵀ
    let mut dw1 = Array2::zeros((d, h));
    let mut db1 = Array1::zeros(h);
    let mut dx = Array2::zeros((n, d));
    for i in 0..n {
        for j in 0..h {
            db1[j] += dy1[[i, j]];
            for t in 0..d {
                dw1[[t, j]] += x[[i, t]] * dy1[[i, j]];
                dx[[i, t]] += dy1[[i, j]] * p.w1[[t, j]];
            }
        }
    }
    RefGrads { dw1, db1, dw2, db2, dx, dh1, dy1 }
}

/// `θ ← θ − lr·dθ`.
pub fn sgd(p: &RefParams, g: &RefGrads, lr: f64) -> RefParams {
    let mut q = p.clone();
    for (t, &d) in q.w1.iter_mut().zip(&g.dw1) {
        *t -= lr * d;
    }
    for (t, &d) in q.b1.iter_mut().zip(&g.db1) {
        *t -= lr * d;
    }
    for (t, &d) in q.w2.iter_mut().zip(&g.dw2) {
        *t -= lr * d;
    }
    for (t, &d) in q.b2.iter_mut().zip(&g.db2) {
        *t -= lr * d;
    }
    q
}

/// `min |Y1|`: how far the closest pre-activation is from a kink at 0.
pub fn kink_margin(p: &RefParams, x: ArrayView2<'_, f64>) -> f64 {
    forward(p, x, &|y| y).y1.iter().fold(f64::INFINITY, |m, v| m.min(v.abs()))
}

/// A deterministic problem `(params, x, y)` from `seed`, with every pre-activation at least
/// `margin` away from 0 (redrawn until it is).
pub fn problem(
    seed: u64,
    n: usize,
    d: usize,
    h: usize,
    k: usize,
    margin: f64,
) -> (RefParams, Array2<f64>, Array2<f64>) {
    let mut rng = StdRng::seed_from_u64(seed);
    for _ in 0..1000 {
        let p = RefParams::random(&mut rng, d, h, k, 1.0);
        let x = uniform(&mut rng, n, d, 1.0);
        let y = uniform(&mut rng, n, k, 1.0);
        if kink_margin(&p, x.view()) >= margin {
            return (p, x, y);
        }
    }
    panic!("no draw of {n}x{d}x{h}x{k} keeps every pre-activation {margin} away from 0");
}

/// The largest of `values` (0 for none), and ∞ if one is NaN: `f64::max` drops a NaN, which
/// would let a NaN result pass a tolerance check.
pub fn worst(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |m: f64, v| if v.is_nan() { f64::INFINITY } else { m.max(v) })
}

/// `max |a − e|`, after checking the shapes agree (∞ if any difference is NaN).
pub fn max_abs_diff2(a: ArrayView2<'_, f64>, e: ArrayView2<'_, f64>) -> f64 {
    assert_eq!(a.dim(), e.dim(), "shapes differ");
    worst(a.iter().zip(e).map(|(x, y)| (x - y).abs()))
}

/// `max |a − e|` for vectors (∞ if any difference is NaN).
pub fn max_abs_diff1(a: ArrayView1<'_, f64>, e: ArrayView1<'_, f64>) -> f64 {
    assert_eq!(a.len(), e.len(), "lengths differ");
    worst(a.iter().zip(e).map(|(x, y)| (x - y).abs()))
}

/// `max |e|` (∞ if one is NaN).
pub fn max_abs(e: &[f64]) -> f64 {
    worst(e.iter().map(|v| v.abs()))
}

/// Asserts `max |a − e| ≤ tol · max(1, max |e|)`: absolute below magnitude 1, normwise relative
/// (∞-norm) above it.
#[track_caller]
pub fn assert_close(a: &[f64], e: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), e.len(), "{what}: lengths differ");
    let diff = worst(a.iter().zip(e).map(|(x, y)| (x - y).abs()));
    let scale = max_abs(e).max(1.0);
    assert!(
        diff <= tol * scale,
        "{what}: max |diff| = {diff:e} > {tol:e}·{scale}\nactual   {a:?}\nexpected {e:?}"
    );
}

/// [`assert_close`] for matrices (shapes must agree).
#[track_caller]
pub fn assert_close2(a: ArrayView2<'_, f64>, e: ArrayView2<'_, f64>, tol: f64, what: &str) {
    assert_eq!(a.dim(), e.dim(), "{what}: shapes differ");
    let (a, e): (Vec<f64>, Vec<f64>) = (a.iter().copied().collect(), e.iter().copied().collect());
    assert_close(&a, &e, tol, what);
}

/// [`assert_close`] for vectors.
#[track_caller]
pub fn assert_close1(a: ArrayView1<'_, f64>, e: ArrayView1<'_, f64>, tol: f64, what: &str) {
    let (a, e): (Vec<f64>, Vec<f64>) = (a.iter().copied().collect(), e.iter().copied().collect());
    assert_close(&a, &e, tol, what);
}

/// Asserts `|aᵢ − eᵢ| ≤ tol · max(1, |eᵢ|)` for every `i`, naming the first offending index:
/// absolute below magnitude 1, relative above it, entry by entry (stricter than
/// [`assert_close`] on entries much smaller than the largest).
#[track_caller]
pub fn assert_close_each(actual: &[f64], expected: &[f64], tol: f64, what: &str) {
    assert_eq!(actual.len(), expected.len(), "{what}: lengths");
    for (i, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (a - e).abs() <= tol * e.abs().max(1.0),
            "{what}[{i}]: got {a:e}, expected {e:e} (diff {:e})",
            (a - e).abs()
        );
    }
}

/// The bit patterns of a slice of f32 or f64, to compare for exact equality (NaN included).
/// An f32's own 32 bits (zero-extended), not those of its f64 widening, so that NaN payloads
/// count too.
pub fn bits<F: Scalar>(s: &[F]) -> Vec<u64> {
    s.iter()
        .map(|v| match (v as &dyn Any).downcast_ref::<f32>() {
            Some(x) => u64::from(x.to_bits()),
            None => v.as_f64().to_bits(),
        })
        .collect()
}
