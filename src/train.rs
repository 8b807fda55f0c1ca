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
use crate::error::{Error, Result, check_shape};
use crate::loss::Loss;
use crate::net::{TwoLayerNet, argmax};
use crate::optim::Optimizer;
use crate::scalar::Scalar;
use crate::state::TrainingState;

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
    fn batch(&self, rows: usize) -> Array2<F> {
        Array2::zeros((rows, self.ncols()))
    }
    fn gather(&self, idx: &[usize], batch: &mut Array2<F>) {
        for (&i, mut row) in idx.iter().zip(batch.rows_mut()) {
            row.assign(&self.row(i));
        }
    }
    fn view(batch: &Array2<F>, rows: usize) -> ArrayView2<'_, F> {
        batch.slice_axis(Axis(0), (0..rows).into())
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
    fn correct(yhat: ArrayView2<'_, F>, batch: &Array1<usize>, rows: usize) -> Option<usize> {
        Some(
            yhat.rows()
                .into_iter()
                .zip(batch.iter().take(rows))
                .filter(|&(ref r, &c)| argmax(r.view()) == c)
                .count(),
        )
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
    /// The optimizer's learning rate at the epoch's last step.
    pub learning_rate: f64,
    /// Examples per second over the epoch.
    pub samples_per_sec: f64,
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
/// trainer.fit(&mut net, x.view(), labels.view(), &SoftmaxCrossEntropy, &mut adam, |end| {
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
pub struct Trainer {
    /// The settings.
    pub settings: Fit,
    /// Epochs completed.
    epoch: usize,
    /// Optimizer steps taken.
    step: u64,
}

impl Trainer {
    /// A loop at its start, with `settings`.
    pub fn new(settings: Fit) -> Self {
        Trainer { settings, epoch: 0, step: 0 }
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
    /// `loop.seed`.
    pub fn save<F: Scalar>(&self, state: &mut TrainingState<F>) {
        let section = state.loop_state_mut();
        section.insert("epoch".into(), self.epoch.to_string());
        section.insert("step".into(), self.step.to_string());
        section.insert("seed".into(), self.settings.seed.to_string());
    }

    /// Puts back the position [`save`](Self::save) recorded.
    ///
    /// Errors: [`CheckpointError::Entry`] if an entry is missing or not a number, or the
    /// recorded seed is not this loop's (the run would not go on as it was).
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
        (self.epoch, self.step) = (epoch, step);
        Ok(())
    }

    /// Trains `net` on (`x`, `targets`) from the current epoch up to `settings.epochs`: each
    /// epoch in the order of its seeded shuffle (or in order), one
    /// [`Optimizer::train_step`] per batch (the fused step for [`Sgd`](crate::Sgd)), then
    /// `on_epoch` with the report, the network and the optimizer; `ControlFlow::Break(())`
    /// stops the loop after that epoch. Returns the reports of the epochs run.
    ///
    /// Buffers for a batch are allocated once per call, before the first epoch; nothing is
    /// allocated in proportion to `epochs`.
    ///
    /// Errors: shape and target errors (a label ≥ K, say) before any step; a step that fails
    /// (e.g. a non-finite loss) stops the loop with [`Error::Training`] naming the epoch and
    /// step, the parameters left as the last good step made them (and the epoch not counted).
    pub fn fit<F, A, L, O, T>(
        &mut self,
        net: &mut TwoLayerNet<F, A>,
        x: ArrayView2<'_, F>,
        targets: T,
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
        targets.check(loss, net.output_dim())?;
        if n == 0 || cfg.batch_size == 0 {
            return Err(Error::Empty {
                operand: if n == 0 { "x" } else { "batch_size" },
                actual: [n, cfg.batch_size],
            });
        }
        let bs = cfg.batch_size.min(n);
        let mut order: Vec<usize> = (0..n).collect();
        let mut xb = Array2::zeros((bs, x.ncols()));
        let mut tb = targets.batch(bs);
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
                for (&i, mut row) in idx.iter().zip(xb.rows_mut()) {
                    row.assign(&x.row(i));
                }
                targets.gather(idx, &mut tb);
                let xv = xb.slice_axis(Axis(0), (0..m).into());
                let l = opt.train_step(net, xv, T::view(&tb, m), loss).map_err(|e| Error::Training {
                    epoch,
                    step,
                    source: Box::new(e),
                })?;
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
            let report = Epoch {
                epoch,
                loss: total / n as f64,
                accuracy: classified.then(|| correct as f64 / n as f64),
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
            let flow = on_epoch(EpochEnd { report: &report, net, optimizer: opt });
            history.push(report);
            if flow.is_break() {
                break;
            }
        }
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok(history)
    }
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
    Trainer::new(cfg.clone()).fit(net, x, targets, loss, opt, |end| on_epoch(end.report))
}

fn progress_bar(steps: usize) -> ProgressBar {
    let bar = ProgressBar::new(steps as u64);
    if let Ok(style) = ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {per_sec} · {msg}") {
        bar.set_style(style);
    }
    bar
}

fn epoch_line(e: &Epoch, epochs: usize) -> String {
    let acc = e.accuracy.map(|a| format!(", accuracy {:.1}%", 100.0 * a)).unwrap_or_default();
    format!("epoch {}/{epochs}: loss {:.6}{acc}, {:.0} samples/s", e.epoch + 1, e.loss, e.samples_per_sec)
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
