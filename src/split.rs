//! Holding data out: a validation (or test) set cut off the examples with a seeded shuffle,
//! stratified by class for labels.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

use crate::error::{Error, Result, check_shape};
use crate::scalar::Scalar;

/// Two parts of a data set, `(training, held out)`, each as `(x, targets)`.
pub type Split<F, T> = ((Array2<F>, T), (Array2<F>, T));

/// The rows of `x` and `y` (N×K targets) split into `((x_train, y_train), (x_held, y_held))`,
/// with `round(fraction·N)` rows held out, chosen by a shuffle seeded with `seed`; both parts
/// keep the rows' original order.
///
/// Errors: [`Error::ShapeMismatch`] if `y` has another number of rows; [`Error::Empty`]
/// (`"split"`) unless `fraction` leaves at least one row on each side.
pub fn split<F: Scalar>(
    x: ArrayView2<'_, F>,
    y: ArrayView2<'_, F>,
    fraction: f64,
    seed: u64,
) -> Result<Split<F, Array2<F>>> {
    check_shape("y", [y.nrows(), 1], [x.nrows(), 1])?;
    let mut order: Vec<usize> = (0..x.nrows()).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let held = held_out(x.nrows(), fraction)?;
    let (mut test, mut train) = (order[..held].to_vec(), order[held..].to_vec());
    test.sort_unstable();
    train.sort_unstable();
    let pick = |idx: &[usize]| (x.select(Axis(0), idx), y.select(Axis(0), idx));
    Ok((pick(&train), pick(&test)))
}

/// [`split`] for class labels, stratified: each class gives `round(fraction·n_c)` of its
/// `n_c` examples to the held-out part, so both parts keep the class proportions.
///
/// Errors: [`Error::ShapeMismatch`] if `labels` has another length; [`Error::Empty`]
/// (`"split"`) unless each side gets at least one row.
///
/// ```
/// use two_layer_net::{datasets, split_stratified, rand::{SeedableRng, rngs::StdRng}};
///
/// let (x, labels) = datasets::spiral::<f64, _>(40, 3, &mut StdRng::seed_from_u64(0));
/// let ((x_train, y_train), (x_val, y_val)) = split_stratified(x.view(), labels.view(), 0.25, 7)?;
/// assert_eq!((x_train.nrows(), x_val.nrows()), (90, 30));
/// assert_eq!(y_val.iter().filter(|&&c| c == 2).count(), 10);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
pub fn split_stratified<F: Scalar>(
    x: ArrayView2<'_, F>,
    labels: ArrayView1<'_, usize>,
    fraction: f64,
    seed: u64,
) -> Result<Split<F, Array1<usize>>> {
    check_shape("labels", [1, labels.len()], [1, x.nrows()])?;
    held_out(x.nrows(), fraction)?;
    let mut rng = StdRng::seed_from_u64(seed);
    // The rows grouped by label (a stable sort: each class's rows stay in their order), so
    // the classes are walked in O(N log N) whatever the label values, never from 0 up to
    // the largest label.
    let mut by_class: Vec<usize> = (0..labels.len()).collect();
    by_class.sort_by_key(|&i| labels[i]);
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for members in by_class.chunk_by_mut(|&a, &b| labels[a] == labels[b]) {
        members.shuffle(&mut rng);
        let held = ((fraction * members.len() as f64).round() as usize).min(members.len());
        test.extend_from_slice(&members[..held]);
        train.extend_from_slice(&members[held..]);
    }
    if train.is_empty() || test.is_empty() {
        return Err(Error::Empty { operand: "split", actual: [train.len(), test.len()] });
    }
    test.sort_unstable();
    train.sort_unstable();
    let pick = |idx: &[usize]| (x.select(Axis(0), idx), labels.select(Axis(0), idx));
    Ok((pick(&train), pick(&test)))
}

/// Rows held out of `n` for `fraction`, at least one on each side.
fn held_out(n: usize, fraction: f64) -> Result<usize> {
    let held = (fraction * n as f64).round();
    if !(held >= 1.0 && held < n as f64) {
        return Err(Error::Empty { operand: "split", actual: [n, held.max(0.0).min(n as f64) as usize] });
    }
    Ok(held as usize)
}
