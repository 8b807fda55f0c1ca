//! The update rule: plain SGD, `θ ← θ − lr·dθ`, over the flat parameter buffer.

use crate::scalar::Scalar;

/// `θ ← θ − lr·dθ` elementwise over two buffers of the same layout.
pub(crate) fn sgd<F: Scalar>(theta: &mut [F], dtheta: &[F], lr: F) {
    for (t, &d) in theta.iter_mut().zip(dtheta) {
        *t -= lr * d;
    }
}
