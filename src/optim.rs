//! Optimizers: update rules over flat parameter buffers of any origin.
//!
//! An optimizer updates a list of [`Slot`]s, each one parameter buffer with the gradient of the
//! same length: the network's ([`TwoLayerNet::slot`]), a layer of your own, or both in one
//! step. It keeps one [`SlotState`] per slot, by position, sized on the slot's first step; a
//! step after that allocates nothing.
//!
//! Every step is all or nothing: a non-finite gradient, parameter or learning rate, or an
//! update that would overflow a parameter or the state, leaves the parameters and the state
//! bitwise as they were. The check is cheap: a pre-pass sums `|x|` over the parameters,
//! gradients and state (a bound on every magnitude, and NaN or ∞ if any value is not
//! finite), from which each rule proves that none of its results can overflow; then one
//! vectorized pass writes them. Only a step the proof cannot clear (a non-finite input,
//! values within a factor of about 4 of the overflow threshold, or hyperparameters outside
//! the usual ranges, such as Adam's ε = 0) computes every result once more to check it
//! before writing. The loops run with the widest vectors the CPU has (AVX-512 or AVX2,
//! chosen at run time), in the same IEEE operations as a scalar loop: the same bits.
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

impl<'a> Decay<'a> {
    /// The consecutive non-empty runs covering `0..len`, each with whether it is decayed
    /// (for ranges already [`check`](Self::check)ed). An iterator of its own, not a chain of
    /// adapters: the biases of a fused SGD step are a few entries, where a chain's setup
    /// showed; and the update's loops inline into its caller, as a closure's may not.
    fn runs(self, len: usize) -> Runs<'a> {
        let (ranges, tail_decayed): (&[Range<usize>], bool) = match self {
            Decay::All => (&[], true),
            Decay::Nothing => (&[], false),
            Decay::Ranges(r) => (r, false),
        };
        Runs { ranges: ranges.iter(), next: None, at: 0, len, tail_decayed }
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

/// [`Decay::runs`]: the gap before each decayed range, the range, and after the last one the
/// tail, skipping empty runs.
struct Runs<'a> {
    ranges: std::slice::Iter<'a, Range<usize>>,
    /// The decayed range to return after the gap before it.
    next: Option<Range<usize>>,
    /// Where the next run starts.
    at: usize,
    len: usize,
    tail_decayed: bool,
}

impl Iterator for Runs<'_> {
    type Item = (Range<usize>, bool);

    #[inline(always)]
    fn next(&mut self) -> Option<(Range<usize>, bool)> {
        loop {
            if let Some(r) = self.next.take() {
                self.at = r.end;
                if r.start < r.end {
                    return Some((r, true));
                }
            }
            let Some(r) = self.ranges.next() else {
                let tail = self.at..self.len;
                self.at = self.len;
                return (!tail.is_empty()).then_some((tail, self.tail_decayed));
            };
            self.next = Some(r.clone());
            if self.at < r.start {
                return Some((self.at..r.start, false));
            }
        }
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

/// An update rule `(θ, g, state) → (θ', state')` with `S` state buffers per slot, as the
/// engine ([`update`]) runs it.
trait Rule<F: Scalar, const S: usize> {
    /// What one slot's step needs beyond the hyperparameters (Adam's bias corrections).
    type Constants;

    /// The constants of a slot's step `t` (1 for its first).
    fn constants(&self, t: u64) -> Self::Constants;

    /// The new parameter and state of one entry; `decayed` says whether the slot's [`Decay`]
    /// names it. Called in the engine's innermost loop: it must inline and vectorize.
    fn apply(&self, c: &Self::Constants, theta: F, g: F, state: [F; S], decayed: bool) -> (F, [F; S]);

    /// Whether every [`apply`](Self::apply) of a slot whose buffers lie within `e` is
    /// certainly finite: a proof from magnitudes alone, for the step to skip checking each
    /// result. `false` when it cannot tell (the engine then checks every result).
    fn proves_finite(&self, c: &Self::Constants, e: &Extents<S>) -> bool;
}

/// A buffer's size as the overflow proofs read it (see [`extent`]).
#[derive(Clone, Copy, Debug)]
struct Extent {
    /// `Σ|x|`: at least `max|x|`, and NaN or ∞ if an entry is not finite.
    abs_sum: f64,
    /// `min(0, min x)`: 0 exactly when no entry is negative (0 too where not asked for).
    min: f64,
}

/// The [`Extent`]s of one slot: its parameters, its gradient and its state buffers.
#[derive(Clone, Copy, Debug)]
struct Extents<const S: usize> {
    theta: Extent,
    grad: Extent,
    state: [Extent; S],
}

/// The largest magnitude an overflow proof lets any intermediate reach, for type `F`: a
/// quarter of `F::MAX`, as `f64`.
///
/// The proofs bound each intermediate of a rule in exact arithmetic, from the bounds of its
/// inputs. A computed intermediate is that exact value times at most `(1 + u)ᵏ` for the `k`
/// roundings on its way (`u` the unit roundoff, `k` below 10), and the `f64` arithmetic of
/// the proof itself errs by as little: a bound that clears `MAX/4` leaves a factor of nearly
/// 4 for both, so no computed value reaches ∞.
fn limit<F: Scalar>() -> f64 {
    F::max_value().as_f64() / 4.0
}

/// `Σ|x|` over `s`, and `min(0, min x)` if `signed` (else 0: the parameters and gradients
/// may have any sign), in 32 independent lanes so that the pass vectorizes and its adds do
/// not all wait on one another (two AVX-512 registers of `f32`; 64 measured slower).
///
/// The sum is a bound on every `|x|` even though it is rounded: rounding is monotonic, so a
/// rounded running sum of non-negative terms never falls below any one of them. It is also
/// sticky: a NaN or ∞ entry makes it NaN or ∞, so one number answers both "all finite?" and
/// "how large?". It can overestimate `max|x|` by the buffer's length, which only ever costs
/// a proof (the step then checks every result instead).
#[inline(always)]
fn extent<F: Scalar>(s: &[F], signed: bool) -> Extent {
    const LANES: usize = 32;
    let add = |sum: &mut [F; LANES], min: &mut [F; LANES], block: &[F]| {
        for ((sum, min), &v) in sum.iter_mut().zip(min).zip(block) {
            *sum += v.abs();
            // A compare and select (`minps`), not `Float::min`'s NaN rule: NaNs show in the sum.
            if signed {
                *min = if v < *min { v } else { *min };
            }
        }
    };
    let (mut sum, mut min) = ([F::zero(); LANES], [F::zero(); LANES]);
    let blocks = s.chunks_exact(LANES);
    let rest = blocks.remainder();
    // Whole blocks on their own, so that their loop knows the length and keeps the lanes in
    // registers; then the rest.
    for block in blocks {
        add(&mut sum, &mut min, block);
    }
    add(&mut sum, &mut min, rest);
    Extent {
        abs_sum: sum.iter().map(|v| v.as_f64()).sum(),
        min: min.iter().fold(0.0, |m, v| m.min(v.as_f64())),
    }
}

/// Whether a step writes its results or only checks them (see [`sweep`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Pass {
    Check,
    Write,
}

/// The engine of every rule here: one all-or-nothing step of `rule` over every slot, slot
/// `i` with state `i` (sized on the slot's first step).
///
/// 1. Checks the shapes, sizes new states.
/// 2. A pre-pass reads every slot's parameters, gradient and state for their [`Extent`]s
///    (a few vector adds per scalar), and asks the rule to prove from them that no result
///    can be non-finite.
/// 3. When every slot is proven, one pass writes the results. Otherwise (a non-finite input,
///    values near the overflow threshold, or hyperparameters outside the proofs' ranges) a
///    checking pass computes every result without writing, and the step writes only if all
///    are finite.
///
/// So a refused step writes nothing, and a step that writes computes each rule once. The
/// pre-pass reads what the write pass reads again: on buffers in cache that costs little
/// beside Adam's arithmetic (not beside SGD's, which is as cheap as the pre-pass); on
/// buffers streaming from memory it is 4 more streams over Adam's 7. One pass that keeps a
/// copy to roll back from instead (3 streams more written) measured slower in cache (1.47×
/// against 1.26× the plain Adam loop at 4.8k parameters, `benches/optim.rs`) and about the
/// same from memory (1.6–2.7× either way at 4.2M, the order changing between runs).
fn update<F: Scalar, R: Rule<F, S>, const S: usize>(
    slots: &mut [Slot<'_, F>],
    states: &mut Vec<SlotState<F>>,
    lr: F,
    rule: &R,
) -> Result<()> {
    if !lr.is_finite() {
        return Err(Error::NonFinite { what: "lr" });
    }
    for (i, slot) in slots.iter().enumerate() {
        let len = slot.params.len();
        check_shape("grads", [1, slot.grads.len()], [1, len])?;
        slot.decay.check(len)?;
        if let Some(state) = states.get(i) {
            if state.buffers.len() != S {
                return Err(Error::State {
                    what: "buffers".to_owned(),
                    expected: S.to_string(),
                    found: state.buffers.len().to_string(),
                });
            }
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

    // The passes, compiled for the widest vectors the CPU has.
    crate::blas::simd::widest(Passes::<F, R, S> { slots, states, rule, sized })
}

/// The engine's passes over slots whose shapes and states [`update`] checked: the pre-pass,
/// the checking pass when the proofs fail, and the write pass. `sized` states existed before
/// this step (the rest are new, and dropped if the step is refused).
struct Passes<'s, 'a, F, R, const S: usize> {
    slots: &'s mut [Slot<'a, F>],
    states: &'s mut Vec<SlotState<F>>,
    rule: &'s R,
    sized: usize,
}

impl<F: Scalar, R: Rule<F, S>, const S: usize> crate::blas::simd::Kernel for Passes<'_, '_, F, R, S> {
    type Output = Result<()>;

    #[inline(always)]
    fn run(self) -> Result<()> {
        let Passes { slots, states, rule, sized } = self;
        let mut proven = true;
        for (i, slot) in slots.iter().enumerate() {
            let state = states.get(i);
            let c = rule.constants(state.map_or(0, |s| s.step) + 1);
            // A plain loop, not `array::from_fn`, whose closure may stay out of line and so
            // out of the wide-vector build.
            let mut e = Extents {
                theta: extent(slot.params, false),
                grad: extent(slot.grads, false),
                state: [Extent { abs_sum: 0.0, min: 0.0 }; S],
            };
            for (e, buf) in e.state.iter_mut().zip(state.iter().flat_map(|s| &s.buffers)) {
                *e = extent(buf, true);
            }
            proven &= rule.proves_finite(&c, &e);
        }
        if !proven {
            let [finite_grads, finite_update] = for_each_run(slots, states, rule, Pass::Check);
            if !(finite_grads && finite_update) {
                states.truncate(sized);
                return Err(Error::NonFinite { what: if finite_grads { "update" } else { "gradient" } });
            }
        }
        for_each_run(slots, states, rule, Pass::Write);
        for state in states.iter_mut().take(slots.len()) {
            state.step += 1;
        }
        Ok(())
    }
}

/// [`sweep`] with `pass` over every run of every slot that its [`Decay`] splits it into,
/// with the constants of the slot's next step; whether every gradient and every result was
/// finite (as [`sweep`] reports). Every state holds `S` buffers: [`update`] checked.
#[inline(always)]
fn for_each_run<F: Scalar, R: Rule<F, S>, const S: usize>(
    slots: &mut [Slot<'_, F>],
    states: &mut [SlotState<F>],
    rule: &R,
    pass: Pass,
) -> [bool; 2] {
    let mut finite = [true; 2];
    let mut states = states.iter_mut();
    for slot in slots {
        let state = if S > 0 { states.next() } else { None };
        let c = rule.constants(state.as_ref().map_or(0, |s| s.step) + 1);
        let mut buffers = state.into_iter().flat_map(|s| s.buffers.iter_mut());
        let mut bufs: [&mut [F]; S] =
            std::array::from_fn(|_| buffers.next().map_or(&mut [][..], |b| &mut b[..]));
        let (params, grads) = (&mut *slot.params, slot.grads);
        for (r, decayed) in slot.decay.runs(params.len()) {
            let bufs = bufs.each_mut().map(|b| &mut b[r.clone()]);
            let [grads, update] = sweep(pass, rule, &c, &mut params[r.clone()], &grads[r], bufs, decayed);
            finite = [finite[0] & grads, finite[1] & update];
        }
    }
    finite
}

/// One pass of `rule` over a run: θ, its gradient `g` and the state buffers `bufs`, all of
/// one length. [`Pass::Write`] writes every result and returns `[true; 2]`;
/// [`Pass::Check`] writes nothing and returns whether every gradient and every result
/// (parameter and state) is finite.
///
/// A plain indexed loop, every slice cut to the run's length first so that no index is
/// checked inside it: the compiler vectorizes it, testing once that the buffers (separate
/// slices in an array, which it cannot prove disjoint) do not overlap. Finiteness is
/// `&`-ed, not `&&`-ed, so that the check pass has no branch either.
#[inline(always)]
fn sweep<F: Scalar, R: Rule<F, S>, const S: usize>(
    pass: Pass,
    rule: &R,
    c: &R::Constants,
    theta: &mut [F],
    g: &[F],
    bufs: [&mut [F]; S],
    decayed: bool,
) -> [bool; 2] {
    let n = theta.len();
    let g = &g[..n];
    let mut bufs = bufs.map(|b| &mut b[..n]);
    let (mut finite_grads, mut finite_update) = (true, true);
    for i in 0..n {
        let (t, s) = rule.apply(c, theta[i], g[i], std::array::from_fn(|j| bufs[j][i]), decayed);
        match pass {
            Pass::Write => {
                theta[i] = t;
                for (b, v) in bufs.iter_mut().zip(s) {
                    b[i] = v;
                }
            }
            Pass::Check => {
                finite_grads &= g[i].is_finite();
                finite_update &= t.is_finite();
                for v in s {
                    finite_update &= v.is_finite();
                }
            }
        }
    }
    [finite_grads, finite_update]
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
        update(slots, &mut Vec::new(), self.lr, &SgdRule { lr: self.lr })
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

/// [`Sgd`]'s rule: `θ ← θ − lr·g`.
struct SgdRule<F> {
    lr: F,
}

impl<F: Scalar> Rule<F, 0> for SgdRule<F> {
    type Constants = ();
    fn constants(&self, _: u64) {}
    #[inline(always)]
    fn apply(&self, _: &(), theta: F, g: F, s: [F; 0], _: bool) -> (F, [F; 0]) {
        (theta - self.lr * g, s)
    }
    fn proves_finite(&self, _: &(), e: &Extents<0>) -> bool {
        let (theta, g, lr) = (e.theta.abs_sum, e.grad.abs_sum, self.lr.abs().as_f64());
        // |θ − lr·g| ≤ |θ| + |lr|·|g|.
        within::<F>(&[theta + lr * g])
    }
}

/// Whether every bound in `bounds` is at most [`limit`] (and none is NaN).
fn within<F: Scalar>(bounds: &[f64]) -> bool {
    bounds.iter().all(|&b| b <= limit::<F>())
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
        let rule = MomentumRule {
            lr: self.lr,
            mu: self.momentum,
            keep: F::one() - self.dampening,
            nesterov: self.nesterov,
        };
        update(slots, &mut self.slots, self.lr, &rule)
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

/// [`Momentum`]'s rule, `keep` = 1 − dampening: `b ← g` at t = 1, else `b ← μ·b + keep·g`;
/// `θ ← θ − lr·b`, or `θ ← θ − lr·(g + μ·b)` with Nesterov.
struct MomentumRule<F> {
    lr: F,
    mu: F,
    keep: F,
    nesterov: bool,
}

impl<F: Scalar> Rule<F, 1> for MomentumRule<F> {
    /// Whether this is the slot's first step.
    type Constants = bool;
    fn constants(&self, t: u64) -> bool {
        t == 1
    }
    #[inline(always)]
    fn apply(&self, &first: &bool, theta: F, g: F, [b]: [F; 1], _: bool) -> (F, [F; 1]) {
        let b = if first { g } else { self.mu * b + self.keep * g };
        let dir = if self.nesterov { g + self.mu * b } else { b };
        (theta - self.lr * dir, [b])
    }
    fn proves_finite(&self, _: &bool, e: &Extents<1>) -> bool {
        let (theta, g, b) = (e.theta.abs_sum, e.grad.abs_sum, e.state[0].abs_sum);
        let [lr, mu, keep] = [self.lr, self.mu, self.keep].map(|v| v.abs().as_f64());
        // |b'| ≤ max(|g|, |μ|·|b| + |keep|·|g|); |dir| ≤ |g| + |μ|·|b'|; |θ'| ≤ |θ| + |lr|·|dir|.
        let b_new = g.max(mu * b + keep * g);
        let dir = g + mu * b_new;
        within::<F>(&[b_new, dir, theta + lr * dir])
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
        let rule = AdamRule {
            lr: self.lr,
            b1: self.beta1,
            b2: self.beta2,
            eps: self.eps,
            shrink: F::one() - self.lr * weight_decay,
        };
        update(slots, &mut self.slots, self.lr, &rule)
    }

    fn hyper(&self) -> [(&'static str, F); 4] {
        [("lr", self.lr), ("beta1", self.beta1), ("beta2", self.beta2), ("eps", self.eps)]
    }

    fn restore(&mut self, [lr, b1, b2, eps]: [f64; 4], slots: Vec<SlotState<F>>) {
        (self.lr, self.beta1, self.beta2, self.eps) = (F::cast(lr), F::cast(b1), F::cast(b2), F::cast(eps));
        self.slots = slots;
    }
}

/// [`Adam`]'s rule, and [`AdamW`]'s with `shrink` = 1 − lr·weight_decay on decayed entries.
struct AdamRule<F> {
    lr: F,
    b1: F,
    b2: F,
    eps: F,
    shrink: F,
}

impl<F: Scalar> Rule<F, 2> for AdamRule<F> {
    /// The step size `lr/(1 − β1ᵗ)` and `√(1 − β2ᵗ)`.
    type Constants = (F, F);
    fn constants(&self, t: u64) -> (F, F) {
        // PyTorch computes the bias corrections in Python floats: f64, rounded once to F.
        let t = i32::try_from(t).unwrap_or(i32::MAX);
        let step_size = self.lr.as_f64() / (1.0 - self.b1.as_f64().powi(t));
        (F::cast(step_size), F::cast((1.0 - self.b2.as_f64().powi(t)).sqrt()))
    }
    #[inline(always)]
    fn apply(
        &self,
        &(step_size, bc2_sqrt): &(F, F),
        theta: F,
        g: F,
        [m, v]: [F; 2],
        decayed: bool,
    ) -> (F, [F; 2]) {
        let theta = if decayed { theta * self.shrink } else { theta };
        let m = m + (F::one() - self.b1) * (g - m);
        let v = v * self.b2 + (F::one() - self.b2) * g * g;
        let denom = v.sqrt() / bc2_sqrt + self.eps;
        (theta + -step_size * (m / denom), [m, v])
    }
    fn proves_finite(&self, &(step_size, bc2_sqrt): &(F, F), e: &Extents<2>) -> bool {
        let (zero, one) = (F::zero(), F::one());
        // The ranges the bounds assume: 1 − β1 and 1 − β2 in [0, 1], v ≥ 0 (so that √v is a
        // number), and a denominator of at least ε > 0.
        let (b1, b2) = (self.b1, self.b2);
        if !(zero <= b1 && b1 <= one && zero <= b2 && b2 <= one && self.eps > zero && bc2_sqrt > zero)
            || e.state[1].min != 0.0
            || !(step_size.is_finite() && self.shrink.is_finite())
        {
            return false;
        }
        let (theta, g, m, v) = (e.theta.abs_sum, e.grad.abs_sum, e.state[0].abs_sum, e.state[1].abs_sum);
        // |m + (1−β1)·(g − m)| ≤ |m| + |g| + |m|; β2·v + (1−β2)·g² ≤ v + g².
        let (m_new, v_new) = (2.0 * m + g, v + g * g);
        // √v'/√(1−β2ᵗ) may round to ∞, which only makes m'/denom zero: denom ≥ ε.
        let ratio = m_new / self.eps.as_f64();
        let theta_new = theta * self.shrink.abs().as_f64().max(1.0) + step_size.abs().as_f64() * ratio;
        within::<F>(&[m_new, v_new, ratio, theta_new])
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
        let runs = |d: Decay<'_>, len| d.runs(len).collect::<Vec<_>>();
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

    /// A small deterministic generator of values in (−scale, scale).
    fn values<F: Scalar>(n: usize, seed: u64, scale: f64) -> Vec<F> {
        let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                F::cast(((x >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0) * scale)
            })
            .collect()
    }

    /// `rule` applied entry by entry, the obvious scalar loop, to copies of θ and the state.
    fn reference<F: Scalar, R: Rule<F, S>, const S: usize>(
        rule: &R,
        t: u64,
        theta: &[F],
        g: &[F],
        state: &[Vec<F>],
        decay: Decay<'_>,
    ) -> (Vec<F>, Vec<Vec<F>>) {
        let (mut theta, mut state) = (theta.to_vec(), state.to_vec());
        let c = rule.constants(t);
        for (r, decayed) in decay.runs(theta.len()) {
            for i in r {
                let (new, s) = rule.apply(&c, theta[i], g[i], std::array::from_fn(|j| state[j][i]), decayed);
                theta[i] = new;
                for (b, v) in state.iter_mut().zip(s) {
                    b[i] = v;
                }
            }
        }
        (theta, state)
    }

    /// Three steps of `opt` over two slots of every length from 0 to 40 (whole vector blocks
    /// and odd tails), the first with decay ranges, against [`reference`], bit for bit.
    fn matches_the_scalar_loop<F: Scalar, O: Optimizer<F>, R: Rule<F, S>, const S: usize>(
        make: impl Fn() -> O,
        rule: impl Fn(&O) -> R,
    ) {
        let bits = |v: &[F]| v.iter().map(|x| x.as_f64().to_bits()).collect::<Vec<_>>();
        for n in 0..=40 {
            let ranges = [1.min(n)..3.min(n), 5.min(n)..(n / 2).max(5.min(n))];
            let mut opt = make();
            let (mut a, mut b) = (values::<F>(n, 1, 1.0), values::<F>(n + 3, 2, 1.0));
            let (mut ra, mut rb) = (a.clone(), b.clone());
            let mut states: Vec<Vec<Vec<F>>> =
                vec![vec![vec![F::zero(); n]; S], vec![vec![F::zero(); n + 3]; S]];
            for t in 1..=3 {
                let (ga, gb) = (values::<F>(n, 10 + t, 3.0), values::<F>(n + 3, 20 + t, 0.5));
                let r = rule(&opt);
                let decay = Decay::Ranges(&ranges);
                let (na, sa) = reference(&r, t, &ra, &ga, &states[0], decay);
                let (nb, sb) = reference(&r, t, &rb, &gb, &states[1], Decay::All);
                (ra, rb, states) = (na, nb, vec![sa, sb]);
                opt.step(&mut [Slot::new(&mut a, &ga).with_decay(decay), Slot::new(&mut b, &gb)]).unwrap();
                assert_eq!((bits(&a), bits(&b)), (bits(&ra), bits(&rb)), "n = {n}, step {t}");
                let got = opt.state();
                if S > 0 {
                    for (slot, want) in got.slots.iter().zip(&states) {
                        assert_eq!(slot.step, t);
                        for (buf, w) in slot.buffers.iter().zip(want) {
                            assert_eq!(bits(buf), bits(w), "n = {n}, step {t}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_vectorized_engine_matches_the_scalar_loop_bit_for_bit() {
        fn each<F: Scalar>() {
            let lr = F::cast(0.01);
            matches_the_scalar_loop(|| Sgd::new(lr), |o| SgdRule { lr: o.lr });
            for nesterov in [false, true] {
                let make =
                    || Momentum { nesterov, dampening: F::cast(0.1), ..Momentum::new(lr, F::cast(0.9)) };
                let rule = |o: &Momentum<F>| MomentumRule {
                    lr: o.lr,
                    mu: o.momentum,
                    keep: F::one() - o.dampening,
                    nesterov: o.nesterov,
                };
                matches_the_scalar_loop(make, rule);
            }
            let wd = F::cast(0.1);
            let adam_rule = |a: &Adam<F>, wd: F| AdamRule {
                lr: a.lr,
                b1: a.beta1,
                b2: a.beta2,
                eps: a.eps,
                shrink: F::one() - a.lr * wd,
            };
            matches_the_scalar_loop(|| Adam::new(lr), |o| adam_rule(o, F::zero()));
            matches_the_scalar_loop(|| AdamW::new(lr, wd), |o| adam_rule(&o.adam, o.weight_decay));
        }
        each::<f32>();
        each::<f64>();
    }

    /// Values past the proofs' reach (a parameter above `MAX/4`, Adam with ε = 0, β2 = 1)
    /// take the checking pass: a finite step is still written, exactly as the scalar loop
    /// would; an overflowing or NaN one is refused with nothing written.
    #[test]
    fn steps_the_proofs_cannot_clear_are_checked_and_still_exact() {
        fn each<F: Scalar>() {
            let big = F::max_value() * F::cast(0.3);
            let (mut p, g) = (vec![big, F::one(), -big], vec![F::cast(0.5); 3]);
            let rule = SgdRule { lr: F::cast(0.1) };
            assert!(!rule.proves_finite(
                &(),
                &Extents { theta: extent(&p, false), grad: extent(&g, false), state: [] }
            ));
            let (want, _) = reference(&rule, 1, &p, &g, &[], Decay::All);
            Sgd::new(F::cast(0.1)).step(&mut [Slot::new(&mut p, &g)]).unwrap();
            assert_eq!(p, want);

            // lr·g overflows for the last entry only: refused, nothing written.
            let (mut p, g) = (vec![F::one(); 3], vec![F::one(), F::one(), F::max_value()]);
            let e = Sgd::new(F::cast(10.0)).step(&mut [Slot::new(&mut p, &g)]).unwrap_err();
            assert_eq!((e, p), (Error::NonFinite { what: "update" }, vec![F::one(); 3]));

            // ε = 0: a zero gradient makes 0/0 on the first step, refused; a non-zero one is fine.
            let mut adam = Adam::new(F::cast(0.1));
            adam.eps = F::zero();
            let (mut p, zero) = (vec![F::one(); 20], vec![F::zero(); 20]);
            let e = adam.step(&mut [Slot::new(&mut p, &zero)]).unwrap_err();
            assert_eq!((e, adam.state().slots.len()), (Error::NonFinite { what: "update" }, 0));
            let g = values::<F>(20, 7, 1.0);
            let rule =
                AdamRule { lr: adam.lr, b1: adam.beta1, b2: adam.beta2, eps: F::zero(), shrink: F::one() };
            let (want, _) =
                reference(&rule, 1, &p, &g, &[vec![F::zero(); 20], vec![F::zero(); 20]], Decay::All);
            adam.step(&mut [Slot::new(&mut p, &g)]).unwrap();
            assert_eq!(p, want);
        }
        each::<f32>();
        each::<f64>();
    }

    /// Whenever a proof clears a step, every result is finite: at magnitudes around the
    /// limits (parameters, gradients and state up to past `MAX/4`, tiny ε, large lr).
    #[test]
    fn what_the_proofs_clear_is_finite() {
        fn each<F: Scalar>() {
            let max = F::max_value().as_f64();
            let scales = [1.0, 1e10, max.sqrt() / 8.0, max.sqrt() / 2.0, max / 16.0, max / 5.0, max / 3.0];
            let mut cleared = 0;
            for (k, &st) in scales.iter().enumerate() {
                for (j, &sg) in scales.iter().enumerate() {
                    for &ss in &scales[..4] {
                        let n = 37;
                        let (theta, g) = (values::<F>(n, k as u64, st), values::<F>(n, 50 + j as u64, sg));
                        let m = values::<F>(n, 99, ss);
                        let v: Vec<F> = values::<F>(n, 98, ss).iter().map(|x| x.abs()).collect();
                        let e1 = Extents {
                            theta: extent(&theta, false),
                            grad: extent(&g, false),
                            state: [extent(&m, true)],
                        };
                        let e2 = Extents {
                            theta: e1.theta,
                            grad: e1.grad,
                            state: [extent(&m, true), extent(&v, true)],
                        };
                        let finite = |p: Vec<F>, s: Vec<Vec<F>>| {
                            p.iter().chain(s.iter().flatten()).all(|x| x.is_finite())
                        };
                        for lr in [1e-3, 10.0, 1e6] {
                            let lr = F::cast(lr);
                            let sgd = SgdRule { lr };
                            if sgd.proves_finite(&(), &Extents { theta: e1.theta, grad: e1.grad, state: [] })
                            {
                                cleared += 1;
                                let (p, s) = reference(&sgd, 2, &theta, &g, &[], Decay::All);
                                assert!(finite(p, s), "sgd {st} {sg} {lr}");
                            }
                            let mom =
                                MomentumRule { lr, mu: F::cast(0.9), keep: F::cast(0.9), nesterov: true };
                            if mom.proves_finite(&false, &e1) {
                                cleared += 1;
                                let (p, s) =
                                    reference(&mom, 2, &theta, &g, std::slice::from_ref(&m), Decay::All);
                                assert!(finite(p, s), "momentum {st} {sg} {ss} {lr}");
                            }
                            for eps in [1e-8, 1e-30] {
                                let rule = AdamRule {
                                    lr,
                                    b1: F::cast(0.9),
                                    b2: F::cast(0.999),
                                    eps: F::cast(eps),
                                    shrink: F::one() - lr * F::cast(0.01),
                                };
                                let c = rule.constants(3);
                                if rule.proves_finite(&c, &e2) {
                                    cleared += 1;
                                    let (p, s) =
                                        reference(&rule, 3, &theta, &g, &[m.clone(), v.clone()], Decay::All);
                                    assert!(finite(p, s), "adam {st} {sg} {ss} {lr} {eps}");
                                }
                            }
                        }
                    }
                }
            }
            assert!(cleared > 100, "the proofs cleared only {cleared} cases");
        }
        each::<f32>();
        each::<f64>();
    }
}
