//! What the benchmarks share: the shape, the problem every implementation is timed on, and
//! the GEMM-only floor (each product one `cblas_?gemm` call on buffers allocated once).
//! Every bench target compiles this module and uses part of it.
#![allow(dead_code)]

use std::ffi::c_int;

use cblas_sys::{CBLAS_LAYOUT, CBLAS_TRANSPOSE};
use two_layer_net::ndarray::Array2;
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{Init, Scalar, TwoLayerNet};

/// Batch rows N, inputs D, hidden units H, outputs K.
#[derive(Clone, Copy, Debug)]
pub struct Shape {
    pub n: usize,
    pub d: usize,
    pub h: usize,
    pub k: usize,
}

/// A He-initialized D→H→K network and a batch X (N×D), y (N×K) ~ N(0, 1), from seed 0.
pub fn problem<F: Scalar>(s: Shape) -> (TwoLayerNet<F>, Array2<F>, Array2<F>) {
    let mut rng = StdRng::seed_from_u64(0);
    let net = TwoLayerNet::<F>::with_init(s.d, s.h, s.k, Init::He, &mut rng).expect("valid shape");
    let x = Array2::from_shape_simple_fn((s.n, s.d), || F::standard_normal(&mut rng));
    let y = Array2::from_shape_simple_fn((s.n, s.k), || F::standard_normal(&mut rng));
    (net, x, y)
}

/// The operands of a step's five GEMMs, allocated once, dense row-major. Only the products
/// run: `Y1` stands in for `H1`, `ŷ` for `dŷ` and `dH1` for `dY1`, so the inputs never change
/// and every run does identical work.
pub struct Gemms<F> {
    s: Shape,
    x: Vec<F>,
    w1: Vec<F>,
    w2: Vec<F>,
    /// `Y1` / `H1`, N×H.
    y1: Vec<F>,
    /// `ŷ` / `dŷ`, N×K.
    yhat: Vec<F>,
    /// `dH1` / `dY1`, N×H.
    dh1: Vec<F>,
    /// `dW2`, H×K.
    dw2: Vec<F>,
    /// `dW1`, D×H.
    dw1: Vec<F>,
}

impl<F: Cblas> Gemms<F> {
    pub fn new(s: Shape) -> Self {
        let (net, x, _) = problem::<F>(s);
        let zeros = |len| vec![F::zero(); len];
        Gemms {
            s,
            x: x.iter().copied().collect(),
            w1: net.w1().iter().copied().collect(),
            w2: net.w2().iter().copied().collect(),
            y1: zeros(s.n * s.h),
            yhat: zeros(s.n * s.k),
            dh1: zeros(s.n * s.h),
            dw2: zeros(s.h * s.k),
            dw1: zeros(s.d * s.h),
        }
    }

    /// The two products of a forward pass.
    pub fn run_forward(&mut self) {
        let Shape { n, d, h, k } = self.s;
        F::gemm(false, false, [n, h, d], &self.x, &self.w1, &mut self.y1); //     Y1 = X·W1
        F::gemm(false, false, [n, k, h], &self.y1, &self.w2, &mut self.yhat); //  ŷ = H1·W2
    }

    /// The five products, in step order.
    pub fn run(&mut self) {
        let Shape { n, d, h, k } = self.s;
        F::gemm(false, false, [n, h, d], &self.x, &self.w1, &mut self.y1); //     Y1 = X·W1
        F::gemm(false, false, [n, k, h], &self.y1, &self.w2, &mut self.yhat); //  ŷ = H1·W2
        F::gemm(false, true, [n, h, k], &self.yhat, &self.w2, &mut self.dh1); //  dH1 = dŷ·W2ᵀ
        F::gemm(true, false, [h, k, n], &self.y1, &self.yhat, &mut self.dw2); //  dW2 = H1ᵀ·dŷ
        F::gemm(true, false, [d, h, n], &self.x, &self.dh1, &mut self.dw1); //    dW1 = Xᵀ·dY1
    }
}

/// `cblas_sgemm` / `cblas_dgemm` over dense row-major slices.
pub trait Cblas: Scalar {
    /// `c = op(a)·op(b)` (α = 1, β = 0) for `[m, n, k]`: `c` is m×n; `a` is stored m×k, or
    /// k×m when `ta` (read transposed); `b` is k×n, or n×k when `tb`.
    ///
    /// Panics when a slice's length does not match its dimensions or a dimension exceeds
    /// `c_int`.
    fn gemm(ta: bool, tb: bool, mnk: [usize; 3], a: &[Self], b: &[Self], c: &mut [Self]);
}

/// Checks the slice lengths of [`Cblas::gemm`] and returns the CBLAS arguments:
/// transposes, `[m, n, k]` and leading dimensions `[lda, ldb, ldc]`.
fn cblas_args(
    ta: bool,
    tb: bool,
    [m, n, k]: [usize; 3],
    [a, b, c]: [usize; 3],
) -> ([CBLAS_TRANSPOSE; 2], [c_int; 3], [c_int; 3]) {
    assert!(a == m * k && b == k * n && c == m * n, "slice lengths do not match [m, n, k]");
    let int = |v: usize| c_int::try_from(v).expect("dimension fits c_int");
    let trans = |t| if t { CBLAS_TRANSPOSE::CblasTrans } else { CBLAS_TRANSPOSE::CblasNoTrans };
    let lda = if ta { m } else { k };
    let ldb = if tb { k } else { n };
    ([trans(ta), trans(tb)], [int(m), int(n), int(k)], [int(lda), int(ldb), int(n)])
}

/// `impl Cblas for $t` through `$gemm` (`cblas_sgemm` or `cblas_dgemm`).
macro_rules! impl_cblas {
    ($t:ty, $gemm:path) => {
        impl Cblas for $t {
            fn gemm(ta: bool, tb: bool, mnk: [usize; 3], a: &[$t], b: &[$t], c: &mut [$t]) {
                let ([ta, tb], [m, n, k], [lda, ldb, ldc]) =
                    cblas_args(ta, tb, mnk, [a.len(), b.len(), c.len()]);
                // SAFETY: `cblas_args` checked that the dense row-major slices hold exactly m×k
                // (A), k×n (B) and m×n (C) elements with these leading dimensions, all fitting
                // `c_int`; `c` is a unique borrow, so it overlaps neither `a` nor `b`.
                unsafe {
                    $gemm(
                        CBLAS_LAYOUT::CblasRowMajor,
                        ta,
                        tb,
                        m,
                        n,
                        k,
                        1.0,
                        a.as_ptr(),
                        lda,
                        b.as_ptr(),
                        ldb,
                        0.0,
                        c.as_mut_ptr(),
                        ldc,
                    );
                }
            }
        }
    };
}

impl_cblas!(f32, cblas_sys::cblas_sgemm);
impl_cblas!(f64, cblas_sys::cblas_dgemm);
