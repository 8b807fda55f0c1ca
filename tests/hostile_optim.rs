//! Optimizer settings under hostile values (issue #23's optimizer items, to be enabled once
//! `src/optim.rs` checks them, after the update-engine rewrite of #22): settings outside
//! PyTorch's domains (negative lr, β outside [0, 1), ε < 0, negative momentum or weight
//! decay, Nesterov with dampening) refused before anything is written, as PyTorch's
//! optimizers raise `ValueError`; `set_state` refusing hyperparameters not finite in `F` or
//! outside their domain, and a step count at which the next step would wrap.

use std::ops::ControlFlow;

use two_layer_net::ndarray::Array1;
use two_layer_net::rand::SeedableRng;
use two_layer_net::rand::rngs::StdRng;
use two_layer_net::{
    Adam, AdamW, Error, Fit, Momentum, Optimizer, OptimizerState, Progress, Sgd, Slot, SlotState,
    SoftmaxCrossEntropy, Trainer, TwoLayerNet, datasets,
};

/// Whether `e` is the refusal of a setting (`InvalidSetting`), directly or as a training
/// step's source.
fn refuses_setting(e: &Error) -> bool {
    match e {
        Error::InvalidSetting { .. } => true,
        Error::Training { source, .. } => refuses_setting(source),
        _ => false,
    }
}

/// `opt` with `edit` applied to its public settings.
fn with<O>(mut opt: O, edit: impl FnOnce(&mut O)) -> O {
    edit(&mut opt);
    opt
}

/// One step of `opt` on a 3-entry slot: refused as a setting, parameters and optimizer state
/// untouched.
fn assert_step_refused<O: Optimizer<f64> + std::fmt::Debug>(mut opt: O, what: &str) {
    let mut params = [1.0, -2.0, 0.5];
    let grads = [0.1, 0.2, -0.3];
    let state = opt.state();
    let e = opt.step(&mut [Slot::new(&mut params, &grads)]).unwrap_err();
    assert!(refuses_setting(&e), "{what}: {e:?}");
    assert_eq!(params, [1.0, -2.0, 0.5], "{what}: parameters written");
    assert_eq!(opt.state(), state, "{what}: optimizer state written");
}

#[test]
#[ignore = "needs optim.rs validation (#23, after #22)"]
fn settings_outside_pytorchs_domains_are_refused_before_any_write() {
    assert_step_refused(Sgd::new(-0.1), "Sgd lr < 0");
    assert_step_refused(Momentum::new(-0.1, 0.9), "Momentum lr < 0");
    assert_step_refused(Momentum::new(0.1, -0.9), "momentum < 0");
    assert_step_refused(with(Momentum::nesterov(0.1, 0.9), |m| m.dampening = 0.5), "Nesterov with dampening");
    assert_step_refused(Momentum::nesterov(0.1, 0.0), "Nesterov without momentum");
    assert_step_refused(Adam::new(-1e-3), "Adam lr < 0");
    for (b1, b2) in [(1.0, 0.999), (-0.1, 0.999), (0.9, 1.0), (0.9, -1e-3), (f64::NAN, 0.999)] {
        assert_step_refused(
            with(Adam::new(1e-3), |a| (a.beta1, a.beta2) = (b1, b2)),
            &format!("betas ({b1}, {b2})"),
        );
    }
    assert_step_refused(with(Adam::new(1e-3), |a| a.eps = -1e-8), "eps < 0");
    assert_step_refused(AdamW::new(1e-3, -0.01), "weight_decay < 0");
}

#[test]
#[ignore = "needs optim.rs validation (#23, after #22)"]
fn fit_refuses_an_optimizer_setting_before_any_step() {
    let (x, labels) = datasets::spiral::<f64, _>(10, 2, &mut StdRng::seed_from_u64(0));
    let mut net = TwoLayerNet::<f64>::new(2, 4, 2, &mut StdRng::seed_from_u64(1)).unwrap();
    let before = net.params().clone();
    let mut adam = with(Adam::new(1e-2), |a| a.beta1 = 1.0);
    let e = Trainer::new(Fit { epochs: 2, progress: Progress::Off, ..Fit::default() })
        .fit(&mut net, x.view(), labels.view(), None, &SoftmaxCrossEntropy, &mut adam, |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err();
    assert!(refuses_setting(&e), "{e:?}");
    assert_eq!(net.params(), &before);
}

/// An Adam state with `hyper` replaced by `value`.
fn adam_state_with<F: two_layer_net::Scalar>(hyper: &str, value: f64) -> OptimizerState<F> {
    let mut state = Adam::<F>::new(F::cast(1e-3)).state();
    for (name, v) in &mut state.hyperparameters {
        if name == hyper {
            *v = value;
        }
    }
    state
}

#[test]
#[ignore = "needs optim.rs validation (#23, after #22)"]
fn set_state_refuses_hyperparameters_not_finite_in_f_or_outside_their_domain() {
    // Finite in f64, ∞ in f32: they came through as ∞.
    for (hyper, value) in [("lr", 1e39), ("eps", 1e300)] {
        let mut adam = Adam::<f32>::new(0.5);
        let before = adam.clone();
        assert!(adam.set_state(adam_state_with::<f32>(hyper, value)).is_err(), "{hyper} = {value}");
        assert_eq!(adam, before);
    }
    for (hyper, value) in [("lr", -1.0), ("beta1", 1.0), ("beta2", 1.5), ("eps", -1e-8), ("lr", f64::NAN)] {
        let mut adam = Adam::<f64>::new(0.5);
        let before = adam.clone();
        assert!(adam.set_state(adam_state_with::<f64>(hyper, value)).is_err(), "{hyper} = {value}");
        assert_eq!(adam, before);
    }
}

#[test]
#[ignore = "needs optim.rs validation (#23, after #22)"]
fn a_step_count_that_would_wrap_is_refused() {
    // u64::MAX wrapped to 0 on the next step, and every later step failed with a misleading
    // "update is not finite" (1 − β1⁰ = 0 in the bias correction).
    let mut adam = Adam::<f64>::new(1e-3);
    let mut state = adam.state();
    state.slots = vec![SlotState { step: u64::MAX, buffers: vec![vec![0.0; 3], vec![0.0; 3]] }];
    let before = adam.clone();
    match adam.set_state(state) {
        Err(_) => assert_eq!(adam, before),
        Ok(()) => {
            // Taken, then the step that would wrap is refused naming the step count.
            let mut params = Array1::from(vec![1.0, 2.0, 3.0]);
            let grads = [0.1; 3];
            let e = adam.step(&mut [Slot::new(params.as_slice_mut().unwrap(), &grads)]).unwrap_err();
            assert!(!matches!(e, Error::NonFinite { .. }), "{e:?}");
            assert_eq!(params.to_vec(), [1.0, 2.0, 3.0]);
        }
    }
}
