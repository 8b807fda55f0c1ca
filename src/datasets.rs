//! Small built-in datasets: two generated ones, and a real one shipped with the crate (the
//! UCI optical digits). Nothing is downloaded.

use ndarray::{Array1, Array2};
use rand::Rng;

use crate::scalar::Scalar;

/// The CS231n spiral: `classes` arms of `per_class` points each in 2-D, arm `j` at angles
/// `t = linspace(4j, 4(j+1), per_class) + 0.2·N(0, 1)` and radii `r = linspace(0, 1, per_class)`,
/// point `[r·sin t, r·cos t]`. Returns `X` (classes·per_class × 2, arm by arm) and the labels.
///
/// A linear classifier gets about 50% of the 3-class spiral right; a two-layer ReLU network
/// with 100 hidden units, 98%.
///
/// ```
/// use rand::{SeedableRng, rngs::StdRng};
/// let (x, labels) = two_layer_net::datasets::spiral::<f64, _>(100, 3, &mut StdRng::seed_from_u64(0));
/// assert_eq!((x.dim(), labels.len()), ((300, 2), 300));
/// ```
pub fn spiral<F: Scalar, R: Rng + ?Sized>(
    per_class: usize,
    classes: usize,
    rng: &mut R,
) -> (Array2<F>, Array1<usize>) {
    let n = per_class * classes;
    let mut x = Array2::zeros((n, 2));
    let mut labels = Array1::zeros(n);
    let step = if per_class > 1 { 1.0 / (per_class - 1) as f64 } else { 0.0 };
    for j in 0..classes {
        for i in 0..per_class {
            let row = j * per_class + i;
            let r = i as f64 * step;
            let t = 4.0 * (j as f64 + i as f64 * step) + 0.2 * f64::standard_normal(rng);
            x[[row, 0]] = F::cast(r * t.sin());
            x[[row, 1]] = F::cast(r * t.cos());
            labels[row] = j;
        }
    }
    (x, labels)
}

/// A noisy 1-D regression set: `x` uniform in [−3, 3], `y = sin(x) + 0.3·cos(2x) + noise·N(0, 1)`.
/// Returns `x` and `y`, both n×1, sorted by `x`.
///
/// ```
/// use rand::{SeedableRng, rngs::StdRng};
/// let (x, y) = two_layer_net::datasets::wave::<f32, _>(50, 0.1, &mut StdRng::seed_from_u64(0));
/// assert_eq!((x.dim(), y.dim()), ((50, 1), (50, 1)));
/// ```
pub fn wave<F: Scalar, R: Rng + ?Sized>(n: usize, noise: f64, rng: &mut R) -> (Array2<F>, Array2<F>) {
    let mut xs: Vec<f64> = (0..n).map(|_| 6.0 * rng.next_u64() as f64 / u64::MAX as f64 - 3.0).collect();
    xs.sort_by(f64::total_cmp);
    let x = Array2::from_shape_fn((n, 1), |(i, _)| F::cast(xs[i]));
    let y = Array2::from_shape_fn((n, 1), |(i, _)| {
        F::cast(wave_truth(xs[i]) + noise * f64::standard_normal(rng))
    });
    (x, y)
}

/// The noiseless function behind [`wave`]: `sin(x) + 0.3·cos(2x)`.
pub fn wave_truth(x: f64) -> f64 {
    x.sin() + 0.3 * (2.0 * x).cos()
}

/// The UCI optical recognition of handwritten digits (test set), as scikit-learn ships it
/// (`load_digits`): 1797 images of 8×8 pixels, each pixel a count 0–16 (as `F`, unscaled),
/// row by row, and their labels 0–9. Returns `X` (1797×64) and the labels, in the file's order.
///
/// By E. Alpaydin and C. Kaynak, UCI Machine Learning Repository (1998),
/// <https://doi.org/10.24432/C50P49>, under CC BY 4.0; the crate embeds an unchanged copy of
/// the values (`data/digits.bin`, 114 KiB; `data/README.md` says how it was made).
///
/// ```
/// let (x, labels) = two_layer_net::datasets::digits::<f32>();
/// assert_eq!((x.dim(), labels.len()), ((1797, 64), 1797));
/// assert!(x.iter().all(|&v| (0.0..=16.0).contains(&v)) && labels.iter().all(|&c| c < 10));
/// ```
pub fn digits<F: Scalar>() -> (Array2<F>, Array1<usize>) {
    const RECORD: usize = 65;
    static DIGITS: &[u8] = include_bytes!("../data/digits.bin");
    let n = DIGITS.len() / RECORD;
    let x = Array2::from_shape_fn((n, 64), |(i, j)| F::cast(f64::from(DIGITS[i * RECORD + j])));
    let labels = Array1::from_shape_fn(n, |i| usize::from(DIGITS[i * RECORD + 64]));
    (x, labels)
}
