//! `fit`: reproducibility bit for bit, batching (a smaller last batch, a batch larger than the
//! data), early stop from the callback, accuracy reported for labels only, and errors: bad
//! targets fail before any step, a non-finite step stops at its epoch and step with the
//! parameters of the last good step, a zero batch size.

mod common;

use std::ops::ControlFlow;

use common::*;
use two_layer_net::ndarray::{Array1, Array2, s};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Activation, Adam, Epoch, Error, Fit, Init, L2, Momentum, Mse, Progress, Relu, Sgd, SoftmaxCrossEntropy,
    Tanh, TwoLayerNet, accuracy, fit,
};

fn quiet(epochs: usize, batch_size: usize, shuffle: bool, seed: u64) -> Fit {
    Fit { epochs, batch_size, shuffle, seed, progress: Progress::Off }
}

fn cont(_: &Epoch) -> ControlFlow<()> {
    ControlFlow::Continue(())
}

/// `fit` on `labels` with softmax cross-entropy and SGD at lr 0.1, every epoch continued.
fn fit_ce<A: Activation>(
    net: &mut TwoLayerNet<f64, A>,
    x: &Array2<f64>,
    labels: &Array1<usize>,
    cfg: &Fit,
) -> Result<Vec<Epoch>, Error> {
    fit(net, x.view(), labels.view(), &SoftmaxCrossEntropy, &mut Sgd::new(0.1), cfg, cont)
}

/// A small classification set: N×3 inputs, labels in 0..3.
fn class_data(n: usize, seed: u64) -> (Array2<f64>, Array1<usize>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = uniform(&mut rng, n, 3, 1.0);
    let labels = x
        .rows()
        .into_iter()
        .map(|r| {
            if r[0] > 0.3 {
                0
            } else if r[1] > 0.0 {
                1
            } else {
                2
            }
        })
        .collect();
    (x, labels)
}

#[test]
fn fit_is_reproducible_bit_for_bit() {
    let (x, labels) = class_data(40, 30);
    let run = |shuffle_seed: u64| {
        let mut net =
            TwoLayerNet::<f64>::with_init(3, 8, 3, Init::He, &mut StdRng::seed_from_u64(31)).unwrap();
        let cfg = quiet(4, 7, true, shuffle_seed);
        let mut opt = Momentum::new(0.1, 0.9);
        let hist =
            fit(&mut net, x.view(), labels.view(), &SoftmaxCrossEntropy, &mut opt, &cfg, cont).unwrap();
        (
            bits(net.params().as_slice()),
            hist.iter().map(|e| (e.loss.to_bits(), e.accuracy)).collect::<Vec<_>>(),
        )
    };
    let (p1, h1) = run(5);
    let (p2, h2) = run(5);
    assert_eq!(p1, p2, "same seeds, different parameters");
    assert_eq!(h1, h2, "same seeds, different epoch losses");
    assert_eq!(h1.len(), 4);
    let (p3, h3) = run(6);
    assert_ne!(p1, p3, "a different shuffle seed gave the same parameters");
    assert_ne!(h1, h3);
}

#[test]
fn fit_last_batch_smaller() {
    // N = 10, batch 4, no shuffle: steps of 4, 4, 2, exactly as three train_steps on slices.
    let mut rng = StdRng::seed_from_u64(32);
    let x = uniform(&mut rng, 10, 3, 1.0);
    let y = uniform(&mut rng, 10, 2, 1.0);
    let mut net = random_net(3, 5, 2, 33);
    let mut manual = net.clone();
    let hist =
        fit(&mut net, x.view(), y.view(), &Mse, &mut Sgd::new(0.05), &quiet(2, 4, false, 0), cont).unwrap();
    assert_eq!(hist.len(), 2);
    for (epoch, report) in hist.iter().enumerate() {
        let mut total = 0.0;
        for (lo, hi) in [(0, 4), (4, 8), (8, 10)] {
            let l = manual.train_step(x.slice(s![lo..hi, ..]), y.slice(s![lo..hi, ..]), &Mse, 0.05).unwrap();
            total += l * (hi - lo) as f64;
        }
        assert_eq!(report.epoch, epoch);
        assert!(
            (report.loss - total / 10.0).abs() <= 1e-12,
            "epoch {epoch}: {} vs {}",
            report.loss,
            total / 10.0
        );
        assert_eq!(report.accuracy, None, "Mse targets have no accuracy");
    }
    assert_eq!(bits(net.params().as_slice()), bits(manual.params().as_slice()));
}

#[test]
fn fit_batch_larger_than_data_is_one_full_batch() {
    let (x, labels) = class_data(9, 34);
    let mut net = random_net(3, 5, 3, 35);
    let mut manual = net.clone();
    let hist = fit_ce(&mut net, &x, &labels, &quiet(1, 100, false, 0)).unwrap();
    let acc0 = accuracy(&manual, x.view(), labels.view()).unwrap();
    let l = manual.train_step(x.view(), labels.view(), &SoftmaxCrossEntropy, 0.1).unwrap();
    assert_eq!(hist[0].loss.to_bits(), l.to_bits());
    // Accuracy is counted at the step, before its update: here, that of the initial network.
    assert_eq!(hist[0].accuracy, Some(acc0));
    assert_eq!(bits(net.params().as_slice()), bits(manual.params().as_slice()));
}

#[test]
fn fit_on_epoch_break_stops_early() {
    let (x, labels) = class_data(20, 36);
    let mut net = random_net(3, 5, 3, 37);
    let mut reference = net.clone();
    let mut seen = Vec::new();
    let cfg = quiet(10, 6, true, 3);
    let hist = fit(&mut net, x.view(), labels.view(), &SoftmaxCrossEntropy, &mut Sgd::new(0.1), &cfg, |e| {
        seen.push(e.epoch);
        if e.epoch == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
    })
    .unwrap();
    assert_eq!(seen, [0, 1, 2]);
    assert_eq!(hist.len(), 3);
    assert_eq!(hist.iter().map(|e| e.epoch).collect::<Vec<_>>(), [0, 1, 2]);
    // Same as asking for 3 epochs.
    let cfg3 = Fit { epochs: 3, ..cfg };
    fit_ce(&mut reference, &x, &labels, &cfg3).unwrap();
    assert_eq!(bits(net.params().as_slice()), bits(reference.params().as_slice()));
}

#[test]
fn fit_reports_accuracy_for_labels_only() {
    let (x, labels) = class_data(30, 38);
    let y = Array2::from_shape_fn((30, 3), |(i, j)| if labels[i] == j { 1.0 } else { 0.0 });
    let mut net = random_net(3, 6, 3, 39);
    let h = fit_ce(&mut net, &x, &labels, &quiet(3, 8, true, 1)).unwrap();
    assert!(h.iter().all(|e| e.accuracy.is_some_and(|a| (0.0..=1.0).contains(&a))), "{h:?}");
    // An L2-wrapped classifier loss still reports accuracy.
    let h = fit(
        &mut net,
        x.view(),
        labels.view(),
        &L2::new(SoftmaxCrossEntropy, 1e-3),
        &mut Sgd::new(0.1),
        &quiet(2, 8, true, 1),
        cont,
    )
    .unwrap();
    assert!(h.iter().all(|e| e.accuracy.is_some()), "{h:?}");
    let h =
        fit(&mut net, x.view(), y.view(), &Mse, &mut Sgd::new(0.05), &quiet(3, 8, true, 1), cont).unwrap();
    assert!(h.iter().all(|e| e.accuracy.is_none()), "{h:?}");
    assert!(h.iter().all(|e| e.loss.is_finite() && e.samples_per_sec > 0.0), "{h:?}");
}

#[test]
fn fit_mismatched_targets_fail_before_any_step() {
    let (x, labels) = class_data(10, 40);
    let mut net = random_net(3, 5, 3, 41);
    let before = bits(net.params().as_slice());
    let mut called = false;
    let short = labels.slice(s![..9]);
    let err = fit(
        &mut net,
        x.view(),
        short,
        &SoftmaxCrossEntropy,
        &mut Sgd::new(0.1),
        &quiet(2, 4, true, 0),
        |_| {
            called = true;
            ControlFlow::Continue(())
        },
    )
    .unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert!(!called);
    assert_eq!(bits(net.params().as_slice()), before);

    // Mse targets with one row too many, with an optimizer that has state.
    let y = Array2::<f64>::zeros((11, 3));
    let mut adam = Adam::new(0.1);
    let err = fit(&mut net, x.view(), y.view(), &Mse, &mut adam, &quiet(2, 4, true, 0), cont).unwrap_err();
    assert!(matches!(err, Error::ShapeMismatch { .. }), "{err:?}");
    assert_eq!(bits(net.params().as_slice()), before);
    // The failed fit did not advance Adam: its first real step equals a fresh Adam's.
    let y = Array2::<f64>::zeros((10, 3));
    let mut fresh = net.clone();
    net.train_step_with(x.view(), y.view(), &Mse, &mut adam).unwrap();
    fresh.train_step_with(x.view(), y.view(), &Mse, &mut Adam::new(0.1)).unwrap();
    assert_eq!(bits(net.params().as_slice()), bits(fresh.params().as_slice()));
}

/// `fit` (plain SGD, no shuffle, N = 12, batch 4) on data with a NaN in row 9, which is in
/// step 2 of epoch 0: `Error::Training { epoch: 0, step: 2, source: NonFinite }`, and the
/// parameters of a run on the first 8 rows.
fn fit_nan_row_case<A: Activation + Default>() {
    let (mut x, labels) = class_data(12, 42);
    x[[9, 1]] = f64::NAN;
    let mut net = random_net_with::<A>(3, 5, 3, 43);
    let mut reference = net.clone();
    let mut epochs_seen = 0;
    let result = fit(
        &mut net,
        x.view(),
        labels.view(),
        &SoftmaxCrossEntropy,
        &mut Sgd::new(0.1),
        &quiet(3, 4, false, 0),
        |_| {
            epochs_seen += 1;
            ControlFlow::Continue(())
        },
    );
    let non_finite = net.params().as_slice().iter().filter(|p| !p.is_finite()).count();
    let err = match result {
        Err(e) => e,
        Ok(h) => panic!(
            "{}: fit returned Ok after {} epochs (losses {:?}); {non_finite} parameters are non-finite",
            A::NAME,
            h.len(),
            h.iter().map(|e| e.loss).collect::<Vec<_>>()
        ),
    };
    assert!(
        matches!(&err, Error::Training { epoch: 0, step: 2, source } if matches!(**source, Error::NonFinite { .. })),
        "{}: {err:?}",
        A::NAME
    );
    assert_eq!(epochs_seen, 0);
    // The parameters are those after the last good step: a run on the first 8 rows.
    let good = x.slice(s![..8, ..]);
    fit(
        &mut reference,
        good,
        labels.slice(s![..8]),
        &SoftmaxCrossEntropy,
        &mut Sgd::new(0.1),
        &quiet(1, 4, false, 0),
        cont,
    )
    .unwrap();
    assert_eq!(bits(net.params().as_slice()), bits(reference.params().as_slice()), "{}", A::NAME);
    assert_eq!(non_finite, 0);
}

#[test]
fn fit_nan_row_stops_with_training_error_at_its_step_tanh() {
    // tanh(NaN) = NaN: the loss is NaN.
    fit_nan_row_case::<Tanh>();
}

#[test]
fn fit_nan_row_stops_with_training_error_at_its_step_relu() {
    // ReLU propagates NaN to the loss (see `fused_sgd_refuses_non_finite_input` in tests/non_finite.rs).
    fit_nan_row_case::<Relu>();
}

/// An infinite input through tanh (which saturates it to a finite value; see
/// `fused_sgd_refuses_infinite_input_through_saturating_activations` in tests/non_finite.rs),
/// through `fit`: the step with the infinite input must be the one reported, with the
/// parameters of the step before it (none here: it is the first step).
#[test]
fn fit_infinite_input_tanh_stops_at_its_step() {
    let (mut x, labels) = class_data(8, 59);
    x[[1, 2]] = f64::INFINITY;
    let mut net = random_net_with::<Tanh>(3, 5, 3, 60);
    let before = bits(net.params().as_slice());
    let result = fit_ce(&mut net, &x, &labels, &quiet(2, 4, false, 0));
    let non_finite = net.params().as_slice().iter().filter(|p| !p.is_finite()).count();
    assert!(
        matches!(&result, Err(Error::Training { epoch: 0, step: 0, source }) if matches!(**source, Error::NonFinite { .. })),
        "{result:?}; {non_finite} parameters non-finite"
    );
    assert_eq!(bits(net.params().as_slice()), before);
}

#[test]
fn fit_mse_targets_with_wrong_columns_change_nothing() {
    // K = 3 but targets have 4 columns: an error (bare, or as Training at epoch 0, step 0), and
    // no parameter changes.
    let (x, _) = class_data(10, 53);
    let y = Array2::<f64>::zeros((10, 4));
    let mut net = random_net(3, 5, 3, 54);
    let before = bits(net.params().as_slice());
    let err =
        fit(&mut net, x.view(), y.view(), &Mse, &mut Sgd::new(0.1), &quiet(2, 4, true, 0), cont).unwrap_err();
    let shape = |e: &Error| matches!(e, Error::ShapeMismatch { .. });
    assert!(
        shape(&err) || matches!(&err, Error::Training { epoch: 0, step: 0, source } if shape(source)),
        "{err:?}"
    );
    assert_eq!(bits(net.params().as_slice()), before);
}

#[test]
fn fit_nan_row_with_adam_keeps_last_good_parameters() {
    let (mut x, labels) = class_data(12, 44);
    x[[5, 0]] = f64::NAN; // step 1 of epoch 0
    let mut net = random_net(3, 5, 3, 45);
    let mut reference = net.clone();
    let err = fit(
        &mut net,
        x.view(),
        labels.view(),
        &SoftmaxCrossEntropy,
        &mut Adam::new(0.05),
        &quiet(2, 4, false, 0),
        cont,
    )
    .unwrap_err();
    assert!(
        matches!(&err, Error::Training { epoch: 0, step: 1, source } if matches!(**source, Error::NonFinite { .. })),
        "{err}"
    );
    let mut adam = Adam::new(0.05);
    reference
        .train_step_with(x.slice(s![..4, ..]), labels.slice(s![..4]), &SoftmaxCrossEntropy, &mut adam)
        .unwrap();
    assert_eq!(bits(net.params().as_slice()), bits(reference.params().as_slice()));
}

#[test]
fn fit_divergence_reports_the_failing_epoch_and_step() {
    // A learning rate far too large makes MSE blow up after some epochs; fit must stop at the
    // same (epoch, step) where a hand-written loop of train_steps first fails, with the same
    // parameters.
    let mut rng = StdRng::seed_from_u64(46);
    let x = uniform(&mut rng, 12, 3, 1.0);
    let y = uniform(&mut rng, 12, 2, 1.0);
    let lr = 2.0;
    let net0 = random_net(3, 5, 2, 47);
    let mut manual = net0.clone();
    let mut failed = None;
    'outer: for epoch in 0..400 {
        for step in 0..3 {
            let rows = s![4 * step..4 * step + 4, ..];
            if let Err(e) = manual.train_step(x.slice(rows), y.slice(rows), &Mse, lr) {
                failed = Some((epoch, step, e));
                break 'outer;
            }
        }
    }
    let (epoch, step, source) = failed.expect("training diverges");
    assert!(epoch >= 1, "divergence in the first epoch tests less; pick a smaller lr");
    let mut net = net0.clone();
    let err = fit(&mut net, x.view(), y.view(), &Mse, &mut Sgd::new(lr), &quiet(400, 4, false, 0), cont)
        .unwrap_err();
    assert_eq!(err, Error::Training { epoch, step, source: Box::new(source) });
    assert_eq!(bits(net.params().as_slice()), bits(manual.params().as_slice()), "params");
}

#[test]
fn fit_empty_batch_size_is_an_error() {
    let (x, labels) = class_data(5, 48);
    let mut net = random_net(3, 4, 3, 49);
    let before = bits(net.params().as_slice());
    let err = fit_ce(&mut net, &x, &labels, &quiet(1, 0, false, 0)).unwrap_err();
    assert!(matches!(err, Error::Empty { .. }), "{err:?}");
    assert_eq!(bits(net.params().as_slice()), before);
}
