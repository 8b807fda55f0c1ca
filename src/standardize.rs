//! Standardization, as scikit-learn's `StandardScaler`: fitted on the training set, applied to
//! every other set, and kept in the training state so that a loaded model sees its inputs
//! scaled the same way.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Zip};

use crate::checkpoint::CheckpointError;
use crate::error::{Error, Result, check_shape};
use crate::scalar::Scalar;
use crate::state::TrainingState;

/// `x ↦ (x − mean) / std` column by column, with the mean and the (population, `ddof = 0`)
/// standard deviation of each column of the data it was fitted on; a constant column gets
/// `std = 1`, so it maps to 0.
///
/// Constant as scikit-learn's `StandardScaler` decides it (`_is_constant_feature`): a
/// variance within rounding of zero, `var ≤ N·ε·var + (N·|mean|·ε)²` with ε the `f64`
/// epsilon (ten rows of 0.1 have a computed variance of 1.9e-34, not 0). So is a column whose
/// deviation is not a normal number in `F` (0 or subnormal: `[0, 1e-45]` in `f32`), which
/// would turn `transform` into ∞ and NaN. Every `std` is thus a normal number > 0, which is
/// what [`restore`](Self::restore) accepts.
///
/// ```
/// use two_layer_net::{Standardizer, ndarray::array};
///
/// let train = array![[1.0, 10.0], [3.0, 10.0]];
/// let scaler = Standardizer::fit(train.view())?;
/// assert_eq!(scaler.transform(train.view())?, array![[-1.0, 0.0], [1.0, 0.0]]);
/// assert_eq!(scaler.transform(array![[2.0, 11.0]].view())?, array![[0.0, 1.0]]);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Standardizer<F> {
    mean: Array1<F>,
    std: Array1<F>,
}

impl<F: Scalar> Standardizer<F> {
    /// The means and standard deviations of the columns of `x` (computed in `f64`, a column
    /// of values beyond 2⁴⁰⁰ divided by a power of two first, so that nothing overflows).
    ///
    /// Errors: [`Error::Empty`] for no rows or no columns; [`Error::NonFinite`] (`"x"`) for a
    /// NaN or infinite value.
    pub fn fit(x: ArrayView2<'_, F>) -> Result<Self> {
        let (n, d) = x.dim();
        if n == 0 || d == 0 {
            return Err(Error::Empty { operand: "x", actual: [n, d] });
        }
        if !x.iter().all(|v| v.is_finite()) {
            return Err(Error::NonFinite { what: "x" });
        }
        // A column of values beyond 2⁴⁰⁰ is computed divided by a power of two near its
        // largest (exact), so that neither its sum nor its squared deviations overflow (four
        // rows of 1e308 had a mean of ∞); any other column as it is, bit for bit.
        let scale: Array1<f64> = x
            .columns()
            .into_iter()
            .map(|c| {
                let max = c.fold(0.0f64, |m, v| m.max(v.as_f64().abs()));
                if max > 2f64.powi(400) { 2f64.powi(max.log2().floor() as i32) } else { 1.0 }
            })
            .collect();
        let mut mean = Array1::<f64>::zeros(d);
        for row in x.rows() {
            Zip::from(&mut mean).and(&row).and(&scale).for_each(|m, &v, &s| *m += v.as_f64() / s);
        }
        mean /= n as f64;
        let mut var = Array1::<f64>::zeros(d);
        for row in x.rows() {
            Zip::from(&mut var)
                .and(&row)
                .and(&mean)
                .and(&scale)
                .for_each(|sq, &v, &m, &s| *sq += (v.as_f64() / s - m).powi(2));
        }
        let n = n as f64;
        let std = Zip::from(&var).and(&mean).and(&scale).map_collect(|&s, &m, &scale| {
            let var = s / n;
            let eps = f64::EPSILON;
            // The bound scales as the variance does: the rule holds in the scaled units.
            let constant = var <= n * eps * var + (n * m.abs() * eps).powi(2);
            let sd = F::cast(var.sqrt() * scale);
            if constant || !sd.is_normal() { F::one() } else { sd }
        });
        Ok(Standardizer { mean: (mean * &scale).mapv(F::cast), std })
    }

    /// The column means.
    pub fn mean(&self) -> &Array1<F> {
        &self.mean
    }

    /// The column standard deviations (1 for a constant column).
    pub fn std(&self) -> &Array1<F> {
        &self.std
    }

    /// `(x − mean) / std`, as a new array.
    ///
    /// Errors: [`Error::ShapeMismatch`] if `x` has another number of columns.
    pub fn transform(&self, x: ArrayView2<'_, F>) -> Result<Array2<F>> {
        let mut out = x.to_owned();
        self.transform_in_place(out.view_mut())?;
        Ok(out)
    }

    /// `x ← (x − mean) / std`, in place.
    ///
    /// Errors: [`Error::ShapeMismatch`] if `x` has another number of columns.
    pub fn transform_in_place(&self, mut x: ArrayViewMut2<'_, F>) -> Result<()> {
        check_shape("x", [x.nrows(), x.ncols()], [x.nrows(), self.mean.len()])?;
        for mut row in x.rows_mut() {
            Zip::from(&mut row).and(&self.mean).and(&self.std).for_each(|v, &m, &s| {
                // `x − mean` overflows for values near the type's limit on both sides of the
                // mean; then each is divided first.
                let centred = *v - m;
                *v = if centred.is_finite() { centred / s } else { *v / s - m / s };
            });
        }
        Ok(())
    }

    /// Records the scaler in `state` as tensors `{name}.mean` and `{name}.std`.
    pub fn save(&self, state: &mut TrainingState<F>, name: &str) -> Result<(), CheckpointError> {
        let d = self.mean.len();
        state.set_tensor(&format!("{name}.mean"), &[d], &self.mean.to_vec())?;
        state.set_tensor(&format!("{name}.std"), &[d], &self.std.to_vec())
    }

    /// The scaler recorded as `name` in `state`.
    ///
    /// Errors: [`CheckpointError::Entry`] if a tensor is missing, or a deviation is not a
    /// normal number > 0 (which [`fit`](Self::fit) never gives); [`CheckpointError::Shape`] if
    /// they are not two vectors of one length.
    pub fn restore(state: &TrainingState<F>, name: &str) -> Result<Self, CheckpointError> {
        let get = |part: &str| {
            let key = format!("{name}.{part}");
            state.tensor(&key).map(|(shape, v)| (shape.to_vec(), v.to_vec())).ok_or(CheckpointError::Entry {
                name: key,
                expected: "a vector".into(),
                found: None,
            })
        };
        let ((mean_shape, mean), (std_shape, std)) = (get("mean")?, get("std")?);
        if mean_shape.len() != 1 {
            return Err(CheckpointError::Shape {
                tensor: format!("{name}.mean"),
                expected: vec![mean.len()],
                found: mean_shape,
            });
        }
        if std_shape != mean_shape {
            return Err(CheckpointError::Shape {
                tensor: format!("{name}.std"),
                expected: mean_shape,
                found: std_shape,
            });
        }
        if let Some(bad) = std.iter().find(|s| !(s.is_normal() && **s > F::zero())) {
            return Err(CheckpointError::Entry {
                name: format!("{name}.std"),
                expected: "standard deviations that are normal numbers > 0".into(),
                found: Some(bad.to_string()),
            });
        }
        Ok(Standardizer { mean: Array1::from(mean), std: Array1::from(std) })
    }
}
