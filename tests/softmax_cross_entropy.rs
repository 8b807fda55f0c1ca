//! Softmax cross-entropy: values and gradients against the direct formula, stability for large
//! logits in f32 and f64, a single class, invalid labels, and gradient checks through the
//! network, with and without L2.
//!
//! Tolerances written `1e-12` are "absolute below magnitude 1, relative above it", entry by
//! entry: `|actual − expected| ≤ 1e-12 · max(1, |expected|)`.

mod common;

use common::*;
use two_layer_net::ndarray::{Array1, Array2, array};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Error, GradCheck, L2, Loss, Optimizer, OptimizerState, Scalar, Slot, SoftmaxCrossEntropy, Tanh,
    TwoLayerNet, check_gradients,
};

/// An optimizer that records the gradients it is given and changes nothing.
#[derive(Default)]
struct Recorder {
    grads: Vec<Vec<f64>>,
}

impl Optimizer<f64> for Recorder {
    fn step(&mut self, slots: &mut [Slot<'_, f64>]) -> two_layer_net::Result<()> {
        self.grads.push(slots[0].grads().to_vec());
        Ok(())
    }
    fn state(&self) -> OptimizerState<f64> {
        OptimizerState {
            kind: "recorder".into(),
            hyperparameters: vec![],
            buffer_names: vec![],
            slots: vec![],
        }
    }
    fn set_state(&mut self, _state: OptimizerState<f64>) -> two_layer_net::Result<()> {
        Ok(())
    }
    fn learning_rate(&self) -> f64 {
        0.0
    }
    fn set_learning_rate(&mut self, _lr: f64) {}
}

/// Softmax cross-entropy of f64 logits straight from the definition (no max subtraction), and
/// its gradient `(p − onehot)/N`.
fn ce_direct(logits: &Array2<f64>, labels: &[usize]) -> (f64, Array2<f64>) {
    let (n, k) = logits.dim();
    let mut grad = Array2::zeros((n, k));
    let mut total = 0.0;
    for i in 0..n {
        let z: f64 = (0..k).map(|j| logits[[i, j]].exp()).sum();
        for j in 0..k {
            let p = logits[[i, j]].exp() / z;
            grad[[i, j]] = (p - if j == labels[i] { 1.0 } else { 0.0 }) / n as f64;
        }
        total -= (logits[[i, labels[i]]].exp() / z).ln();
    }
    (total / n as f64, grad)
}

/// `SoftmaxCrossEntropy` on `logits` (given in f64, computed in F), returned in f64.
fn ce<F: Scalar>(logits: &Array2<f64>, labels: &[usize]) -> two_layer_net::Result<(f64, Array2<f64>)> {
    let z = logits.mapv(F::cast);
    let labels = Array1::from(labels.to_vec());
    let mut d = Array2::<F>::zeros(z.raw_dim());
    let l = SoftmaxCrossEntropy.loss_and_grad(z.view(), labels.view(), d.view_mut())?;
    Ok((l.as_f64(), d.mapv(|v| v.as_f64())))
}

#[test]
fn softmax_ce_matches_direct_formula() {
    let mut rng = StdRng::seed_from_u64(20);
    let logits = uniform(&mut rng, 6, 5, 4.0);
    let labels = [0, 4, 2, 2, 1, 3];
    let (l_ref, g_ref) = ce_direct(&logits, &labels);
    let (l, g) = ce::<f64>(&logits, &labels).unwrap();
    assert!((l - l_ref).abs() <= 1e-12, "f64 loss {l} vs {l_ref}");
    assert_close_each(g.as_slice().unwrap(), g_ref.as_slice().unwrap(), 1e-12, "f64 dŷ");
    let (l32, g32) = ce::<f32>(&logits, &labels).unwrap();
    assert!((l32 - l_ref).abs() <= 1e-5, "f32 loss {l32} vs {l_ref}");
    assert_close_each(g32.as_slice().unwrap(), g_ref.as_slice().unwrap(), 1e-6, "f32 dŷ");
    // Each row of dŷ sums to 0 (Σp = 1).
    for row in g.rows() {
        assert!(row.sum().abs() < 1e-15, "{row}");
    }
}

/// Rows of large logits with their exact loss per row and gradient per row (before the 1/N).
fn large_logit_cases() -> Vec<(Vec<f64>, usize, f64, Vec<f64>)> {
    let ln2 = 2f64.ln();
    let ln3 = 3f64.ln();
    let sp1 = (1.0 + 1f64.exp()).ln(); // softplus(1) = −ln σ(−1)
    let sig = 1.0 / (1.0 + (-1f64).exp()); // σ(1)
    vec![
        (vec![1000.0, 0.0], 0, 0.0, vec![0.0, 0.0]),
        (vec![1000.0, 0.0], 1, 1000.0, vec![1.0, -1.0]),
        (vec![-1000.0, 1000.0], 0, 2000.0, vec![-1.0, 1.0]),
        (vec![3e4, -3e4], 1, 6e4, vec![1.0, -1.0]),
        (vec![-3e4, -3e4, -3e4], 2, ln3, vec![1.0 / 3.0, 1.0 / 3.0, -2.0 / 3.0]),
        (vec![3e4, 3e4], 1, ln2, vec![0.5, -0.5]),
        (vec![1000.0, 1000.0], 0, ln2, vec![-0.5, 0.5]),
        (vec![3e4, 30001.0], 0, sp1, vec![(1.0 - sig) - 1.0, sig]),
        (vec![-1000.0, -999.0], 1, (1.0 + (-1f64).exp()).ln(), vec![1.0 - sig, sig - 1.0]),
    ]
}

fn softmax_ce_large_logits<F: Scalar>(tol: f64) {
    for (row, label, loss, grad) in large_logit_cases() {
        let k = row.len();
        // As a batch of one, and as a batch of two (the row twice): same loss, gradient / 2.
        for n in [1usize, 2] {
            let logits = Array2::from_shape_fn((n, k), |(_, j)| row[j]);
            let (l, g) = ce::<F>(&logits, &vec![label; n]).unwrap();
            let what = format!("{} logits {row:?} label {label}, N = {n}", F::NAME);
            assert!(l.is_finite() && g.iter().all(|v| v.is_finite()), "{what}: loss {l}, dŷ {g}");
            assert!((l - loss).abs() <= tol * loss.max(1.0), "{what}: loss {l}, expected {loss}");
            let expected: Vec<f64> = (0..n).flat_map(|_| grad.iter().map(|v| v / n as f64)).collect();
            assert_close_each(g.as_slice().unwrap(), &expected, tol, &format!("{what}: dŷ"));
        }
    }
}

#[test]
fn softmax_ce_large_logits_f64() {
    softmax_ce_large_logits::<f64>(1e-12);
}

#[test]
fn softmax_ce_large_logits_f32() {
    softmax_ce_large_logits::<f32>(1e-6);
}

#[test]
fn softmax_ce_single_class_is_zero() {
    let logits = array![[5.0], [-1000.0], [0.0], [3e4]];
    for (l, g) in [ce::<f64>(&logits, &[0; 4]).unwrap(), ce::<f32>(&logits, &[0; 4]).unwrap()] {
        assert_eq!(l, 0.0);
        assert!(g.iter().all(|&v| v == 0.0), "{g}");
    }
}

#[test]
fn softmax_ce_invalid_label() {
    let logits = array![[0.1, 0.2, 0.3], [0.0, 1.0, 2.0], [1.0, 1.0, 1.0]];
    for (labels, row, label) in [([0usize, 3, 1], 1, 3), ([2, 1, 7], 2, 7), ([5, 3, 0], 0, 5)] {
        let labels = Array1::from(labels.to_vec());
        let mut d = Array2::from_elem((3, 3), 7.0);
        let err = SoftmaxCrossEntropy.loss_and_grad(logits.view(), labels.view(), d.view_mut()).unwrap_err();
        assert_eq!(err, Error::InvalidLabel { row, label, classes: 3 });
        assert!(d.iter().all(|&v| v == 7.0), "dyhat written on error: {d}");
    }
    // Also through a training step: nothing changes.
    let mut net = random_net(2, 4, 3, 21);
    let before = bits(net.params().as_slice());
    let x = array![[0.1, 0.2], [0.3, -0.4]];
    let err = net.train_step(x.view(), array![0usize, 3].view(), &SoftmaxCrossEntropy, 0.1).unwrap_err();
    assert_eq!(err, Error::InvalidLabel { row: 1, label: 3, classes: 3 });
    assert_eq!(bits(net.params().as_slice()), before);
}

#[test]
fn softmax_ce_gradient_check_through_network() {
    let mut rng = StdRng::seed_from_u64(22);
    let x = uniform(&mut rng, 5, 3, 1.0);
    let labels = array![0usize, 2, 1, 3, 2];
    // Tanh: no kink.
    let tanh = TwoLayerNet::<f64, Tanh>::new(3, 6, 4, &mut StdRng::seed_from_u64(23)).unwrap();
    let r =
        check_gradients(&tanh, x.view(), labels.view(), &SoftmaxCrossEntropy, GradCheck::default()).unwrap();
    assert!(r.max_rel_error < 1e-6, "tanh: {r:?}");
    assert_eq!(r.checked, tanh.params().len() + x.len());
    // ReLU, with every pre-activation well away from the kink.
    let relu = random_net(3, 6, 4, 24);
    let y1 = x.dot(&relu.w1()) + relu.b1();
    assert!(y1.iter().all(|v| v.abs() > 1e-3), "pick another seed: a pre-activation is near 0");
    let r =
        check_gradients(&relu, x.view(), labels.view(), &SoftmaxCrossEntropy, GradCheck::default()).unwrap();
    assert!(r.max_rel_error < 1e-6, "relu: {r:?}");
}

#[test]
fn l2_softmax_ce_gradient_matches_finite_differences() {
    // check_gradients sees the data loss only; the L2 term is checked here through the full
    // gradients that a training step hands to a (recording, non-updating) optimizer.
    let (d, h, k) = (3, 5, 3);
    let reg = 0.3;
    let mut rng = StdRng::seed_from_u64(25);
    let x = uniform(&mut rng, 4, d, 1.0);
    let labels = array![0usize, 2, 1, 1];
    let mut net = random_net(d, h, k, 26);
    let y1 = x.dot(&net.w1()) + net.b1();
    assert!(y1.iter().all(|v| v.abs() > 1e-3), "pick another seed: a pre-activation is near 0");
    let loss = L2::new(SoftmaxCrossEntropy, reg);
    let mut rec = Recorder::default();
    let l = net.train_step_with(x.view(), labels.view(), &loss, &mut rec).unwrap();
    let g = rec.grads.pop().unwrap();

    let total = |net: &mut TwoLayerNet<f64>| -> f64 {
        let mut dy = Array2::zeros((4, k));
        let yhat = net.forward(x.view()).unwrap();
        let data = SoftmaxCrossEntropy.loss_and_grad(yhat, labels.view(), dy.view_mut()).unwrap();
        let sq: f64 = net.w1().iter().chain(net.w2().iter()).map(|w| w * w).sum();
        data + 0.5 * reg * sq
    };
    assert!((total(&mut net) - l).abs() < 1e-12, "reported loss includes the penalty");
    let eps = 1e-5;
    for (i, &gi) in g.iter().enumerate() {
        let theta = net.params().as_slice()[i];
        net.params_mut().as_slice_mut()[i] = theta + eps;
        let up = total(&mut net);
        net.params_mut().as_slice_mut()[i] = theta - eps;
        let down = total(&mut net);
        net.params_mut().as_slice_mut()[i] = theta;
        let num = (up - down) / (2.0 * eps);
        let rel = (gi - num).abs() / (gi.abs() + num.abs()).max(1e-8);
        assert!(rel < 1e-6, "entry {i} {:?}: analytic {gi}, numeric {num}", net.params().locate(i));
    }
}
