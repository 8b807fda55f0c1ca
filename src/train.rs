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
use crate::error::{Error, Result, check_shape};
use crate::loss::Loss;
use crate::net::{TwoLayerNet, argmax};
use crate::optim::Optimizer;
use crate::scalar::Scalar;

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
    /// A progress bar with loss and samples/s when stderr is a terminal, else [`Lines`](Self::Lines).
    #[default]
    Auto,
    /// One line per epoch on stderr.
    Lines,
    /// Nothing.
    Off,
}

/// Settings of [`fit`].
#[derive(Clone, Debug, PartialEq)]
pub struct Fit {
    /// Passes over the data.
    pub epochs: usize,
    /// Examples per step; the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Shuffle the examples at the start of every epoch.
    pub shuffle: bool,
    /// Seed of the shuffling RNG: the same seed gives the same run, bit for bit.
    pub seed: u64,
    /// Where progress goes.
    pub progress: Progress,
}

impl Default for Fit {
    /// 10 epochs of batches of 32, shuffled with seed 0, progress on stderr.
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
    /// Examples per second over the epoch.
    pub samples_per_sec: f64,
}

/// Trains `net` on (`x`, `targets`) with mini-batches: for each epoch, shuffle (if asked),
/// then one [`TwoLayerNet::train_step_with`] per batch. Calls `on_epoch` after each epoch; it
/// can stop the loop early with `ControlFlow::Break(())`. Returns every epoch's report.
///
/// Buffers for a batch are allocated once, before the first epoch.
///
/// Errors: shape and target errors (a label ≥ K, say) before any step; a step that fails (e.g. a non-finite loss) stops
/// the loop with [`Error::Training`] naming the epoch and step, the parameters left as the
/// last good step made them.
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
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut xb = Array2::zeros((bs, x.ncols()));
    let mut tb = targets.batch(bs);
    let bar = match cfg.progress {
        Progress::Auto if std::io::stderr().is_terminal() => Some(progress_bar(cfg.epochs * n.div_ceil(bs))),
        _ => None,
    };
    let lines = cfg.progress == Progress::Lines || (cfg.progress == Progress::Auto && bar.is_none());
    let mut history = Vec::with_capacity(cfg.epochs);
    for epoch in 0..cfg.epochs {
        if cfg.shuffle {
            order.shuffle(&mut rng);
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
            samples_per_sec: n as f64 / secs.max(1e-12),
        };
        if lines {
            eprintln!("{}", epoch_line(&report, cfg.epochs));
        } else if let Some(bar) = &bar {
            bar.println(epoch_line(&report, cfg.epochs));
        }
        let flow = on_epoch(&report);
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
