//! A mini-batch training loop over an in-memory dataset: epochs, shuffling with a seeded RNG,
//! per-epoch loss and accuracy, progress on stderr.

use std::io::IsTerminal;
use std::ops::ControlFlow;
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rand::seq::SliceRandom;
use rand::{SeedableRng, rngs::StdRng};

use crate::activation::Activation;
use crate::checkpoint::CheckpointError;
use crate::error::{Error, Result, check_setting, check_shape};
use crate::loss::Loss;
use crate::net::{TwoLayerNet, count_correct};
use crate::optim::Optimizer;
use crate::scalar::Scalar;
use crate::schedule::{Constant, Schedule};
use crate::state::TrainingState;
use crate::workspace::Scratch;

/// Targets that a training loop can cut into mini-batches, one row per example: a matrix
/// (N×K, for [`Mse`](crate::Mse)) or class labels (N, for
/// [`SoftmaxCrossEntropy`](crate::SoftmaxCrossEntropy)).
pub trait Targets<F: Scalar, L: Loss<F>> {
    /// Owned storage for one batch.
    type Batch;

    /// The number of examples.
    fn examples(&self) -> usize;

    /// Checks every target against `loss` for a network with `outputs` outputs
    /// ([`Loss::check_target`] over the whole set), before training starts.
    fn check(&self, loss: &L, outputs: usize) -> Result<()>;

    /// Whether every target is a finite number (class labels always are).
    fn all_finite(&self) -> bool {
        true
    }

    /// Storage for batches of up to `rows` examples.
    fn batch(&self, rows: usize) -> Self::Batch;

    /// Copies the examples `idx` into the first `idx.len()` rows of `batch`.
    fn gather(&self, idx: &[usize], batch: &mut Self::Batch);

    /// The first `rows` examples of `batch`, as the loss takes them.
    fn view(batch: &Self::Batch, rows: usize) -> L::Target<'_>;

    /// How many of the first `rows` predictions in `yhat` are right, for classifiers.
    fn correct(_yhat: ArrayView2<'_, F>, _batch: &Self::Batch, _rows: usize) -> Option<usize> {
        None
    }

    /// All the targets, as the loss takes them.
    fn target(&self) -> L::Target<'_>;

    /// The class labels, for classifiers.
    fn labels(&self) -> Option<ArrayView1<'_, usize>> {
        None
    }
}

impl<F: Scalar, L> Targets<F, L> for ArrayView2<'_, F>
where
    L: for<'a> Loss<F, Target<'a> = ArrayView2<'a, F>>,
{
    type Batch = Array2<F>;
    fn examples(&self) -> usize {
        self.nrows()
    }
    fn check(&self, loss: &L, outputs: usize) -> Result<()> {
        loss.check_target([self.nrows(), outputs], self.view())
    }
    fn all_finite(&self) -> bool {
        self.iter().all(|v| v.is_finite())
    }
    fn batch(&self, rows: usize) -> Array2<F> {
        Array2::zeros((rows, self.ncols()))
    }
    fn gather(&self, idx: &[usize], batch: &mut Array2<F>) {
        gather_rows(self.view(), idx, batch);
    }
    fn view(batch: &Array2<F>, rows: usize) -> ArrayView2<'_, F> {
        batch.slice_axis(Axis(0), (0..rows).into())
    }
    fn target(&self) -> ArrayView2<'_, F> {
        self.view()
    }
}

impl<F: Scalar, L> Targets<F, L> for ArrayView1<'_, usize>
where
    L: for<'a> Loss<F, Target<'a> = ArrayView1<'a, usize>>,
{
    type Batch = Array1<usize>;
    fn examples(&self) -> usize {
        self.len()
    }
    fn check(&self, loss: &L, outputs: usize) -> Result<()> {
        loss.check_target([self.len(), outputs], self.view())
    }
    fn batch(&self, rows: usize) -> Array1<usize> {
        Array1::zeros(rows)
    }
    fn gather(&self, idx: &[usize], batch: &mut Array1<usize>) {
        for (&i, b) in idx.iter().zip(batch.iter_mut()) {
            *b = self[i];
        }
    }
    fn view(batch: &Array1<usize>, rows: usize) -> ArrayView1<'_, usize> {
        batch.slice_axis(Axis(0), (0..rows).into())
    }
    fn target(&self) -> ArrayView1<'_, usize> {
        self.view()
    }
    fn labels(&self) -> Option<ArrayView1<'_, usize>> {
        Some(self.view())
    }
    fn correct(yhat: ArrayView2<'_, F>, batch: &Array1<usize>, rows: usize) -> Option<usize> {
        Some(count_correct(yhat, batch.slice_axis(Axis(0), (0..rows).into())))
    }
}

/// Copies the rows `idx` of `src` into the first `idx.len()` rows of `dst`.
fn gather_rows<F: Scalar>(src: ArrayView2<'_, F>, idx: &[usize], dst: &mut Array2<F>) {
    for (&i, mut row) in idx.iter().zip(dst.rows_mut()) {
        row.assign(&src.row(i));
    }
}

/// Where [`fit`] reports progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Progress {
    /// A progress bar with loss and samples/s when stderr is a terminal, else nothing (a
    /// pipeline's log stays quiet).
    #[default]
    Auto,
    /// One line per epoch on stderr.
    Lines,
    /// Nothing.
    Off,
}

/// Settings of [`fit`] and [`Trainer`].
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// Epochs to train: with a [`Trainer`], the total to reach, counted from its first epoch
    /// (so raising it and calling `fit` again goes on). Any value works; stop earlier from the
    /// epoch callback.
    pub epochs: usize,
    /// Examples per step; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Shuffle the examples at the start of every epoch.
    pub shuffle: bool,
    /// Seed of the shuffle: epoch `e` is ordered by a generator seeded from (`seed`, `e`), so
    /// the same seed gives the same run, bit for bit, however it is cut into calls.
    pub seed: u64,
    /// Where progress goes.
    pub progress: Progress,
}

impl Default for Fit {
    /// 10 epochs of batches of 32, shuffled with seed 0, a progress bar on a terminal.
    fn default() -> Self {
        Fit { epochs: 10, batch_size: 32, shuffle: true, seed: 0, progress: Progress::Auto }
    }
}

/// What one epoch of [`fit`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Epoch {
    /// Its number, from 0.
    pub epoch: usize,
    /// The mean over its steps of the training loss, weighted by batch size (penalty included).
    pub loss: f64,
    /// For classifiers: the fraction of examples classified right, each counted at its step
    /// (before that step's update).
    pub accuracy: Option<f64>,
    /// The loss on the validation set after the epoch (penalty included, as in `loss`), when
    /// there is one.
    pub val_loss: Option<f64>,
    /// The accuracy on the validation set after the epoch, for classifiers.
    pub val_accuracy: Option<f64>,
    /// The optimizer's learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// Examples per second over the epoch.
    pub samples_per_sec: f64,
}

/// A figure of the epoch report that [`EarlyStopping`] watches.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Monitor {
    /// [`Epoch::val_loss`]; lower is better.
    #[default]
    ValLoss,
    /// [`Epoch::val_accuracy`]; higher is better.
    ValAccuracy,
    /// [`Epoch::loss`], the training loss; lower is better.
    Loss,
}

impl Monitor {
    fn value(self, e: &Epoch) -> Option<f64> {
        match self {
            Monitor::ValLoss => e.val_loss,
            Monitor::ValAccuracy => e.val_accuracy,
            Monitor::Loss => Some(e.loss),
        }
    }

    /// Whether `value` improves on `best` by more than `min_delta` (≥ 0).
    fn improves(self, value: f64, best: f64, min_delta: f64) -> bool {
        match self {
            Monitor::ValAccuracy => value > best + min_delta,
            Monitor::ValLoss | Monitor::Loss => value < best - min_delta,
        }
    }
}

/// Stop when a figure stops improving, as Keras's `EarlyStopping`: an epoch improves when its
/// [`monitor`](Self::monitor) beats the best so far by more than `|min_delta|`; after
/// `patience` epochs in a row without improvement the loop stops and, with `restore_best`,
/// puts back the parameters of the best epoch.
///
/// Checked ([`check`](Self::check)) by [`Trainer::with_early_stopping`] and when `fit`
/// starts: `min_delta` must be finite (a negative one counts as its absolute value, as in
/// Keras), and [`Monitor::ValAccuracy`] needs class labels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EarlyStopping {
    /// What to watch; the default, [`Monitor::ValLoss`], needs a validation set.
    pub monitor: Monitor,
    /// Epochs without improvement before stopping; default 5.
    pub patience: usize,
    /// The least change that counts as an improvement, in absolute value; default 0.
    pub min_delta: f64,
    /// Put back the best epoch's parameters when stopping; default true (Keras: false).
    pub restore_best: bool,
}

impl Default for EarlyStopping {
    fn default() -> Self {
        EarlyStopping { monitor: Monitor::ValLoss, patience: 5, min_delta: 0.0, restore_best: true }
    }
}

impl EarlyStopping {
    /// `Ok` if the settings are in their domain: [`Error::InvalidSetting`]
    /// (`"EarlyStopping.min_delta"`) for a NaN or infinite `min_delta` (NaN made every epoch
    /// a non-improvement, so the loop stopped while the loss fell).
    pub fn check(&self) -> Result<()> {
        check_setting(
            "EarlyStopping.min_delta",
            "a finite number",
            self.min_delta,
            self.min_delta.is_finite(),
        )
    }
}

/// The best epoch so far of an [`EarlyStopping`], and how many epochs have not beaten it.
#[derive(Clone, Debug, PartialEq)]
struct Best {
    value: f64,
    epoch: usize,
    wait: usize,
    /// The parameters after that epoch (exact: `f32` widens to `f64` losslessly), kept when
    /// `restore_best` is set.
    params: Vec<f64>,
}

/// What the callback of [`Trainer::fit`] gets after each epoch: the epoch's report, and the
/// network and the optimizer to act on (evaluate, checkpoint, change the learning rate).
pub struct EpochEnd<'a, F: Scalar, A: Activation, O> {
    /// The epoch's report.
    pub report: &'a Epoch,
    /// The network, as the epoch left it.
    pub net: &'a mut TwoLayerNet<F, A>,
    /// The optimizer.
    pub optimizer: &'a mut O,
}

/// A mini-batch training loop that knows where it is: how many epochs and steps it has run.
/// `fit` goes on from there, so `fit` to 10 epochs then to 20 is the same run as `fit` to 20
/// in one call, and a loop saved with [`save`](Self::save) and [`restore`](Self::restore)d in
/// another process goes on bit for bit.
///
/// ```
/// use std::ops::ControlFlow;
/// use two_layer_net::{Adam, Fit, Progress, SoftmaxCrossEntropy, Trainer, TwoLayerNet, datasets};
/// use two_layer_net::rand::{SeedableRng, rngs::StdRng};
///
/// let (x, labels) = datasets::spiral::<f64, _>(50, 3, &mut StdRng::seed_from_u64(0));
/// let mut net = TwoLayerNet::<f64>::new(2, 32, 3, &mut StdRng::seed_from_u64(1))?;
/// let mut adam = Adam::new(1e-2);
/// let mut trainer = Trainer::new(Fit { epochs: 100, progress: Progress::Off, ..Fit::default() });
/// trainer.fit(&mut net, x.view(), labels.view(), None, &SoftmaxCrossEntropy, &mut adam, |end| {
///     if end.report.epoch == 49 {
///         end.optimizer.lr /= 10.0; // the callback may steer the optimizer …
///     }
///     let acc = end.net.accuracy(x.view(), labels.view()).unwrap(); // … and evaluate the net
///     if acc > 0.99 { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
/// })?;
/// assert!(trainer.epoch() <= 100);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Trainer<S = Constant> {
    /// The settings.
    pub settings: Fit,
    /// Stop when a figure stops improving; none by default.
    pub early_stopping: Option<EarlyStopping>,
    /// The learning-rate schedule, set before every step; none by default (the optimizer's
    /// rate is left alone, so the epoch callback can steer it).
    pub schedule: Option<S>,
    /// Clip the gradients to this global norm before every update
    /// ([`TwoLayerNet::clip_gradients`]); none by default. It needs the whole gradient before
    /// the update, so every step takes the four phases of
    /// [`train_step_with`](TwoLayerNet::train_step_with), even with SGD (whose fused step is
    /// then not used), plus a pass over the gradients to measure their norm.
    pub clip_norm: Option<f64>,
    /// The base rate of the schedule: the optimizer's at the first step.
    base_lr: Option<f64>,
    /// Epochs completed.
    epoch: usize,
    /// Optimizer steps taken.
    step: u64,
    /// Early stopping's best epoch so far.
    best: Option<Best>,
    /// Whether early stopping ended the last `fit`.
    stopped: bool,
}

impl Trainer {
    /// A loop at its start, with `settings`.
    pub fn new(settings: Fit) -> Self {
        Trainer {
            settings,
            early_stopping: None,
            schedule: None,
            clip_norm: None,
            base_lr: None,
            epoch: 0,
            step: 0,
            best: None,
            stopped: false,
        }
    }
}

impl<S: Schedule> Trainer<S> {
    /// The same loop, with early stopping.
    ///
    /// Errors: as [`EarlyStopping::check`].
    pub fn with_early_stopping(self, early_stopping: EarlyStopping) -> Result<Self> {
        early_stopping.check()?;
        Ok(Trainer { early_stopping: Some(early_stopping), ..self })
    }

    /// The same loop, with a learning-rate schedule (see [`Schedule`]); its base rate is the
    /// optimizer's at the first step.
    ///
    /// Errors: as [`Schedule::check`] (e.g. `Cosine { steps: 0, .. }`).
    pub fn with_schedule<S2: Schedule>(self, schedule: S2) -> Result<Trainer<S2>> {
        schedule.check()?;
        Ok(Trainer {
            settings: self.settings,
            early_stopping: self.early_stopping,
            schedule: Some(schedule),
            clip_norm: self.clip_norm,
            base_lr: self.base_lr,
            epoch: self.epoch,
            step: self.step,
            best: self.best,
            stopped: self.stopped,
        })
    }

    /// Early stopping's best epoch so far and its figure.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best.as_ref().map(|b| (b.epoch, b.value))
    }

    /// Whether early stopping ended the last [`fit`](Self::fit).
    pub fn stopped_early(&self) -> bool {
        self.stopped
    }

    /// Epochs completed.
    pub fn epoch(&self) -> usize {
        self.epoch
    }

    /// Optimizer steps taken.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Records the loop's position in `state`'s loop section: `loop.epoch`, `loop.step`,
    /// `loop.seed`, with a schedule `loop.base_lr`, with early stopping `loop.best.value`,
    /// `loop.best.epoch`, `loop.best.wait` and the tensor `loop.best_params`. Keep your own
    /// loop entries under other keys.
    pub fn save<F: Scalar>(&self, state: &mut TrainingState<F>) {
        let section = state.loop_state_mut();
        section.insert("epoch".into(), self.epoch.to_string());
        section.insert("step".into(), self.step.to_string());
        section.insert("seed".into(), self.settings.seed.to_string());
        if let Some(base) = self.base_lr {
            section.insert("base_lr".into(), format!("{base:?}"));
        }
        if let Some(best) = &self.best {
            section.insert("best.value".into(), format!("{:?}", best.value));
            section.insert("best.epoch".into(), best.epoch.to_string());
            section.insert("best.wait".into(), best.wait.to_string());
            let params: Vec<F> = best.params.iter().map(|&v| F::cast(v)).collect();
            // Cannot fail: the parameters of a finished epoch are finite, and the name is
            // neither reserved nor a step count's (those end in `.step`).
            let _ = state.set_tensor("loop.best_params", &[params.len()], &params);
        }
    }

    /// Puts back the position [`save`](Self::save) recorded.
    ///
    /// Errors: [`CheckpointError::Entry`] if an entry is missing or not a number, the base rate
    /// is not finite and ≥ 0, the best figure is not finite, the best epoch is not one before
    /// `loop.epoch` (with at most as many waits after it), or the recorded seed is not this
    /// loop's (the run would not go on as it was); [`CheckpointError::Shape`] if
    /// `loop.best_params` is not a vector. That vector's length is checked against the network
    /// by [`fit`](Self::fit), before any step.
    pub fn restore<F: Scalar>(&mut self, state: &TrainingState<F>) -> Result<(), CheckpointError> {
        let number = |key: &str| -> Result<u64, CheckpointError> {
            let found = state.loop_state().get(key);
            found.and_then(|v| v.parse().ok()).ok_or_else(|| CheckpointError::Entry {
                name: format!("loop.{key}"),
                expected: "a whole number".into(),
                found: found.cloned(),
            })
        };
        let (epoch, step, seed) = (number("epoch")?, number("step")?, number("seed")?);
        if seed != self.settings.seed {
            return Err(CheckpointError::Entry {
                name: "loop.seed".into(),
                expected: self.settings.seed.to_string(),
                found: Some(seed.to_string()),
            });
        }
        let epoch = usize::try_from(epoch).map_err(|_| CheckpointError::Entry {
            name: "loop.epoch".into(),
            expected: "an epoch count".into(),
            found: Some(epoch.to_string()),
        })?;
        // A figure recorded as text: a number, finite, and in `range` (the rule as `expected`).
        let real = |key: &str, expected: &str, ok: fn(f64) -> bool| -> Result<Option<f64>, CheckpointError> {
            let Some(text) = state.loop_state().get(key) else { return Ok(None) };
            match text.parse::<f64>() {
                Ok(v) if ok(v) => Ok(Some(v)),
                _ => Err(CheckpointError::Entry {
                    name: format!("loop.{key}"),
                    expected: expected.into(),
                    found: Some(text.clone()),
                }),
            }
        };
        let best = match real("best.value", "a finite number", f64::is_finite)? {
            None => None,
            Some(value) => {
                let (best_epoch, wait) = (number("best.epoch")?, number("best.wait")?);
                // The best epoch is a completed one, and every epoch after it either beat
                // it or added one to `wait`.
                if best_epoch >= epoch as u64 || wait > epoch as u64 - best_epoch - 1 {
                    return Err(CheckpointError::Entry {
                        name: "loop.best.epoch".into(),
                        expected: format!("an epoch before {epoch}, with at most as many waits after it"),
                        found: Some(format!("{best_epoch} (wait {wait})")),
                    });
                }
                let params = match state.tensor("loop.best_params") {
                    None => Vec::new(),
                    Some((shape, _)) if shape.len() != 1 => {
                        return Err(CheckpointError::Shape {
                            tensor: "loop.best_params".into(),
                            expected: vec![shape.iter().product()],
                            found: shape.to_vec(),
                        });
                    }
                    Some((_, v)) => v.iter().map(|x| x.as_f64()).collect(),
                };
                // Both fit `usize`: `best_epoch < epoch`, which is a `usize`.
                Some(Best { value, epoch: best_epoch as usize, wait: wait as usize, params })
            }
        };
        let base_lr = real("base_lr", "a finite rate ≥ 0", |v| v.is_finite() && v >= 0.0)?;
        (self.epoch, self.step, self.best, self.base_lr) = (epoch, step, best, base_lr);
        Ok(())
    }

    /// Trains `net` on (`x`, `targets`) from the current epoch up to `settings.epochs`: each
    /// epoch in the order of its seeded shuffle (or in order), one
    /// [`Optimizer::train_step`] per batch (the fused step for [`Sgd`](crate::Sgd)); then the
    /// loss (and accuracy) on `validation` if given, [`early_stopping`](Self::early_stopping)
    /// if set, and `on_epoch` with the report, the network and the optimizer;
    /// `ControlFlow::Break(())` stops the loop after that epoch. Returns the reports of the
    /// epochs run. [`split`](crate::split) cuts a validation set off the data.
    ///
    /// Buffers for a batch are allocated once per call, before the first epoch; nothing is
    /// allocated in proportion to `epochs`.
    ///
    /// Errors: shape and target errors (a label ≥ K, say) before any step, and so for the
    /// validation set [`Error::NonFinite`] (`"validation x"`, `"validation targets"`) for a NaN
    /// or infinite value; [`Error::ShapeMismatch`] (`"loop.best_params"`) if a restored best
    /// epoch's parameters are not the size of `net`'s; a step that fails
    /// (e.g. a non-finite loss) stops the loop with [`Error::Training`] naming the epoch and
    /// step, the parameters left as the last good step made them (and the epoch not counted);
    /// [`Error::Empty`] for no rows in `x` (`"x"`), a `batch_size` of 0, a validation set of no
    /// rows, or early stopping on a validation figure without a validation set
    /// (`"validation"`); [`Error::InvalidSetting`] for early stopping or a schedule that
    /// [`EarlyStopping::check`] or [`Schedule::check`] refuses, `ValAccuracy` watched without
    /// class labels, or a `clip_norm` not finite and > 0, all before any step; a scheduled
    /// rate that is not finite ([`Error::NonFinite`] `"lr"`) or is negative
    /// ([`Error::InvalidSetting`] `"scheduled lr"`) stops the loop at that step with
    /// [`Error::Training`], before the rate is set on the optimizer. A validation loss that is
    /// not finite after an epoch (an output overflowing to ±∞) stops the loop with that
    /// [`Error::NonFinite`], the epoch's steps applied and the epoch not counted.
    #[allow(clippy::too_many_arguments)]
    pub fn fit<F, A, L, O, T>(
        &mut self,
        net: &mut TwoLayerNet<F, A>,
        x: ArrayView2<'_, F>,
        targets: T,
        validation: Option<(ArrayView2<'_, F>, T)>,
        loss: &L,
        opt: &mut O,
        mut on_epoch: impl FnMut(EpochEnd<'_, F, A, O>) -> ControlFlow<()>,
    ) -> Result<Vec<Epoch>>
    where
        F: Scalar,
        A: Activation,
        L: Loss<F>,
        O: Optimizer<F>,
        T: Targets<F, L>,
    {
        let cfg = &self.settings;
        let n = x.nrows();
        check_shape("targets", [targets.examples(), 1], [n, 1])?;
        check_shape("x", [n, x.ncols()], [n, net.input_dim()])?;
        if n == 0 || cfg.batch_size == 0 {
            return Err(Error::Empty {
                operand: if n == 0 { "x" } else { "batch_size" },
                actual: [n, cfg.batch_size],
            });
        }
        targets.check(loss, net.output_dim())?;
        if let Some((xv, tv)) = &validation {
            check_shape("validation targets", [tv.examples(), 1], [xv.nrows(), 1])?;
            check_shape("validation x", [xv.nrows(), xv.ncols()], [xv.nrows(), net.input_dim()])?;
            if xv.nrows() == 0 {
                return Err(Error::Empty { operand: "validation", actual: [0, net.input_dim()] });
            }
            tv.check(loss, net.output_dim())?;
            // The validation set is only read after an epoch has trained: a NaN there would
            // make every validation figure NaN (and early stopping roll back to epoch 0), so
            // it is refused before the first step.
            if !xv.iter().all(|v| v.is_finite()) {
                return Err(Error::NonFinite { what: "validation x" });
            }
            if !tv.all_finite() {
                return Err(Error::NonFinite { what: "validation targets" });
            }
        }
        if let Some(best) = &self.best
            && !best.params.is_empty()
        {
            // Restored from a state that may hold another network's parameters.
            check_shape("loop.best_params", [1, best.params.len()], [1, net.params().len()])?;
        }
        let watches_validation = self.early_stopping.is_some_and(|e| e.monitor != Monitor::Loss);
        if watches_validation && validation.is_none() {
            return Err(Error::Empty { operand: "validation", actual: [0, net.input_dim()] });
        }
        // The settings are public fields, so they are checked here too, where they enter.
        if let Some(es) = &self.early_stopping {
            es.check()?;
            let labelled = validation.as_ref().is_some_and(|(_, t)| t.labels().is_some());
            check_setting(
                "EarlyStopping.monitor",
                "a figure the loop reports (ValAccuracy needs class labels)",
                es.monitor,
                es.monitor != Monitor::ValAccuracy || labelled,
            )?;
        }
        if let Some(schedule) = &self.schedule {
            schedule.check()?;
        }
        if let Some(max_norm) = self.clip_norm {
            check_setting(
                "clip_norm",
                "a finite norm > 0",
                max_norm,
                max_norm.is_finite() && max_norm > 0.0,
            )?;
        }
        self.stopped = false;
        let bs = cfg.batch_size.min(n);
        let mut order: Vec<usize> = (0..n).collect();
        let mut xb = Array2::zeros((bs, x.ncols()));
        let mut tb = targets.batch(bs);
        let mut scratch = Scratch::new();
        let remaining = cfg.epochs.saturating_sub(self.epoch);
        let bar = match cfg.progress {
            Progress::Auto if std::io::stderr().is_terminal() => {
                Some(progress_bar(n.div_ceil(bs).saturating_mul(remaining)))
            }
            _ => None,
        };
        let mut history = Vec::new();
        while self.epoch < self.settings.epochs {
            let (epoch, cfg) = (self.epoch, &self.settings);
            for (i, o) in order.iter_mut().enumerate() {
                *o = i;
            }
            if cfg.shuffle {
                order.shuffle(&mut epoch_rng(cfg.seed, epoch));
            }
            let start = Instant::now();
            let (mut total, mut correct, mut classified) = (0.0, 0, false);
            for (step, idx) in order.chunks(bs).enumerate() {
                let m = idx.len();
                gather_rows(x, idx, &mut xb);
                targets.gather(idx, &mut tb);
                let xv = xb.slice_axis(Axis(0), (0..m).into());
                if let Some(schedule) = &self.schedule {
                    let base = *self.base_lr.get_or_insert(opt.learning_rate().as_f64());
                    // Checked before it is set: a refused rate is not left on the optimizer.
                    let lr = scheduled_rate(schedule.lr(base, self.step, epoch))
                        .map_err(|e| Error::Training { epoch, step, source: Box::new(e) })?;
                    opt.set_learning_rate(lr);
                }
                let target = T::view(&tb, m);
                let step_result = match self.clip_norm {
                    Some(max_norm) => net.train_step_phases(xv, target, loss, opt, Some(F::cast(max_norm))),
                    None => opt.train_step(net, xv, target, loss),
                };
                let l = step_result.map_err(|e| Error::Training { epoch, step, source: Box::new(e) })?;
                self.step += 1;
                total += l.as_f64() * m as f64;
                if let Some(c) = T::correct(net.last_yhat(m), &tb, m) {
                    (correct, classified) = (correct + c, true);
                }
                if let Some(bar) = &bar {
                    bar.inc(1);
                    bar.set_message(format!("epoch {epoch}, loss {:.4}", l.as_f64()));
                }
            }
            let secs = start.elapsed().as_secs_f64();
            let (val_loss, val_accuracy) = match &validation {
                Some((xv, tv)) if xv.nrows() > 0 => {
                    let (l, acc) =
                        net.evaluate_classified(xv.view(), tv.target(), loss, tv.labels(), &mut scratch)?;
                    (Some((l + net.penalty(loss)).as_f64()), acc)
                }
                _ => (None, None),
            };
            let report = Epoch {
                epoch,
                loss: total / n as f64,
                accuracy: classified.then(|| correct as f64 / n as f64),
                val_loss,
                val_accuracy,
                learning_rate: opt.learning_rate().as_f64(),
                samples_per_sec: n as f64 / secs.max(1e-12),
            };
            self.epoch += 1;
            let line = epoch_line(&report, cfg.epochs);
            match &bar {
                Some(bar) => bar.println(line),
                None if cfg.progress == Progress::Lines => eprintln!("{line}"),
                None => {}
            }
            let stop = self.early_stop(&report, net);
            let flow = on_epoch(EpochEnd { report: &report, net, optimizer: opt });
            history.push(report);
            if stop || flow.is_break() {
                break;
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(history)
    }
}

impl<S> Trainer<S> {
    /// Early stopping's bookkeeping after an epoch: whether to stop (with the best
    /// parameters put back into `net` when asked).
    fn early_stop<F: Scalar, A: Activation>(&mut self, report: &Epoch, net: &mut TwoLayerNet<F, A>) -> bool {
        let Some(es) = self.early_stopping else { return false };
        let Some(value) = es.monitor.value(report) else { return false };
        match &mut self.best {
            Some(best) if !es.monitor.improves(value, best.value, es.min_delta.abs()) => {
                best.wait += 1;
                if best.wait < es.patience.max(1) {
                    return false;
                }
                if es.restore_best && !best.params.is_empty() {
                    for (p, &b) in net.params_mut().as_slice_mut().iter_mut().zip(&best.params) {
                        *p = F::cast(b);
                    }
                }
                self.stopped = true;
                true
            }
            best => {
                let params = best.take().map(|b| b.params).unwrap_or_default();
                let mut params = if es.restore_best { params } else { Vec::new() };
                if es.restore_best {
                    params.clear();
                    params.extend(net.params().as_slice().iter().map(|p| p.as_f64()));
                }
                *best = Some(Best { value, epoch: report.epoch, wait: 0, params });
                false
            }
        }
    }
}

/// A schedule's rate as `F`: [`Error::NonFinite`] (`"lr"`) unless finite in `F`,
/// [`Error::InvalidSetting`] (`"scheduled lr"`) if negative.
fn scheduled_rate<F: Scalar>(rate: f64) -> Result<F> {
    let lr = F::cast(rate);
    if !lr.is_finite() {
        return Err(Error::NonFinite { what: "lr" });
    }
    check_setting("scheduled lr", "a rate ≥ 0", rate, rate >= 0.0)?;
    Ok(lr)
}

/// The generator that orders epoch `epoch` of a run seeded `seed`: a function of the two
/// alone, so a resumed run shuffles as the uninterrupted one did.
fn epoch_rng(seed: u64, epoch: usize) -> StdRng {
    // SplitMix64's increment, so that nearby (seed, epoch) pairs give unrelated seeds.
    StdRng::seed_from_u64(seed ^ (epoch as u64).wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Trains `net` on (`x`, `targets`) with mini-batches for `cfg.epochs` epochs: a fresh
/// [`Trainer`]'s [`fit`](Trainer::fit), whose callback sees only the report. Calls `on_epoch`
/// after each epoch; it can stop the loop early with `ControlFlow::Break(())`. Returns every
/// epoch's report.
///
/// Errors: as [`Trainer::fit`].
///
/// ```
/// use ndarray::{Array1, Array2};
/// use rand::{SeedableRng, rngs::StdRng};
/// use two_layer_net::{Fit, Progress, SoftmaxCrossEntropy, Sgd, TwoLayerNet, fit};
///
/// // Two classes: is x₀ + x₁ positive?
/// let x = Array2::from_shape_fn((200, 2), |(i, j)| ((i * 7 + j * 13) % 23) as f64 / 11.5 - 1.0);
/// let labels: Array1<usize> = x.rows().into_iter().map(|r| usize::from(r[0] + r[1] > 0.0)).collect();
/// let mut net = TwoLayerNet::<f64>::new(2, 8, 2, &mut StdRng::seed_from_u64(0))?;
/// let cfg = Fit { epochs: 30, batch_size: 20, progress: Progress::Off, ..Fit::default() };
/// let epochs = fit(&mut net, x.view(), labels.view(), &SoftmaxCrossEntropy, &mut Sgd::new(0.1), &cfg, |_| {
///     std::ops::ControlFlow::Continue(())
/// })?;
/// assert!(epochs.last().unwrap().accuracy.unwrap() > 0.9);
/// # Ok::<(), two_layer_net::Error>(())
/// ```
pub fn fit<F, A, L, O, T>(
    net: &mut TwoLayerNet<F, A>,
    x: ArrayView2<'_, F>,
    targets: T,
    loss: &L,
    opt: &mut O,
    cfg: &Fit,
    mut on_epoch: impl FnMut(&Epoch) -> ControlFlow<()>,
) -> Result<Vec<Epoch>>
where
    F: Scalar,
    A: Activation,
    L: Loss<F>,
    O: Optimizer<F>,
    T: Targets<F, L>,
{
    Trainer::new(cfg.clone()).fit(net, x, targets, None, loss, opt, |end| on_epoch(end.report))
}

fn progress_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {per_sec} · {msg}") {
        bar.set_style(style);
    }
    bar
}

fn epoch_line(e: &Epoch, epochs: usize) -> String {
    let pct =
        |label: &str, a: Option<f64>| a.map(|a| format!(", {label} {:.1}%", 100.0 * a)).unwrap_or_default();
    let val = e.val_loss.map(|l| format!(", val loss {l:.6}")).unwrap_or_default();
    format!(
        "epoch {}/{epochs}: loss {:.6}{}{val}{}, lr {:.3e}, {:.0} samples/s",
        e.epoch + 1,
        e.loss,
        pct("accuracy", e.accuracy),
        pct("val accuracy", e.val_accuracy),
        e.learning_rate,
        e.samples_per_sec
    )
}

/// The fraction of rows of `x` whose largest output is the label:
/// [`TwoLayerNet::accuracy`].
///
/// Errors: shapes as in [`TwoLayerNet::forward_with`]; `labels` must have one entry per row.
pub fn accuracy<F: Scalar, A: Activation>(
    net: &TwoLayerNet<F, A>,
    x: ArrayView2<'_, F>,
    labels: ArrayView1<'_, usize>,
) -> Result<f64> {
    net.accuracy(x, labels)
}
