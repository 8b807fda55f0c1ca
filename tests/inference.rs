//! Inference through `&self`: shared by threads, each with its own `Scratch`; predictions,
//! probabilities, classes and a loss-only evaluation, each equal to what the training path
//! computes.

mod common;

use common::{RefParams, bits, reordering_bound};
use two_layer_net::ndarray::{Array1, Array2, Axis};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{Error, L2, Mse, Scratch, SoftmaxCrossEntropy, Tanh, TwoLayerNet, datasets};

fn net() -> TwoLayerNet<f64> {
    TwoLayerNet::<f64>::new(2, 16, 3, &mut StdRng::seed_from_u64(4)).unwrap()
}

#[test]
fn predict_through_a_shared_reference_equals_forward() {
    let (x, _) = datasets::spiral::<f64, _>(20, 3, &mut StdRng::seed_from_u64(1));
    let mut net = net();
    let shared = net.predict(x.view()).unwrap();
    let cached = net.forward(x.view()).unwrap().to_owned();
    assert_eq!(bits(shared.as_slice().unwrap()), bits(cached.as_slice().unwrap()));
    // Another activation goes through the same in-place path.
    let mut tanh = net.clone().with_activation(Tanh);
    let shared = tanh.predict(x.view()).unwrap();
    assert_eq!(shared, tanh.forward(x.view()).unwrap());
}

/// Threads share one network, each with its own scratch. A batch's prediction is bitwise the
/// same call made on one thread; rows predicted within batches of another size may differ in
/// their last bits (OpenBLAS's kernels may sum in another order for another M), within the
/// bound that reordering a sum allows.
#[test]
fn threads_share_one_network() {
    let (x, _) = datasets::spiral::<f64, _>(50, 3, &mut StdRng::seed_from_u64(2));
    let net = net();
    let full = net.predict(x.view()).unwrap();
    let bound = reordering_bound(&RefParams::of(&net), x.view());
    let rows_of = |i: usize, t: usize| 1 + (i * 7 + t) % x.nrows();
    // Each batch as one thread computes it, alone.
    let alone: Vec<Array2<f64>> =
        (0..50).map(|i| net.predict(x.slice_axis(Axis(0), (0..rows_of(i, 0)).into())).unwrap()).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (net, x, full, bound, alone) = (&net, &x, &full, &bound, &alone);
                s.spawn(move || {
                    let mut scratch = Scratch::new();
                    let mut last = Array2::zeros((0, 0));
                    for (i, alone) in alone.iter().enumerate() {
                        // Batches of different sizes through the same scratch.
                        let rows = rows_of(i, t);
                        let yhat =
                            net.forward_with(x.slice_axis(Axis(0), (0..rows).into()), &mut scratch).unwrap();
                        if t == 0 {
                            assert_eq!(bits(yhat.as_slice().unwrap()), bits(alone.as_slice().unwrap()));
                        }
                        for ((a, e), b) in
                            yhat.iter().zip(full.slice_axis(Axis(0), (0..rows).into())).zip(bound)
                        {
                            assert!((a - e).abs() <= *b, "{rows} rows: {a:e} against {e:e}, bound {b:e}");
                        }
                        last = yhat.to_owned();
                    }
                    last
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap().nrows() >= 1);
        }
    });
}

#[test]
fn probabilities_and_classes() {
    let (x, labels) = datasets::spiral::<f64, _>(30, 3, &mut StdRng::seed_from_u64(3));
    let net = net();
    let yhat = net.predict(x.view()).unwrap();
    let p = net.predict_proba(x.view()).unwrap();
    for (row, logits) in p.rows().into_iter().zip(yhat.rows()) {
        assert!((row.sum() - 1.0).abs() < 1e-12);
        let z: f64 = logits.iter().map(|v| v.exp()).sum();
        for (&pi, &li) in row.iter().zip(logits) {
            assert!((pi - li.exp() / z).abs() < 1e-12);
        }
    }
    let classes = net.predict_classes(x.view()).unwrap();
    let argmax: Array1<usize> = yhat
        .rows()
        .into_iter()
        .map(|r| (0..r.len()).fold(0, |b, i| if r[i] > r[b] { i } else { b }))
        .collect();
    assert_eq!(classes, argmax);
    let right = classes.iter().zip(&labels).filter(|(c, l)| c == l).count();
    assert_eq!(net.accuracy(x.view(), labels.view()).unwrap(), right as f64 / labels.len() as f64);
}

/// `evaluate` is the data loss a training step reports before its update; with L2 the step
/// reports it plus `penalty`.
#[test]
fn evaluate_is_the_training_steps_loss_without_a_step() {
    let (x, labels) = datasets::spiral::<f64, _>(30, 3, &mut StdRng::seed_from_u64(5));
    let mut net = net();
    let before = net.params().clone();
    let l = net.evaluate(x.view(), labels.view(), &SoftmaxCrossEntropy).unwrap();
    assert_eq!(net.params(), &before, "evaluate changes nothing");
    let loss = L2::new(SoftmaxCrossEntropy, 1e-2);
    let penalty = net.penalty(&loss);
    assert!(penalty > 0.0);
    let stepped = net.train_step(x.view(), labels.view(), &loss, 0.1).unwrap();
    assert_eq!(stepped.to_bits(), (l + penalty).to_bits());

    let y = Array2::from_shape_fn((x.nrows(), 3), |(i, j)| (i + j) as f64 * 0.01);
    let mut scratch = Scratch::new();
    let l = net.evaluate_with(x.view(), y.view(), &Mse, &mut scratch).unwrap();
    assert_eq!(l.to_bits(), net.train_step(x.view(), y.view(), &Mse, 0.0).unwrap().to_bits());
}

#[test]
fn bad_input_is_a_typed_error() {
    let net = net();
    let wide = Array2::<f64>::zeros((3, 5));
    assert_eq!(
        net.predict(wide.view()).unwrap_err(),
        Error::ShapeMismatch { operand: "x", expected: [3, 2], actual: [3, 5] }
    );
    let empty = Array2::<f64>::zeros((0, 2));
    assert_eq!(net.predict_proba(empty.view()).unwrap_err(), Error::Empty { operand: "x", actual: [0, 2] });
    let x = Array2::<f64>::zeros((4, 2));
    let labels = Array1::from(vec![0, 1, 3, 0]);
    assert!(matches!(
        net.evaluate(x.view(), labels.view(), &SoftmaxCrossEntropy).unwrap_err(),
        Error::InvalidLabel { row: 2, label: 3, classes: 3 }
    ));
    assert!(matches!(
        net.accuracy(x.view(), labels.slice(two_layer_net::ndarray::s![..3])).unwrap_err(),
        Error::ShapeMismatch { .. }
    ));
}

/// Inference returns finite numbers or an error, as scikit-learn's `predict` refuses NaN: a
/// row with a NaN is refused by every `&self` method (it was class 0, and accuracy 1.0 with
/// labels 0), and the same cell reaches `ŷ` through the training building block `forward`,
/// as documented.
#[test]
fn a_non_finite_row_is_refused_by_every_inference_method() {
    let net = net();
    let mut x = Array2::<f64>::zeros((3, 2));
    for v in [f64::NAN, f64::INFINITY] {
        x[[1, 0]] = v;
        let refused = Error::NonFinite { what: "y1" };
        assert_eq!(net.predict(x.view()).unwrap_err(), refused);
        assert_eq!(net.predict_proba(x.view()).unwrap_err(), refused);
        assert_eq!(net.predict_classes(x.view()).unwrap_err(), refused);
        assert_eq!(net.forward_with(x.view(), &mut Scratch::new()).unwrap_err(), refused);
        let labels = Array1::zeros(3);
        assert_eq!(net.accuracy(x.view(), labels.view()).unwrap_err(), refused);
        assert_eq!(net.evaluate(x.view(), labels.view(), &SoftmaxCrossEntropy).unwrap_err(), refused);
        let mut own = net.clone();
        assert!(own.forward(x.view()).unwrap().row(1).iter().all(|v| !v.is_finite()));
    }
    // A NaN target gives a loss that is not a number: refused too.
    let x = Array2::<f64>::zeros((3, 2));
    let mut y = Array2::<f64>::zeros((3, 3));
    y[[2, 2]] = f64::NAN;
    assert_eq!(net.evaluate(x.view(), y.view(), &Mse).unwrap_err(), Error::NonFinite { what: "loss" });
}

/// `accuracy` checks the labels as `evaluate` does: a label ≥ K is an error, not a miss.
#[test]
fn accuracy_refuses_a_label_beyond_the_classes() {
    let net = TwoLayerNet::<f64>::new(2, 4, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    let x = Array2::<f64>::ones((3, 2));
    let labels = Array1::from(vec![0, 7, usize::MAX]);
    let refused = Error::InvalidLabel { row: 1, label: 7, classes: 2 };
    assert_eq!(net.accuracy(x.view(), labels.view()).unwrap_err(), refused);
    assert_eq!(net.evaluate(x.view(), labels.view(), &SoftmaxCrossEntropy).unwrap_err(), refused);
}

/// A logit that overflows to +∞ (an f32 net with large weights) is refused by
/// `predict_proba`, rather than given as a row of NaN; `predict` and `predict_classes` say the
/// same.
#[test]
fn an_infinite_logit_is_refused() {
    let mut net = TwoLayerNet::<f32>::new(2, 4, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    net.params_mut().as_slice_mut().fill(1e20);
    let x = Array2::<f32>::from_elem((1, 2), 1e5);
    let mut own = net.clone();
    assert!(own.forward(x.view()).unwrap().iter().all(|v| *v == f32::INFINITY), "the logits overflow");
    let refused = Error::NonFinite { what: "yhat" };
    assert_eq!(net.predict_proba(x.view()).unwrap_err(), refused);
    assert_eq!(net.predict(x.view()).unwrap_err(), refused);
    assert_eq!(net.predict_classes(x.view()).unwrap_err(), refused);
}
