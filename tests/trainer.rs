//! The steerable training loop: a run cut into calls equals the run in one call, any
//! `epochs` works with a callback that stops, the callback steers the network and the
//! optimizer, and a loop's position round-trips through a training state.

mod common;

use std::ops::ControlFlow;

use common::bits;
use two_layer_net::ndarray::{Array1, Array2, s};
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Adam, CheckpointError, Fit, Momentum, Optimizer, Progress, Schedule, Sgd, SoftmaxCrossEntropy, Trainer,
    TrainingState, TwoLayerNet, datasets,
};

fn data() -> (Array2<f64>, Array1<usize>) {
    datasets::spiral::<f64, _>(20, 3, &mut StdRng::seed_from_u64(1))
}

fn net() -> TwoLayerNet<f64> {
    TwoLayerNet::<f64>::new(2, 12, 3, &mut StdRng::seed_from_u64(2)).unwrap()
}

fn settings(epochs: usize) -> Fit {
    Fit { epochs, batch_size: 7, shuffle: true, seed: 11, progress: Progress::Off }
}

fn go<S: Schedule, O: Optimizer<f64>>(
    trainer: &mut Trainer<S>,
    net: &mut TwoLayerNet<f64>,
    opt: &mut O,
) -> Vec<two_layer_net::Epoch> {
    let (x, labels) = data();
    trainer
        .fit(net, x.view(), labels.view(), None, &SoftmaxCrossEntropy, opt, |_| ControlFlow::Continue(()))
        .unwrap()
}

/// `fit` to 10 epochs then to 20 equals `fit` to 20: for SGD (fused), momentum and Adam.
#[test]
fn a_run_cut_into_calls_equals_the_run_in_one_call() {
    fn check<O: Optimizer<f64>>(make: impl Fn() -> O) {
        let (mut whole, mut whole_opt) = (net(), make());
        let mut one = Trainer::new(settings(20));
        let h = go(&mut one, &mut whole, &mut whole_opt);
        assert_eq!((h.len(), one.epoch()), (20, 20));

        let (mut cut, mut cut_opt) = (net(), make());
        let mut two = Trainer::new(settings(10));
        go(&mut two, &mut cut, &mut cut_opt);
        two.settings.epochs = 20;
        let h2 = go(&mut two, &mut cut, &mut cut_opt);
        assert_eq!(h2.first().map(|e| e.epoch), Some(10));
        assert_eq!(bits(cut.params().as_slice()), bits(whole.params().as_slice()));
        assert_eq!(two.steps(), one.steps());
        assert_eq!(h2.last().map(|e| e.loss.to_bits()), h.last().map(|e| e.loss.to_bits()));
    }
    check(|| Sgd::new(0.1));
    check(|| Momentum::nesterov(0.05, 0.9));
    check(|| Adam::new(1e-2));
}

/// "Train until the callback says stop": no allocation in proportion to `epochs`, no
/// overflow in the progress bar's count.
#[test]
fn any_epoch_count_works_with_a_callback_that_stops() {
    let (x, labels) = data();
    for epochs in [1 << 40, usize::MAX] {
        let mut net = net();
        let mut trainer = Trainer::new(Fit { progress: Progress::Auto, ..settings(epochs) });
        let h = trainer
            .fit(&mut net, x.view(), labels.view(), None, &SoftmaxCrossEntropy, &mut Sgd::new(0.1), |end| {
                if end.report.epoch == 2 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
            })
            .unwrap();
        assert_eq!((h.len(), trainer.epoch()), (3, 3));
    }
}

/// The callback evaluates the network and lowers the learning rate; the report carries it.
#[test]
fn the_callback_steers_the_network_and_the_optimizer() {
    let (x, labels) = data();
    let mut net = net();
    let mut adam = Adam::new(1e-2);
    let mut accuracies = Vec::new();
    let h = Trainer::new(settings(6))
        .fit(&mut net, x.view(), labels.view(), None, &SoftmaxCrossEntropy, &mut adam, |end| {
            accuracies.push(end.net.accuracy(x.view(), labels.view()).unwrap());
            end.optimizer.lr *= 0.5;
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(accuracies.len(), 6);
    let rates: Vec<f64> = h.iter().map(|e| e.learning_rate).collect();
    assert_eq!(rates, [1e-2, 5e-3, 2.5e-3, 1.25e-3, 6.25e-4, 3.125e-4]);
    assert_eq!(adam.lr, 1e-2 / 64.0);
}

/// A loop saved after 4 epochs and restored into a new `Trainer` goes on as the first would.
#[test]
fn a_loops_position_round_trips_through_a_training_state() {
    let es = two_layer_net::EarlyStopping {
        monitor: two_layer_net::Monitor::Loss,
        patience: 100,
        ..Default::default()
    };
    let (mut a, mut a_opt) = (net(), Adam::new(1e-2));
    let mut first = Trainer::new(settings(4)).with_early_stopping(es).unwrap();
    go(&mut first, &mut a, &mut a_opt);
    let mut state = TrainingState::new();
    first.save(&mut state);
    state.set_net("net", &a).unwrap();
    state.set_optimizer("opt", &a_opt).unwrap();
    let state = TrainingState::<f64>::from_bytes(&state.to_bytes().unwrap()).unwrap();

    let (mut b, mut b_opt) = (net(), Adam::new(0.3));
    let mut second = Trainer::new(settings(9)).with_early_stopping(es).unwrap();
    second.restore(&state).unwrap();
    assert_eq!(second.best(), first.best());
    assert!(second.best().is_some());
    state.restore_net("net", &mut b).unwrap();
    state.restore_optimizer("opt", &mut b_opt).unwrap();
    assert_eq!((second.epoch(), second.steps()), (4, first.steps()));
    first.settings.epochs = 9;
    go(&mut first, &mut a, &mut a_opt);
    go(&mut second, &mut b, &mut b_opt);
    assert_eq!(bits(b.params().as_slice()), bits(a.params().as_slice()));
    assert_eq!(second, first, "the same position, settings and best epoch");

    let mut other_seed = Trainer::new(Fit { seed: 12, ..settings(9) });
    assert!(
        matches!(other_seed.restore(&state), Err(CheckpointError::Entry { name, .. }) if name == "loop.seed")
    );
    assert_eq!(other_seed.epoch(), 0);
    assert!(matches!(
        Trainer::new(settings(9)).restore(&TrainingState::<f64>::new()),
        Err(CheckpointError::Entry { .. })
    ));
}

/// A loop state is checked where it enters: a best epoch's parameters of another network's
/// size are refused by `fit` before any step (they were zipped into the network when early
/// stopping fired), and `restore` refuses a NaN base rate or best figure, a best epoch that
/// is not a completed one, and best parameters that are not a vector.
#[test]
fn a_loop_state_that_does_not_fit_is_refused_where_it_enters() {
    let es = two_layer_net::EarlyStopping {
        monitor: two_layer_net::Monitor::Loss,
        patience: 1,
        min_delta: 1e9, // no epoch improves on the first: stops at the second
        restore_best: true,
    };
    let (mut a, mut opt) = (net(), Adam::new(1e-2));
    let mut first = Trainer::new(settings(1))
        .with_early_stopping(es)
        .unwrap()
        .with_schedule(two_layer_net::Constant)
        .unwrap();
    go(&mut first, &mut a, &mut opt);
    let mut saved = TrainingState::new();
    first.save(&mut saved);
    let restore = |edit: &dyn Fn(&mut TrainingState<f64>)| {
        let mut state = saved.clone();
        edit(&mut state);
        let mut t = Trainer::new(settings(3))
            .with_early_stopping(es)
            .unwrap()
            .with_schedule(two_layer_net::Constant)
            .unwrap();
        t.restore(&state).map(|()| t)
    };
    assert!(restore(&|_| {}).is_ok());

    // Another network's parameters (a 2→11→3 net's) as the best epoch's.
    let other = TwoLayerNet::<f64>::new(2, 11, 3, &mut StdRng::seed_from_u64(5)).unwrap();
    let mut t = restore(&|s| {
        s.set_tensor("loop.best_params", &[other.params().len()], other.params().as_slice()).unwrap()
    })
    .unwrap();
    let before = bits(a.params().as_slice());
    let (x, labels) = data();
    let e = t
        .fit(&mut a, x.view(), labels.view(), None, &SoftmaxCrossEntropy, &mut opt, |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(
        matches!(e, two_layer_net::Error::ShapeMismatch { operand: "loop.best_params", expected: [1, n], actual: [1, m] }
            if n == a.params().len() && m == other.params().len()),
        "{e:?}"
    );
    assert_eq!(bits(a.params().as_slice()), before);

    let entry = |name: &str, r: Result<Trainer<two_layer_net::Constant>, CheckpointError>| {
        assert!(matches!(&r, Err(CheckpointError::Entry { name: n, .. }) if n == name), "{name}: {r:?}");
    };
    for bad in ["NaN", "inf", "-0.1"] {
        entry("loop.base_lr", restore(&|s| _ = s.loop_state_mut().insert("base_lr".into(), bad.into())));
    }
    for bad in ["NaN", "-inf"] {
        entry(
            "loop.best.value",
            restore(&|s| _ = s.loop_state_mut().insert("best.value".into(), bad.into())),
        );
    }
    entry("loop.best.epoch", restore(&|s| _ = s.loop_state_mut().insert("best.epoch".into(), "1".into())));
    entry("loop.best.wait", restore(&|s| _ = s.loop_state_mut().remove("best.wait")));
    entry("loop.best.epoch", restore(&|s| _ = s.loop_state_mut().insert("best.wait".into(), "1".into())));
    let r = restore(&|s| s.set_tensor("loop.best_params", &[2, 1], &[0.0, 0.0]).unwrap());
    assert!(matches!(r, Err(CheckpointError::Shape { .. })), "{r:?}");
}

/// A validation set is checked before the first step, as the training set is: a NaN there
/// made every validation loss NaN and early stopping roll back to epoch 0.
#[test]
fn a_non_finite_validation_set_is_refused_before_any_step() {
    use two_layer_net::{EarlyStopping, Error, Mse};
    let (x, labels) = data();
    let mut a = net();
    let before = bits(a.params().as_slice());
    let mut xv = x.slice(s![..5, ..]).to_owned();
    xv[[2, 1]] = f64::NAN;
    let mut t = Trainer::new(settings(3)).with_early_stopping(EarlyStopping::default()).unwrap();
    let e = t
        .fit(
            &mut a,
            x.view(),
            labels.view(),
            Some((xv.view(), labels.slice(s![..5]))),
            &SoftmaxCrossEntropy,
            &mut Sgd::new(0.1),
            |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert_eq!(e, Error::NonFinite { what: "validation x" });

    let y = Array2::<f64>::zeros((x.nrows(), 3));
    let mut yv = Array2::<f64>::zeros((5, 3));
    yv[[4, 0]] = f64::INFINITY;
    let e = Trainer::new(settings(3))
        .fit(
            &mut a,
            x.view(),
            y.view(),
            Some((x.slice(s![..5, ..]), yv.view())),
            &Mse,
            &mut Sgd::new(0.1),
            |_| ControlFlow::Continue(()),
        )
        .unwrap_err();
    assert_eq!(e, Error::NonFinite { what: "validation targets" });
    assert_eq!(bits(a.params().as_slice()), before);
    assert_eq!(t.epoch(), 0);
}

/// Early stopping's and the schedules' settings are checked where they are given (the
/// builders) and again when `fit` starts (they are public fields), before any step, with
/// `Error::InvalidSetting` naming the setting.
#[test]
fn settings_outside_their_domain_are_refused_where_they_enter() {
    use two_layer_net::{Cosine, EarlyStopping, Error, Monitor, Mse, StepDecay, Warmup};
    let invalid = |e: Error, name: &str| {
        assert!(matches!(&e, Error::InvalidSetting { setting, .. } if *setting == name), "{name}: {e:?}");
    };
    for min_delta in [f64::NAN, f64::INFINITY] {
        let es = EarlyStopping { min_delta, ..EarlyStopping::default() };
        invalid(Trainer::new(settings(3)).with_early_stopping(es).unwrap_err(), "EarlyStopping.min_delta");
    }
    invalid(
        Trainer::new(settings(3)).with_schedule(Cosine { steps: 0, min: 0.0 }).unwrap_err(),
        "Cosine.steps",
    );
    invalid(
        Trainer::new(settings(3))
            .with_schedule(Warmup { steps: 3, then: StepDecay { every: 0, gamma: 0.1 } })
            .unwrap_err(),
        "StepDecay.every",
    );

    // Set as fields, they are refused by `fit`, before any step.
    let (x, labels) = data();
    let mut a = net();
    let before = bits(a.params().as_slice());
    let run = |t: &mut Trainer<Cosine>, a: &mut TwoLayerNet<f64>| {
        t.fit(
            a,
            x.view(),
            labels.view(),
            Some((x.view(), labels.view())),
            &SoftmaxCrossEntropy,
            &mut Sgd::new(0.1),
            |_| ControlFlow::Continue(()),
        )
    };
    let mut t = Trainer::new(settings(3)).with_schedule(Cosine { steps: 10, min: 0.0 }).unwrap();
    t.schedule = Some(Cosine { steps: 0, min: 0.0 });
    invalid(run(&mut t, &mut a).unwrap_err(), "Cosine.steps");
    t.schedule = None;
    t.early_stopping = Some(EarlyStopping { min_delta: f64::NAN, ..EarlyStopping::default() });
    invalid(run(&mut t, &mut a).unwrap_err(), "EarlyStopping.min_delta");
    t.early_stopping = None;
    for norm in [0.0, -1.0, f64::NAN] {
        t.clip_norm = Some(norm);
        invalid(run(&mut t, &mut a).unwrap_err(), "clip_norm");
    }
    assert_eq!(bits(a.params().as_slice()), before);
    assert_eq!(t.steps(), 0);

    // Validation accuracy without class labels (a regression) is refused, as a validation
    // figure without a validation set is: it was silently never watched.
    let y = Array2::<f64>::zeros((x.nrows(), 3));
    let es = EarlyStopping { monitor: Monitor::ValAccuracy, ..EarlyStopping::default() };
    let e = Trainer::new(settings(3))
        .with_early_stopping(es)
        .unwrap()
        .fit(&mut a, x.view(), y.view(), Some((x.view(), y.view())), &Mse, &mut Sgd::new(0.1), |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    invalid(e, "EarlyStopping.monitor");
    assert_eq!(bits(a.params().as_slice()), before);
}

/// A negative `min_delta` counts as its absolute value, as in Keras (it never stopped on a
/// flat loss): the two runs stop at the same epoch with the same parameters.
#[test]
fn a_negative_min_delta_is_its_absolute_value() {
    use two_layer_net::{EarlyStopping, Monitor};
    let run = |min_delta: f64| {
        let es = EarlyStopping { monitor: Monitor::Loss, patience: 2, min_delta, restore_best: true };
        let mut t = Trainer::new(settings(200)).with_early_stopping(es).unwrap();
        let (mut a, mut opt) = (net(), Sgd::new(1e-3));
        let h = go(&mut t, &mut a, &mut opt);
        (h.len(), t.stopped_early(), bits(a.params().as_slice()))
    };
    let (epochs, stopped, params) = run(0.05);
    assert!(stopped && epochs < 200, "a loss that falls by less than 0.05 an epoch stops early");
    assert_eq!(run(-0.05), (epochs, stopped, params));
}

/// A schedule's rate is checked before it is set: a rate that is not finite or is negative
/// stops the loop at its step, and the optimizer keeps the last rate that was applied.
#[test]
fn a_refused_scheduled_rate_is_not_left_on_the_optimizer() {
    use two_layer_net::Error;
    /// The base rate for 3 steps, then `then`.
    #[derive(Clone, Copy)]
    struct Then(f64);
    impl Schedule for Then {
        fn lr(&self, base: f64, step: u64, _epoch: usize) -> f64 {
            if step < 3 { base / (step + 1) as f64 } else { self.0 }
        }
    }
    for (bad, refused) in [
        (f64::NAN, Error::NonFinite { what: "lr" }),
        (f64::INFINITY, Error::NonFinite { what: "lr" }),
        (
            -0.01,
            Error::InvalidSetting {
                setting: "scheduled lr", expected: "a rate ≥ 0", found: "-0.01".into()
            },
        ),
    ] {
        let mut t = Trainer::new(settings(3)).with_schedule(Then(bad)).unwrap();
        let (mut a, mut opt) = (net(), Adam::new(0.3));
        let (x, labels) = data();
        let e = t
            .fit(&mut a, x.view(), labels.view(), None, &SoftmaxCrossEntropy, &mut opt, |_| {
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert_eq!(e, Error::Training { epoch: 0, step: 3, source: Box::new(refused) });
        assert_eq!(opt.learning_rate(), 0.3 / 3.0, "the rate of step 2");
        assert_eq!(t.steps(), 3);
    }
}

/// Validation figures in every report; early stopping on them stops after `patience` epochs
/// without improvement and puts back the best epoch's parameters.
#[test]
fn early_stopping_on_validation_loss_restores_the_best_epoch() {
    use two_layer_net::{EarlyStopping, Monitor, split_stratified};
    let (x, labels) = datasets::spiral::<f64, _>(40, 3, &mut StdRng::seed_from_u64(3));
    let ((xt, yt), (xv, yv)) = split_stratified(x.view(), labels.view(), 0.25, 5).unwrap();
    // A large learning rate, so that the validation loss turns up again.
    let mut net = net();
    let es = EarlyStopping { monitor: Monitor::ValLoss, patience: 3, min_delta: 0.0, restore_best: true };
    let mut trainer = Trainer::new(settings(500)).with_early_stopping(es).unwrap();
    let mut snapshots = Vec::new();
    let h = trainer
        .fit(
            &mut net,
            xt.view(),
            yt.view(),
            Some((xv.view(), yv.view())),
            &SoftmaxCrossEntropy,
            &mut Adam::new(0.2),
            |end| {
                snapshots.push(end.net.params().clone());
                ControlFlow::Continue(())
            },
        )
        .unwrap();
    assert!(trainer.stopped_early(), "500 epochs at lr 0.2 should overfit or stall");
    let (best_epoch, best) = trainer.best().unwrap();
    let val: Vec<f64> = h.iter().map(|e| e.val_loss.unwrap()).collect();
    assert_eq!(best, val.iter().copied().fold(f64::INFINITY, f64::min));
    assert_eq!(val[best_epoch], best);
    assert_eq!(h.len(), best_epoch + 1 + 3, "stops 3 epochs after the best");
    assert!(h.iter().all(|e| e.val_accuracy.is_some()));
    // The network is the best epoch's, not the last one's.
    assert_eq!(net.params(), &snapshots[best_epoch]);
    assert_eq!(net.evaluate(xv.view(), yv.view(), &SoftmaxCrossEntropy).unwrap(), best);
    assert_eq!(h[best_epoch].val_accuracy, Some(net.accuracy(xv.view(), yv.view()).unwrap()));

    // Watching a validation figure without a validation set is an error before any step.
    let mut fresh = self::net();
    let before = fresh.params().clone();
    let e = Trainer::new(settings(5))
        .with_early_stopping(EarlyStopping::default())
        .unwrap()
        .fit(&mut fresh, xt.view(), yt.view(), None, &SoftmaxCrossEntropy, &mut Sgd::new(0.1), |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(matches!(e, two_layer_net::Error::Empty { operand: "validation", .. }), "{e:?}");
    assert_eq!(fresh.params(), &before);

    // So is an empty validation set (its mean loss has no value), watched or not, and an
    // empty training set.
    let (xe, ye) = (xv.slice(s![..0, ..]), yv.slice(s![..0]));
    for trainer in [
        Trainer::new(settings(5)),
        Trainer::new(settings(5)).with_early_stopping(EarlyStopping::default()).unwrap(),
    ] {
        let mut t = trainer;
        let e = t
            .fit(
                &mut fresh,
                xt.view(),
                yt.view(),
                Some((xe, ye)),
                &SoftmaxCrossEntropy,
                &mut Sgd::new(0.1),
                |_| ControlFlow::Continue(()),
            )
            .unwrap_err();
        assert!(matches!(e, two_layer_net::Error::Empty { operand: "validation", .. }), "{e:?}");
        let e = t
            .fit(&mut fresh, xe, ye, None, &SoftmaxCrossEntropy, &mut Sgd::new(0.1), |_| {
                ControlFlow::Continue(())
            })
            .unwrap_err();
        assert!(matches!(e, two_layer_net::Error::Empty { operand: "x", .. }), "{e:?}");
        assert_eq!(fresh.params(), &before);
    }
}

#[test]
fn stratified_split_keeps_class_proportions_and_is_seeded() {
    use two_layer_net::{split, split_stratified};
    let (x, labels) = datasets::spiral::<f64, _>(40, 3, &mut StdRng::seed_from_u64(3));
    let ((xt, yt), (xv, yv)) = split_stratified(x.view(), labels.view(), 0.25, 5).unwrap();
    assert_eq!((xt.nrows(), xv.nrows()), (90, 30));
    for c in 0..3 {
        assert_eq!(yv.iter().filter(|&&l| l == c).count(), 10);
        assert_eq!(yt.iter().filter(|&&l| l == c).count(), 30);
    }
    let again = split_stratified(x.view(), labels.view(), 0.25, 5).unwrap();
    assert_eq!(again.1.0, xv);
    assert_ne!(split_stratified(x.view(), labels.view(), 0.25, 6).unwrap().1.0, xv);
    let y = x.mapv(|v| v * 2.0);
    let ((a, b), (c, d)) = split(x.view(), y.view(), 0.1, 1).unwrap();
    assert_eq!((a.nrows(), c.nrows()), (108, 12));
    assert_eq!(b, a.mapv(|v| v * 2.0));
    assert_eq!(d, c.mapv(|v| v * 2.0));
    assert!(split(x.view(), y.view(), 0.0, 1).is_err());
    assert!(split(x.view(), y.view(), 1.0, 1).is_err());
    assert!(split(x.view(), y.view(), f64::NAN, 1).is_err());
}

/// Labels far apart (2⁴⁰, `usize::MAX`) split as quickly and correctly as 0, 1, 2: the
/// classes are the labels present, not every number up to the largest (which hung at 2⁴⁰
/// and wrapped the class count to 0 at `usize::MAX`).
#[test]
fn stratified_split_takes_any_label_values() {
    use two_layer_net::split_stratified;
    let x = Array2::from_shape_fn((9, 2), |(i, j)| (i * 2 + j) as f64);
    for big in [1usize << 40, usize::MAX] {
        let labels = Array1::from(vec![0, big, 0, big, 0, big, 7, 7, 0]);
        let ((xt, yt), (xv, yv)) = split_stratified(x.view(), labels.view(), 0.5, 3).unwrap();
        assert_eq!(xt.nrows() + xv.nrows(), 9);
        // round(0.5·n_c) of each class held out: 2 of the four 0s, 2 of the three `big`s
        // (round half away from zero), 1 of the two 7s.
        for (class, held) in [(0, 2), (big, 2), (7, 1)] {
            assert_eq!(yv.iter().filter(|&&l| l == class).count(), held, "class {class}");
        }
        // Every row lands on one side with its own features.
        for (xs, ys) in [(&xt, &yt), (&xv, &yv)] {
            for (row, &label) in xs.rows().into_iter().zip(ys) {
                let i = (row[0] / 2.0) as usize;
                assert_eq!(labels[i], label);
            }
        }
    }
}

/// A schedule sets the rate of every step from the base rate; a run cut into calls, or saved
/// and restored, gets the same rates.
#[test]
fn schedules_set_the_rate_and_survive_a_restart() {
    use two_layer_net::{Cosine, StepDecay, Warmup};
    let mut net_a = net();
    let mut sgd = Sgd::new(0.4);
    let mut trainer = Trainer::new(settings(6)).with_schedule(StepDecay { every: 2, gamma: 0.5 }).unwrap();
    let h = go(&mut trainer, &mut net_a, &mut sgd);
    let rates: Vec<f64> = h.iter().map(|e| e.learning_rate).collect();
    assert_eq!(rates, [0.4, 0.4, 0.2, 0.2, 0.1, 0.1]);

    let schedule = Warmup { steps: 10, then: Cosine { steps: 60, min: 1e-4 } };
    let (mut whole, mut whole_opt) = (net(), Adam::new(1e-2));
    let mut one = Trainer::new(settings(12)).with_schedule(schedule).unwrap();
    let h = go(&mut one, &mut whole, &mut whole_opt);
    assert_eq!(h.last().map(|e| e.learning_rate), Some(1e-4));

    let (mut cut, mut cut_opt) = (net(), Adam::new(1e-2));
    let mut first = Trainer::new(settings(5)).with_schedule(schedule).unwrap();
    go(&mut first, &mut cut, &mut cut_opt);
    let mut state = TrainingState::<f64>::new();
    first.save(&mut state);
    let mut second = Trainer::new(settings(12)).with_schedule(schedule).unwrap();
    second.restore(&state).unwrap();
    let mut restarted_opt = Adam::new(1e-2);
    restarted_opt.set_state(cut_opt.state()).unwrap();
    // The optimizer's rate was the schedule's at the save; the base comes from the state.
    go(&mut second, &mut cut, &mut restarted_opt);
    assert_eq!(bits(cut.params().as_slice()), bits(whole.params().as_slice()));
}

/// `clip_gradients` is PyTorch's `clip_grad_norm_`; the Trainer clips every step with it.
#[test]
fn gradients_are_clipped_to_a_global_norm() {
    use two_layer_net::{Error, Loss};
    let (x, labels) = data();
    let mut net = net();
    assert_eq!(net.clip_gradients(1.0).unwrap_err(), Error::NoGradients);
    let yhat = net.forward(x.view()).unwrap();
    let mut dyhat = Array2::zeros(yhat.dim());
    SoftmaxCrossEntropy.loss_and_grad(yhat, labels.view(), dyhat.view_mut()).unwrap();
    net.backward(x.view(), dyhat.view()).unwrap();
    let g = net.gradients().unwrap().as_slice().to_vec();
    let norm = g.iter().map(|v| v * v).sum::<f64>().sqrt();
    assert_eq!(net.clip_gradients(1e9).unwrap(), norm);
    assert_eq!(net.gradients().unwrap().as_slice(), g.as_slice(), "under the limit: unchanged");
    for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert_eq!(net.clip_gradients(bad).unwrap_err(), Error::NonFinite { what: "max_norm" });
    }
    net.clip_gradients(norm / 4.0).unwrap();
    let clipped: f64 = net.gradients().unwrap().as_slice().iter().map(|v| v * v).sum::<f64>().sqrt();
    assert!((clipped - norm / 4.0).abs() < 1e-6 * norm, "{clipped} vs {}", norm / 4.0);

    // The Trainer with a limit no step reaches is the Trainer without (Adam: the same path) …
    let run = |clip: Option<f64>, max_norm_for_manual: Option<f64>| {
        let (mut net, mut adam) = (self::net(), Adam::new(1e-2));
        let mut trainer = Trainer::new(Fit { shuffle: false, ..settings(3) });
        trainer.clip_norm = clip;
        go(&mut trainer, &mut net, &mut adam);
        // … and a tight limit matches forward, backward, clip, step by hand.
        let (mut manual, mut adam) = (self::net(), Adam::new(1e-2));
        for _ in 0..3 {
            for lo in (0..x.nrows()).step_by(7) {
                let hi = (lo + 7).min(x.nrows());
                let (xb, yb) = (
                    x.slice(two_layer_net::ndarray::s![lo..hi, ..]),
                    labels.slice(two_layer_net::ndarray::s![lo..hi]),
                );
                let yhat = manual.forward(xb).unwrap();
                let mut dyhat = Array2::zeros(yhat.dim());
                SoftmaxCrossEntropy.loss_and_grad(yhat, yb, dyhat.view_mut()).unwrap();
                manual.backward(xb, dyhat.view()).unwrap();
                if let Some(m) = max_norm_for_manual {
                    manual.clip_gradients(m).unwrap();
                }
                manual.step_with(&mut adam).unwrap();
            }
        }
        (bits(net.params().as_slice()), bits(manual.params().as_slice()))
    };
    let (trained, manual) = run(Some(1e30), None);
    assert_eq!(trained, manual);
    let (trained, manual) = run(Some(0.05), Some(0.05));
    assert_eq!(trained, manual);
    assert_ne!(trained, run(None, None).0);
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { failure_persistence: None, ..proptest::prelude::ProptestConfig::with_cases(256) })]

    /// `split_stratified` over any labels (values up to `usize::MAX`) and fractions: a
    /// partition of the rows, each part in the rows' order, each class giving
    /// `round(fraction·n_c)` rows to the held-out part; `Error::Empty` exactly when a part
    /// would be empty.
    #[test]
    fn stratified_split_is_a_partition_by_class(
        labels in proptest::collection::vec(proptest::prop_oneof![0..3usize, proptest::prelude::Just(1 << 40), proptest::prelude::Just(usize::MAX)], 1..30),
        fraction in 0.0..1.0f64,
        seed in proptest::prelude::any::<u64>(),
    ) {
        use two_layer_net::{Error, split_stratified};
        let x = Array2::from_shape_fn((labels.len(), 1), |(i, _)| i as f64);
        let labels = Array1::from(labels);
        let held = |members: usize| (fraction * members as f64).round() as usize;
        let mut classes: Vec<usize> = labels.to_vec();
        classes.sort_unstable();
        classes.dedup();
        let count = |l: &Array1<usize>, c: usize| l.iter().filter(|&&v| v == c).count();
        let expected_held: usize = classes.iter().map(|&c| held(count(&labels, c))).sum();
        let overall = (fraction * labels.len() as f64).round();
        match split_stratified(x.view(), labels.view(), fraction, seed) {
            Ok(((xt, yt), (xv, yv))) => {
                let rows = |x: &Array2<f64>| x.column(0).iter().map(|&v| v as usize).collect::<Vec<_>>();
                let (train, test) = (rows(&xt), rows(&xv));
                proptest::prop_assert!(train.windows(2).all(|w| w[0] < w[1]) && test.windows(2).all(|w| w[0] < w[1]));
                let mut all = [train.clone(), test.clone()].concat();
                all.sort_unstable();
                proptest::prop_assert_eq!(all, (0..labels.len()).collect::<Vec<_>>());
                proptest::prop_assert!(train.iter().zip(&yt).chain(test.iter().zip(&yv)).all(|(&i, &l)| labels[i] == l));
                for &c in &classes {
                    proptest::prop_assert_eq!(count(&yv, c), held(count(&labels, c)));
                }
            }
            Err(Error::Empty { operand: "split", .. }) => {
                proptest::prop_assert!(
                    expected_held == 0 || expected_held == labels.len() || !(1.0..labels.len() as f64).contains(&overall)
                );
            }
            Err(e) => proptest::prop_assert!(false, "{e:?}"),
        }
    }
}
