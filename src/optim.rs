//! Optimizers: update rules over flat parameter buffers of any origin.
//!
//! An optimizer updates a list of [`Slot`]s, each one parameter buffer with the gradient of the
//! same length: the network's ([`TwoLayerNet::slot`]), a layer of your own, or both in one
//! step. It keeps one [`SlotState`] per slot, by position, sized on the slot's first step; a
//! step after that allocates nothing.
//!
//! Every step is all or nothing: it first computes every new parameter and every new state
//! value without writing, and writes only if all of them are finite. So a non-finite
//! gradient, a non-finite learning rate, or an update that would overflow a parameter or the
//! state leaves the parameters and the state bitwise as they were.
//!
//! # Conventions against `torch.optim`
//!
//! | here | PyTorch | update, for a gradient `g` at the slot's step `t = 1, 2, …` |
//! | --- | --- | --- |
//! | [`Sgd`] | `SGD(lr)` | `θ ← θ − lr·g` |
//! | [`Momentum`] | `SGD(lr, momentum=μ, dampening=τ)` | `b ← g` at t = 1, else `b ← μ·b + (1−τ)·g`; `θ ← θ − lr·b` |
//! | [`Momentum::nesterov`] | `SGD(lr, momentum=μ, nesterov=True)` | as above (τ = 0), then `θ ← θ − lr·(g + μ·b)` |
//! | [`Adam`] | `Adam(lr, betas=(β1, β2), eps=ε)` | `m ← m + (1−β1)·(g − m)`, `v ← β2·v + (1−β2)·g²`, `θ ← θ − (lr/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε)` |
//! | [`AdamW`] | `AdamW(lr, betas, eps, weight_decay=λ)` | `θ ← θ·(1 − lr·λ)` on decayed entries, then Adam |
//!
//! - The momentum buffer starts as the first gradient, not as zeros, and `lr` multiplies the
//!   whole buffer (PyTorch's form, not Sutskever's `v ← μ·v + lr·g`).
//! - Adam's ε sits outside the square root, added to `√v̂`; both moments are bias-corrected.
//!   The operations are PyTorch's single-tensor ones in the same order (`lerp` for `m`; the step
//!   size and `√(1−β2ᵗ)` computed in `f64`, as Python does), so a ported recipe gives the same
//!   numbers up to the last bits.
//! - Coupled L2 (`weight_decay=λ` in `SGD` and `Adam`) is the loss's job here:
//!   [`L2`](crate::L2)`::new(loss, λ)` adds `λ·W` to the weight gradients (and `0.5·λ·ΣW²` to
//!   the reported loss), on the weights only, where PyTorch's default group also decays biases.
//! - Which entries AdamW decays is the slot's [`Decay`]: every entry by default; the
//!   network's slot decays `W1` and `W2`, not the biases (PyTorch expresses the same with a
//!   parameter group of weight decay 0 for the biases).

use std::ops::Range;

use ndarray::ArrayView2;

use crate::activation::Activation;
use crate::error::{Error, Result, check_shape};
use crate::loss::Loss;
use crate::net::TwoLayerNet;
use crate::scalar::Scalar;

/// Which entries of a slot's buffer weight decay ([`AdamW`]) applies to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Decay<'a> {
    /// Every entry (the default of [`Slot::new`]).
    #[default]
    All,
    /// No entry: a buffer of biases, say.
    Nothing,
    /// The entries in these ranges, which must be sorted, disjoint and within the buffer (a
    /// buffer holding weights and biases side by side, as the network's does).
    Ranges(&'a [Range<usize>]),
}

impl Decay<'_> {
    /// Calls `run(range, decayed)` for consecutive non-empty runs covering `0..len` (for
    /// ranges already [`check`](Self::check)ed). A plain loop rather than an iterator chain:
    /// the biases of a fused SGD step are a few entries, where the chain's setup showed.
    fn for_each_run(self, len: usize, mut run: impl FnMut(Range<usize>, bool)) {
        let (ranges, tail_decayed): (&[Range<usize>], bool) = match self {
            Decay::All => (&[], true),
            Decay::Nothing => (&[], false),
            Decay::Ranges(r) => (r, false),
        };
        let mut at = 0;
        for r in ranges {
            if at < r.start {
                run(at..r.start, false);
            }
            if r.start < r.end {
                run(r.clone(), true);
            }
            at = r.end;
        }
        if at < len {
            run(at..len, tail_decayed);
        }
    }

    /// `Ok` if the ranges are sorted, disjoint and within `len`.
    fn check(self, len: usize) -> Result<()> {
        let Decay::Ranges(ranges) = self else { return Ok(()) };
        let mut end = 0;
        for r in ranges {
            if r.start < end || r.end < r.start || r.end > len {
                return Err(Error::ShapeMismatch {
                    operand: "decay range",
                    expected: [end, len],
                    actual: [r.start, r.end],
                });
            }
            end = r.end;
        }
        Ok(())
    }
}

/// One parameter buffer and its gradient (the same length), as an optimizer updates them.
///
/// ```
/// use two_layer_net::{Adam, Decay, Optimizer, Slot};
///
/// // A layer of your own: a 2×3 weight and a bias of 3, flat.
/// let (mut w, mut b) = (vec![0.5f64; 6], vec![0.0f64; 3]);
/// let (dw, db) = (vec![0.1f64; 6], vec![-0.2f64; 3]);
/// let mut opt = Adam::new(1e-2);
/// opt.step(&mut [Slot::new(&mut w, &dw), Slot::new(&mut b, &db).with_decay(Decay::Nothing)])?;
/// assert!(w.iter().all(|&v| v < 0.5) && b.iter().all(|&v| v > 0.0));
/// # Ok::<(), two_layer_net::Error>(())
/// ```
#[derive(Debug)]
pub struct Slot<'a, F> {
    params: &'a mut [F],
    grads: &'a [F],
    decay: Decay<'a>,
}

impl<'a, F> Slot<'a, F> {
    /// `params` with their gradient `grads`; weight decay applies to every entry.
    pub fn new(params: &'a mut [F], grads: &'a [F]) -> Self {
        Slot { params, grads, decay: Decay::All }
    }

    /// The same slot, with weight decay on the entries `decay` names.
    pub fn with_decay(self, decay: Decay<'a>) -> Self {
        Slot { decay, ..self }
    }

    /// The parameters.
    pub fn params(&self) -> &[F] {
        self.params
    }

    /// The gradient.
    pub fn grads(&self) -> &[F] {
        self.grads
    }
}

/// What an optimizer keeps for one slot: how many steps it has applied there, and its
/// buffers (named by [`OptimizerState::buffer_names`]), each as long as the slot.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SlotState<F> {
    /// Steps applied to the slot.
    pub step: u64,
    /// The buffers, e.g. Adam's `exp_avg` and `exp_avg_sq`.
    pub buffers: Vec<Vec<F>>,
}

/// Everything an optimizer needs to continue exactly where it stopped: what
/// [`Optimizer::state`] exports and [`Optimizer::set_state`] restores, and what a
/// training-state file holds.
#[derive(Clone, Debug, PartialEq)]
pub struct OptimizerState<F> {
    /// The update rule: `"sgd"`, `"momentum"`, `"adam"`, `"adamw"`.
    pub kind: String,
    /// The hyperparameters by name, in `f64` (exact for `f32` too); booleans as 0 or 1.
    pub hyperparameters: Vec<(String, f64)>,
    /// The names of each slot's buffers, PyTorch's: `momentum_buffer`, `exp_avg`, `exp_avg_sq`.
    pub buffer_names: Vec<String>,
    /// One state per slot, in slot order.
    pub slots: Vec<SlotState<F>>,
}

/// An update rule `θ ← update(θ, dθ, state)` over any number of parameter buffers.
pub trait Optimizer<F: Scalar> {
    /// One update of every slot, slot `i` with state `i` (sized on its first step). All or
    /// nothing: nothing is written unless every new parameter and state value is finite.
    ///
    /// Errors: [`Error::NonFinite`] (`"lr"`, `"gradient"`, or `"update"` for an overflow);
    /// [`Error::ShapeMismatch`] for a gradient of another length than its parameters, a
    /// slot whose length differs from its state's (`"optimizer state"`), or bad decay ranges.
    fn step(&mut self, slots: &mut [Slot<'_, F>]) -> Result<()>;

    /// The learning rate.
    fn learning_rate(&self) -> F;

    /// Sets the learning rate (for a schedule).
    fn set_learning_rate(&mut self, lr: F);

    /// A copy of the state: the kind, the hyperparameters, and every slot's step count and
    /// buffers.
    fn state(&self) -> OptimizerState<F>;

    /// Restores a state that [`state`](Self::state) of the same kind exported: the
    /// hyperparameters and every slot's step count and buffers.
    ///
    /// Errors: [`Error::State`] if the kind, a hyperparameter's name or a buffer's name or
    /// count differ, or a value is not finite; the optimizer is then unchanged.
    fn set_state(&mut self, state: OptimizerState<F>) -> Result<()>;

    /// One training step of `net` with this optimizer. By default
    /// [`TwoLayerNet::train_step_with`] (forward, loss, backward, update); [`Sgd`] overrides
    /// it with the fused step [`TwoLayerNet::train_step`]. [`fit`](crate::fit) steps through
    /// this.
    fn train_step<A: Activation, L: Loss<F>>(
        &mut self,
        net: &mut TwoLayerNet<F, A>,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
    ) -> Result<F>
    where
        Self: Sized,
    {
        net.train_step_with(x, target, loss, self)
    }
}

/// The engine of every rule here: checks the slots against their states (sizing new ones),
/// then runs `rule(c, θ, g, state, decayed) → (θ', state')` over every entry twice — once to
/// check that every result is finite, once to write — so that a refused step writes nothing.
/// `constants(t)` gives a slot's per-step constants `c` from its new step count `t`.
///
/// Computing each update twice costs less than a scratch copy of the parameters would, and
/// the rules are a few flops per entry against a GEMM's hundreds.
fn update<F: Scalar, C, const S: usize>(
    slots: &mut [Slot<'_, F>],
    states: &mut Vec<SlotState<F>>,
    lr: F,
    constants: impl Fn(u64) -> C,
    rule: impl Fn(&C, F, F, [F; S], bool) -> (F, [F; S]),
) -> Result<()> {
    if !lr.is_finite() {
        return Err(Error::NonFinite { what: "lr" });
    }
    for (i, slot) in slots.iter().enumerate() {
        let len = slot.params.len();
        check_shape("grads", [1, slot.grads.len()], [1, len])?;
        slot.decay.check(len)?;
        if let Some(state) = states.get(i) {
            for buf in &state.buffers {
                check_shape("optimizer state", [1, len], [1, buf.len()])?;
            }
        }
    }
    // Rules with buffers keep a state per slot (sized here, on a slot's first step); plain
    // SGD keeps none, so that a throwaway `Sgd` allocates nothing.
    let sized = states.len();
    if S > 0 {
        for slot in &slots[sized.min(slots.len())..] {
            match new_slot_state(slot.params.len(), S) {
                Ok(state) => states.push(state),
                Err(e) => {
                    states.truncate(sized);
                    return Err(e);
                }
            }
        }
    }

    let mut finite_grads = true;
    let mut finite_update = true;
    for (i, slot) in slots.iter().enumerate() {
        let state = states.get(i);
        let c = constants(state.map_or(0, |s| s.step) + 1);
        let bufs: [&[F]; S] = std::array::from_fn(|j| state.map_or(&[][..], |s| &s.buffers[j][..]));
        slot.decay.for_each_run(slot.params.len(), |run, decayed| {
            let (params, grads) = (&slot.params[run.clone()], &slot.grads[run.clone()]);
            let bufs = bufs.map(|b| &b[run.clone()]);
            for (i, (&theta, &g)) in params.iter().zip(grads).enumerate() {
                let (theta, s) = rule(&c, theta, g, bufs.map(|b| b[i]), decayed);
                finite_grads &= g.is_finite();
                finite_update &= theta.is_finite() & s.iter().all(|v| v.is_finite());
            }
        });
    }
    if !(finite_grads && finite_update) {
        states.truncate(sized);
        return Err(Error::NonFinite { what: if finite_grads { "update" } else { "gradient" } });
    }

    for (i, slot) in slots.iter_mut().enumerate() {
        let state = states.get_mut(i);
        let step = state.as_ref().map_or(0, |s| s.step) + 1;
        let c = constants(step);
        let mut bufs: [&mut [F]; S] = match state {
            Some(state) => {
                state.step = step;
                match state.buffers.get_disjoint_mut(std::array::from_fn(|j| j)) {
                    Ok(b) => b.map(|b| &mut b[..]),
                    Err(_) => {
                        return Err(Error::State {
                            what: "buffers".to_owned(),
                            expected: S.to_string(),
                            found: state.buffers.len().to_string(),
                        });
                    }
                }
            }
            None => std::array::from_fn(|_| &mut [][..]),
        };
        let (params, grads) = (&mut *slot.params, slot.grads);
        slot.decay.for_each_run(params.len(), |run, decayed| {
            let (params, grads) = (&mut params[run.clone()], &grads[run.clone()]);
            let mut bufs = bufs.each_mut().map(|b| &mut b[run.clone()]);
            for (i, (theta, &g)) in params.iter_mut().zip(grads).enumerate() {
                let (new, s) = rule(&c, *theta, g, bufs.each_ref().map(|b| b[i]), decayed);
                *theta = new;
                for (b, v) in bufs.iter_mut().zip(s) {
                    b[i] = v;
                }
            }
        });
    }
    Ok(())
}

/// A slot's state before its first step: step 0 and `buffers` zero buffers of `len`.
fn new_slot_state<F: Scalar>(len: usize, buffers: usize) -> Result<SlotState<F>> {
    let zeros = || {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| Error::TooLarge { operand: "optimizer state", actual: [1, len] })?;
        v.resize(len, F::zero());
        Ok(v)
    };
    Ok(SlotState { step: 0, buffers: (0..buffers).map(|_| zeros()).collect::<Result<_>>()? })
}

/// Checks `state` against what an optimizer of `kind` with `hyper` and `buffers` holds, and
/// returns its hyperparameter values in the order of `hyper` and its slots.
fn restore<F: Scalar, const H: usize>(
    state: OptimizerState<F>,
    kind: &str,
    hyper: [&str; H],
    buffers: &[&str],
) -> Result<([f64; H], Vec<SlotState<F>>)> {
    let mismatch = |what: &str, expected: String, found: String| {
        Err(Error::State { what: what.to_owned(), expected, found })
    };
    if state.kind != kind {
        return mismatch("kind", kind.to_owned(), state.kind);
    }
    let names: Vec<&str> = state.hyperparameters.iter().map(|(n, _)| n.as_str()).collect();
    if names != hyper {
        return mismatch("hyperparameters", format!("{hyper:?}"), format!("{names:?}"));
    }
    if state.buffer_names != buffers {
        return mismatch("buffers", format!("{buffers:?}"), format!("{:?}", state.buffer_names));
    }
    for (i, slot) in state.slots.iter().enumerate() {
        if slot.buffers.len() != buffers.len() {
            return mismatch(
                "slot buffers",
                buffers.len().to_string(),
                format!("{} in slot {i}", slot.buffers.len()),
            );
        }
        let len = slot.buffers.first().map_or(0, Vec::len);
        if slot.buffers.iter().any(|b| b.len() != len) {
            return mismatch(
                "slot buffers",
                format!("{len} entries each"),
                format!("another length in slot {i}"),
            );
        }
        if !slot.buffers.iter().flatten().all(|v| v.is_finite()) {
            return mismatch(
                "slot buffers",
                "finite values".to_owned(),
                format!("a non-finite value in slot {i}"),
            );
        }
    }
    let mut values = [0.0; H];
    for (v, (name, x)) in values.iter_mut().zip(&state.hyperparameters) {
        if !x.is_finite() {
            return mismatch(name, "a finite value".to_owned(), x.to_string());
        }
        *v = *x;
    }
    Ok((values, state.slots))
}

fn export<F: Scalar>(
    kind: &str,
    hyper: &[(&str, F)],
    buffers: &[&str],
    slots: &[SlotState<F>],
) -> OptimizerState<F> {
    OptimizerState {
        kind: kind.to_owned(),
        hyperparameters: hyper.iter().map(|&(n, v)| (n.to_owned(), v.as_f64())).collect(),
        buffer_names: buffers.iter().map(|&b| b.to_owned()).collect(),
        slots: slots.to_vec(),
    }
}

/// Plain stochastic gradient descent, the reference note's update: `θ ← θ − lr·dθ`
/// (PyTorch's `SGD(lr)`). Its [`train_step`](Optimizer::train_step) is the network's fused
/// step. It keeps no state.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd<F> {
    /// The learning rate.
    pub lr: F,
}

impl<F> Sgd<F> {
    /// SGD with learning rate `lr`.
    pub fn new(lr: F) -> Self {
        Sgd { lr }
    }
}

impl<F: Scalar> Optimizer<F> for Sgd<F> {
    fn step(&mut self, slots: &mut [Slot<'_, F>]) -> Result<()> {
        let lr = self.lr;
        update::<F, (), 0>(slots, &mut Vec::new(), lr, |_| (), |_, t, g, s, _| (t - lr * g, s))
    }
    fn learning_rate(&self) -> F {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.lr = lr;
    }
    fn state(&self) -> OptimizerState<F> {
        export("sgd", &[("lr", self.lr)], &[], &[])
    }
    fn set_state(&mut self, state: OptimizerState<F>) -> Result<()> {
        let ([lr], _) = restore(state, "sgd", ["lr"], &[])?;
        self.lr = F::cast(lr);
        Ok(())
    }
    fn train_step<A: Activation, L: Loss<F>>(
        &mut self,
        net: &mut TwoLayerNet<F, A>,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
    ) -> Result<F> {
        net.train_step(x, target, loss, self.lr)
    }
}

/// SGD with momentum, PyTorch's `optim.SGD(lr, momentum=μ, dampening=τ, nesterov=…)`:
///
/// `b ← g` at a slot's first step, then `b ← μ·b + (1−τ)·g`; `θ ← θ − lr·b`, or with
/// Nesterov `θ ← θ − lr·(g + μ·b)`. State per slot: `momentum_buffer`.
#[derive(Clone, Debug, PartialEq)]
pub struct Momentum<F> {
    /// The learning rate.
    pub lr: F,
    /// μ, e.g. 0.9.
    pub momentum: F,
    /// τ, 0 by default (PyTorch's default too); Nesterov wants 0.
    pub dampening: F,
    /// Use the Nesterov form.
    pub nesterov: bool,
    slots: Vec<SlotState<F>>,
}

impl<F: Scalar> Momentum<F> {
    /// Classical momentum μ with learning rate `lr`, no dampening.
    pub fn new(lr: F, momentum: F) -> Self {
        Momentum { lr, momentum, dampening: F::zero(), nesterov: false, slots: Vec::new() }
    }

    /// Nesterov momentum μ with learning rate `lr`.
    pub fn nesterov(lr: F, momentum: F) -> Self {
        Momentum { nesterov: true, ..Self::new(lr, momentum) }
    }
}

impl<F: Scalar> Optimizer<F> for Momentum<F> {
    fn step(&mut self, slots: &mut [Slot<'_, F>]) -> Result<()> {
        let (lr, mu, keep, nesterov) = (self.lr, self.momentum, F::one() - self.dampening, self.nesterov);
        update(
            slots,
            &mut self.slots,
            lr,
            |t| t == 1,
            |&first, t, g, [b], _| {
                let b = if first { g } else { mu * b + keep * g };
                let dir = if nesterov { g + mu * b } else { b };
                (t - lr * dir, [b])
            },
        )
    }
    fn learning_rate(&self) -> F {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.lr = lr;
    }
    fn state(&self) -> OptimizerState<F> {
        let nesterov = if self.nesterov { F::one() } else { F::zero() };
        let hyper = [
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("nesterov", nesterov),
        ];
        export("momentum", &hyper, &["momentum_buffer"], &self.slots)
    }
    fn set_state(&mut self, state: OptimizerState<F>) -> Result<()> {
        let hyper = ["lr", "momentum", "dampening", "nesterov"];
        let ([lr, mu, tau, nesterov], slots) = restore(state, "momentum", hyper, &["momentum_buffer"])?;
        (self.lr, self.momentum, self.dampening) = (F::cast(lr), F::cast(mu), F::cast(tau));
        (self.nesterov, self.slots) = (nesterov != 0.0, slots);
        Ok(())
    }
}

/// Adam (Kingma & Ba), PyTorch's `optim.Adam(lr, betas=(β1, β2), eps=ε)`: at a slot's step
/// t = 1, 2, …
///
/// `m ← m + (1−β1)·(g − m)`, `v ← β2·v + (1−β2)·g²`,
/// `θ ← θ − (lr/(1−β1ᵗ))·m / (√v/√(1−β2ᵗ) + ε)`, that is `θ − lr·m̂/(√v̂ + ε)`.
/// State per slot: `exp_avg` (m), `exp_avg_sq` (v).
#[derive(Clone, Debug, PartialEq)]
pub struct Adam<F> {
    /// The learning rate.
    pub lr: F,
    /// β1, default 0.9.
    pub beta1: F,
    /// β2, default 0.999.
    pub beta2: F,
    /// ε, default 1e-8.
    pub eps: F,
    slots: Vec<SlotState<F>>,
}

const ADAM_BUFFERS: [&str; 2] = ["exp_avg", "exp_avg_sq"];

impl<F: Scalar> Adam<F> {
    /// Adam with learning rate `lr` and PyTorch's defaults β1 = 0.9, β2 = 0.999, ε = 1e-8.
    pub fn new(lr: F) -> Self {
        Adam { lr, beta1: F::cast(0.9), beta2: F::cast(0.999), eps: F::cast(1e-8), slots: Vec::new() }
    }

    /// One Adam step; decayed entries first shrink by `1 − lr·weight_decay`.
    fn update(&mut self, slots: &mut [Slot<'_, F>], weight_decay: F) -> Result<()> {
        let (lr, b1, b2, eps) = (self.lr, self.beta1, self.beta2, self.eps);
        let shrink = F::one() - lr * weight_decay;
        // PyTorch computes the bias corrections in Python floats: f64, rounded once to F.
        let constants = |t: u64| {
            let t = i32::try_from(t).unwrap_or(i32::MAX);
            let step_size = lr.as_f64() / (1.0 - b1.as_f64().powi(t));
            (F::cast(step_size), F::cast((1.0 - b2.as_f64().powi(t)).sqrt()))
        };
        update(slots, &mut self.slots, lr, constants, |&(step_size, bc2_sqrt), t, g, [m, v], decayed| {
            let t = if decayed { t * shrink } else { t };
            let m = m + (F::one() - b1) * (g - m);
            let v = v * b2 + (F::one() - b2) * g * g;
            let denom = v.sqrt() / bc2_sqrt + eps;
            (t + -step_size * (m / denom), [m, v])
        })
    }

    fn hyper(&self) -> [(&'static str, F); 4] {
        [("lr", self.lr), ("beta1", self.beta1), ("beta2", self.beta2), ("eps", self.eps)]
    }

    fn restore(&mut self, [lr, b1, b2, eps]: [f64; 4], slots: Vec<SlotState<F>>) {
        (self.lr, self.beta1, self.beta2, self.eps) = (F::cast(lr), F::cast(b1), F::cast(b2), F::cast(eps));
        self.slots = slots;
    }
}

impl<F: Scalar> Optimizer<F> for Adam<F> {
    fn step(&mut self, slots: &mut [Slot<'_, F>]) -> Result<()> {
        self.update(slots, F::zero())
    }
    fn learning_rate(&self) -> F {
        self.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.lr = lr;
    }
    fn state(&self) -> OptimizerState<F> {
        export("adam", &self.hyper(), &ADAM_BUFFERS, &self.slots)
    }
    fn set_state(&mut self, state: OptimizerState<F>) -> Result<()> {
        let (h, slots) = restore(state, "adam", ["lr", "beta1", "beta2", "eps"], &ADAM_BUFFERS)?;
        self.restore(h, slots);
        Ok(())
    }
}

/// AdamW (Loshchilov & Hutter), PyTorch's `optim.AdamW`: Adam with decoupled weight decay,
/// `θ ← θ·(1 − lr·weight_decay)` before the Adam update, on the entries each slot's [`Decay`]
/// names (the network's slot: `W1` and `W2`, not the biases).
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW<F> {
    /// The Adam update and its settings (`lr`, `beta1`, `beta2`, `eps`).
    pub adam: Adam<F>,
    /// The decoupled weight decay, PyTorch's default 0.01.
    pub weight_decay: F,
}

impl<F: Scalar> AdamW<F> {
    /// AdamW with learning rate `lr`, decay `weight_decay`, and Adam's defaults.
    pub fn new(lr: F, weight_decay: F) -> Self {
        AdamW { adam: Adam::new(lr), weight_decay }
    }
}

impl<F: Scalar> Optimizer<F> for AdamW<F> {
    fn step(&mut self, slots: &mut [Slot<'_, F>]) -> Result<()> {
        self.adam.update(slots, self.weight_decay)
    }
    fn learning_rate(&self) -> F {
        self.adam.lr
    }
    fn set_learning_rate(&mut self, lr: F) {
        self.adam.lr = lr;
    }
    fn state(&self) -> OptimizerState<F> {
        let [lr, b1, b2, eps] = self.adam.hyper();
        export(
            "adamw",
            &[lr, b1, b2, eps, ("weight_decay", self.weight_decay)],
            &ADAM_BUFFERS,
            &self.adam.slots,
        )
    }
    fn set_state(&mut self, state: OptimizerState<F>) -> Result<()> {
        let hyper = ["lr", "beta1", "beta2", "eps", "weight_decay"];
        let ([lr, b1, b2, eps, wd], slots) = restore(state, "adamw", hyper, &ADAM_BUFFERS)?;
        self.adam.restore([lr, b1, b2, eps], slots);
        self.weight_decay = F::cast(wd);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::single_range_in_vec_init)] // one range is a list of ranges here
    fn decay_runs_cover_the_buffer_in_order() {
        let runs = |d: Decay<'_>, len| {
            let mut v = Vec::new();
            d.for_each_run(len, |r, decayed| v.push((r, decayed)));
            v
        };
        assert_eq!(runs(Decay::All, 5), [(0..5, true)]);
        assert_eq!(runs(Decay::Nothing, 5), [(0..5, false)]);
        assert_eq!(
            runs(Decay::Ranges(&[0..2, 3..4]), 6),
            [(0..2, true), (2..3, false), (3..4, true), (4..6, false)]
        );
        assert_eq!(runs(Decay::Ranges(&[1..6]), 6), [(0..1, false), (1..6, true)]);
        assert_eq!(runs(Decay::Ranges(&[]), 3), [(0..3, false)]);
        assert!(Decay::Ranges(&[2..4, 3..5]).check(6).is_err());
        assert!(Decay::Ranges(&[2..7]).check(6).is_err());
    }
}
