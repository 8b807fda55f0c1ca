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
