//! Data-parallel training over MPI (feature `mpi`): every rank holds the same network, takes its
//! slice of each global batch, and one `MPI_Allreduce` per step combines the gradients.
//!
//! # The math
//!
//! A global batch of `N` rows is cut into contiguous shards, rank `r` of `P` taking `n_r` rows
//! ([`shard`]: `N/P` or `N/P + 1` rows each, `Σ_r n_r = N`). Each rank's `backward` gives the
//! mean gradient over its own rows, `ḡ_r = (1/n_r)·Σ_{i∈r} ∇ℓᵢ`, and the loss `L_r` likewise. The
//! gradient and loss of the whole batch are their weighted means:
//!
//! ```text
//! g = Σ_r n_r·ḡ_r / N          L = Σ_r n_r·L_r / N          N = Σ_r n_r
//! ```
//!
//! so unequal shards are weighted by their sizes, and `g` is the gradient that one process
//! would compute on all `N` rows (equal up to rounding: the sums run in another order).
//!
//! # One step, one collective
//!
//! [`DataParallel::train_step_with`] on every rank:
//!
//! 1. the network's forward, loss and backward phases on the local rows: `ḡ_r`, `L_r`;
//! 2. fills a buffer allocated once, `[n_r·ḡ_r (all parameters) | n_r·L_r | n_r | one failure
//!    flag per rank]`, and sums it over the ranks with **one** `MPI_Allreduce` (`MPI_SUM`), so
//!    the global batch size `N`, the loss and which ranks failed travel with the gradient;
//! 3. divides by `N`, adds the L2 term `reg·W` once (the loss's [`Loss::l2`]), and runs the
//!    network's update phase ([`TwoLayerNet::step_with`]).
//!
//! The parameters start equal (rank 0 broadcasts its own in [`DataParallel::new`]), every rank
//! applies the same update to the same summed gradient, so they stay equal, bit for bit, as
//! long as the MPI library returns the same sum on every rank (the MPI standard advises it;
//! OpenMPI 4.1 and MPICH 4.0 do in this crate's MPI test, with 2 and 3 ranks;
//! [`DataParallel::param_divergence`] checks it at any time).
//!
//! # Faults
//!
//! A rank whose local pass fails (a bad label, a shape, an empty shard, a non-finite `Y1`, loss
//! or gradient) still takes part in the reduction, with its flag set: every rank then returns
//! an error at that step — [`ParallelError::Step`] on the failing rank, naming it and the
//! reason, [`ParallelError::OtherRanks`] naming it on the others — nobody updates its
//! parameters or optimizer state, and nobody is left waiting in a collective.
//!
//! A rank that dies (killed, crashed, exited) or stops calling: every collective waits at most
//! [`DataParallel::with_timeout`] (10 minutes by default) and then aborts its rank, which
//! makes `mpirun` end the job instead of hanging (OpenMPI's `mpirun` also ends the job
//! at once by itself when a rank is killed or exits without `MPI_Finalize`). To survive a
//! fault, checkpoint and restart: rank 0 saves a [`TrainingState`](crate::TrainingState) (the
//! network, the optimizer, the loop's position) every so often, and after a restart every rank
//! loads it; the run then continues bit for bit as if it had not stopped (the MPI test checks
//! this at 2 and 3 ranks).
//!
//! # Cost of a step
//!
//! The local pass costs about `1/P` of the single-process one (`∝ N/P · params`); the
//! reduction moves the parameter buffer, `(D·H + H + H·K + K + 2 + P)·size_of::<F>()` bytes,
//! whatever the batch size; and every rank repeats the `O(params)` update (scaling, L2, the
//! optimizer). A ring allreduce takes about `2(P−1)/P · bytes / bandwidth + 2(P−1) · latency`,
//! so scaling stops once `N/P` rows of compute no longer outweigh that plus the update: large
//! global batches scale furthest, and small networks meet the latency term first.
//! [`DataParallel::timings`] tells how a rank's time splits.
//!
//! # Running
//!
//! ```sh
//! cargo build --release --features mpi --example data_parallel
//! OPENBLAS_NUM_THREADS=1 mpirun -n 2 target/release/examples/data_parallel
//! ```
//!
//! The README's MPI section has the rest: threads per rank, several machines, MPICH or
//! OpenMPI, running as root.
//!
//! ```no_run
//! use rand::{SeedableRng, rngs::StdRng};
//! use two_layer_net::parallel::{DataParallel, mpi};
//! use two_layer_net::{L2, Sgd, SoftmaxCrossEntropy, TwoLayerNet, datasets};
//!
//! let universe = mpi::initialize().expect("MPI initialized once");
//! // Same data on every rank (same seed); each rank's initial weights are replaced by rank 0's.
//! let (x, labels) = datasets::spiral::<f64, _>(100, 3, &mut StdRng::seed_from_u64(0));
//! let net = TwoLayerNet::<f64>::new(2, 100, 3, &mut StdRng::seed_from_u64(1))?;
//! let mut dp = DataParallel::new(net, universe.world())?;
//! let loss = L2::new(SoftmaxCrossEntropy, 1e-3);
//! let mut opt = Sgd::new(1.0);
//! for _ in 0..1000 {
//!     // The global batch is all 300 rows; this rank trains on its slice of them.
//!     let rows = dp.local_range(x.nrows());
//!     let _loss = dp.train_step_with(
//!         x.slice(ndarray::s![rows.clone(), ..]),
//!         labels.slice(ndarray::s![rows]),
//!         &loss,
//!         &mut opt,
//!     )?;
//!     // `_loss` is the loss of the whole global batch, the same on every rank.
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::ops::Range;
use std::time::{Duration, Instant};

use mpi::collective::{CommunicatorCollectives, Root, SystemOperation};
use mpi::datatype::Equivalence;
use mpi::topology::Communicator;
use ndarray::ArrayView2;

use crate::activation::{Activation, Relu};
use crate::error::Error;
use crate::loss::Loss;
use crate::net::TwoLayerNet;
use crate::optim::Optimizer;
use crate::scalar::Scalar;

mod watchdog;

use watchdog::{Collective, Watchdog};

/// The rsmpi this module speaks (`mpi::initialize()`, communicators), re-exported so that
/// versions match.
pub use mpi;

/// Slots after the gradient in the reduce buffer before the per-rank failure flags: `n_r·L_r`
/// and `n_r`.
const SUMS: usize = 2;

/// How long a collective waits for the other ranks by default before it aborts the job.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);

/// The rows of a global batch of `n_global` rows that rank `rank` of `size` trains on:
/// contiguous, in rank order, `n_global / size` rows each and one more for the first
/// `n_global % size` ranks, so shard sizes differ by at most 1 and cover `0..n_global`.
///
/// Rank `r` gets `r·q + min(r, m) .. (r+1)·q + min(r+1, m)`, with `q = n_global / size`,
/// `m = n_global % size`; a rank's shard is empty when `n_global < size` and `r ≥ n_global`.
///
/// # Panics
///
/// If `rank >= size` (so also if `size == 0`).
///
/// ```
/// use two_layer_net::parallel::shard;
///
/// assert_eq!([shard(10, 0, 3), shard(10, 1, 3), shard(10, 2, 3)], [0..4, 4..7, 7..10]);
/// assert_eq!(shard(2, 2, 3), 2..2);
/// ```
pub fn shard(n_global: usize, rank: usize, size: usize) -> Range<usize> {
    assert!(rank < size, "rank {rank} is not below the number of ranks {size}");
    let (q, m) = (n_global / size, n_global % size);
    let start = rank * q + rank.min(m);
    start..start + q + usize::from(rank < m)
}

/// Why a data-parallel call failed. A failed step changes the parameters and the optimizer's
/// state on no rank, and every rank returns an error at the same step.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ParallelError {
    /// This rank's own part of the step failed, before anything was applied: its input was
    /// refused (shape, label, an empty shard, a non-finite `Y1` or loss) or its local gradient
    /// is not finite. The other ranks return [`OtherRanks`](Self::OtherRanks) naming it.
    Step {
        /// This rank.
        rank: usize,
        /// Why.
        source: Error,
    },
    /// This rank's part of the step was fine, but these ranks' parts failed (each of them
    /// returns [`Step`](Self::Step) with its reason).
    OtherRanks {
        /// The ranks that failed, in increasing order.
        ranks: Vec<usize>,
    },
    /// Every rank's part was fine, but the reduced step failed, alike on every rank: the sum
    /// over the ranks overflowed, or the optimizer refused the update (an [`Error::NonFinite`]).
    Reduced(Error),
    /// [`DataParallel::new`] could not start the thread that keeps the collectives' timeout.
    Watchdog(String),
    /// The ranks' networks differ in shape (found by [`DataParallel::new`]): the smallest
    /// and largest `(D, H, K)` over the ranks, dimension by dimension.
    Layout {
        /// The smallest D, H and K over the ranks.
        min: [usize; 3],
        /// The largest D, H and K over the ranks.
        max: [usize; 3],
    },
}

impl fmt::Display for ParallelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParallelError::Step { rank, source } => {
                write!(f, "data-parallel step failed on rank {rank} (this rank): {source}")
            }
            ParallelError::OtherRanks { ranks } => {
                let ranks: Vec<String> = ranks.iter().map(usize::to_string).collect();
                write!(f, "data-parallel step failed on rank {}; nothing was applied", ranks.join(", "))
            }
            ParallelError::Reduced(e) => {
                write!(f, "data-parallel step failed on every rank after the reduction: {e}")
            }
            ParallelError::Watchdog(e) => write!(f, "cannot start the watchdog thread: {e}"),
            ParallelError::Layout { min, max } => write!(
                f,
                "the ranks' networks differ in shape: (D, H, K) from {min:?} to {max:?} across ranks"
            ),
        }
    }
}

impl std::error::Error for ParallelError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ParallelError::Step { source, .. } | ParallelError::Reduced(source) => Some(source),
            _ => None,
        }
    }
}

/// Where a rank's time went, summed over the steps of [`DataParallel::train_step_with`]
/// since construction (or [`DataParallel::reset_timings`]).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timings {
    /// Steps timed.
    pub steps: u64,
    /// Forward, loss, backward on the local rows, and packing the reduce buffer.
    pub compute: Duration,
    /// The allreduce, including the wait for the slowest rank.
    pub allreduce: Duration,
    /// Dividing by `N`, the L2 term, and the optimizer.
    pub update: Duration,
}

/// A [`TwoLayerNet`] trained data-parallel over the ranks of an MPI communicator `C`.
///
/// Every method that communicates is collective: every rank of the communicator must call it,
/// in the same order, with the same loss settings (`reg`), the same kind of optimizer in the
/// same state and the same network shape. The local batches may differ in size (see [`shard`]);
/// the global gradient is `g = Σ_r n_r·ḡ_r / N` (see the [module docs](self)).
///
/// Buffers: two reduce buffers of `len(params) + 2 + P` scalars, allocated by [`new`](Self::new),
/// and the network's own workspace; after the first step at a batch size a step allocates
/// nothing.
///
/// `F` must be an MPI datatype (`f32` → `MPI_FLOAT`, `f64` → `MPI_DOUBLE`). With `f32`, the
/// row counts travel as `f32` too: keep a global batch under 2²⁴ rows.
#[derive(Debug)]
pub struct DataParallel<F: Scalar + Equivalence, C: Communicator, A: Activation = Relu> {
    net: TwoLayerNet<F, A>,
    comm: C,
    /// `[n_r·ḡ_r | n_r·L_r | n_r | failed_0 … failed_{P−1}]`, this rank's contribution (its
    /// own failure flag at `failed_r`, the others 0).
    send: Vec<F>,
    /// The sum of every rank's `send`.
    recv: Vec<F>,
    timings: Timings,
    /// How long a collective waits for the other ranks before aborting the job.
    timeout: Duration,
    /// Steps attempted, for the timeout's message.
    steps: u64,
    /// Ends this rank when a collective outlives `timeout`.
    watchdog: Watchdog,
}

impl<F: Scalar + Equivalence, C: Communicator, A: Activation> DataParallel<F, C, A> {
    /// Wraps `net` for training over `comm` (e.g. `universe.world()`, or a
    /// [`duplicate`](mpi::topology::Communicator::duplicate) of it to keep this traffic apart):
    /// checks that every rank's network has the same shape, then broadcasts rank 0's
    /// parameters to every other rank (so the others' initial weights do not matter).
    /// Collective.
    ///
    /// Errors: [`ParallelError::Layout`] on every rank if the shapes differ; the parameters are
    /// then left as they were.
    pub fn new(net: TwoLayerNet<F, A>, comm: C) -> Result<Self, ParallelError> {
        let dims = [net.input_dim(), net.hidden_dim(), net.output_dim()];
        // max of (d, h, k, −d, −h, −k): the largest dimensions and the negated smallest, in
        // one reduction.
        let mut send = [0i64; 6];
        for (i, &v) in dims.iter().enumerate() {
            // Dimensions fit BLAS's 32-bit int, so they fit i64.
            send[i] = v as i64;
            send[i + 3] = -(v as i64);
        }
        let watchdog =
            Watchdog::start(comm.rank(), comm.size()).map_err(|e| ParallelError::Watchdog(e.to_string()))?;
        let mut recv = [0i64; 6];
        watchdog.guard(Collective::ShapeCheck, 0, DEFAULT_TIMEOUT, || {
            comm.all_reduce_into(&send[..], &mut recv[..], SystemOperation::max())
        });
        let max = [recv[0], recv[1], recv[2]].map(|v| v as usize);
        let min = [-recv[3], -recv[4], -recv[5]].map(|v| v as usize);
        if min != max {
            return Err(ParallelError::Layout { min, max });
        }
        let len = net.params().len() + SUMS + comm.size() as usize;
        let mut dp = DataParallel {
            net,
            comm,
            send: vec![F::zero(); len],
            recv: vec![F::zero(); len],
            timings: Timings::default(),
            timeout: DEFAULT_TIMEOUT,
            steps: 0,
            watchdog,
        };
        dp.broadcast_params();
        Ok(dp)
    }

    /// Copies rank 0's parameters to every rank (one `MPI_Bcast` of the flat buffer), e.g.
    /// after loading a checkpoint on rank 0 only. Collective.
    pub fn broadcast_params(&mut self) {
        let (root, params) = (self.comm.process_at_rank(0), self.net.params_mut().as_slice_mut());
        self.watchdog.guard(Collective::Broadcast, 0, self.timeout, || root.broadcast_into(params));
    }

    /// This process's rank, `0..size`.
    pub fn rank(&self) -> usize {
        // MPI ranks are non-negative.
        self.comm.rank() as usize
    }

    /// The number of ranks `P`.
    pub fn size(&self) -> usize {
        self.comm.size() as usize
    }

    /// The communicator.
    pub fn comm(&self) -> &C {
        &self.comm
    }

    /// The network (the same parameters on every rank).
    pub fn net(&self) -> &TwoLayerNet<F, A> {
        &self.net
    }

    /// The network, mutably: for [`forward`](TwoLayerNet::forward) or
    /// [`accuracy`](crate::accuracy) on this rank. Changing its parameters on some ranks only
    /// puts the ranks out of step (see [`param_divergence`](Self::param_divergence) and
    /// [`broadcast_params`](Self::broadcast_params)).
    pub fn net_mut(&mut self) -> &mut TwoLayerNet<F, A> {
        &mut self.net
    }

    /// The network and the communicator back.
    pub fn into_inner(self) -> (TwoLayerNet<F, A>, C) {
        (self.net, self.comm)
    }

    /// This rank's rows of a global batch of `n_global` rows: [`shard`]`(n_global, rank, size)`.
    pub fn local_range(&self, n_global: usize) -> Range<usize> {
        shard(n_global, self.rank(), self.size())
    }

    /// This rank's time per phase over the steps so far.
    pub fn timings(&self) -> Timings {
        self.timings
    }

    /// Restarts [`timings`](Self::timings) from zero (e.g. after warm-up steps).
    pub fn reset_timings(&mut self) {
        self.timings = Timings::default();
    }

    /// How long each collective waits for the other ranks before it gives up (default
    /// [`DEFAULT_TIMEOUT`], 10 minutes, PyTorch's `init_process_group` default for NCCL).
    ///
    /// A rank that dies, hangs or stops calling would otherwise leave the others waiting in a
    /// collective forever, and `mpirun` with them. When the time is up, a waiting rank prints
    /// which rank it is and which collective (and step) it waited in, and aborts (SIGABRT);
    /// `mpirun` then ends the whole job. A watchdog thread, started by [`new`](Self::new),
    /// keeps the time. Keep the timeout above the longest time one rank may spend between two
    /// steps (an evaluation, a checkpoint written by rank 0 only). Set it alike on every rank.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The timeout of [`with_timeout`](Self::with_timeout).
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// One data-parallel training step. Collective: every rank passes its own rows of the
    /// same global batch (`x` n_r×D and `target`, e.g. the [`local_range`](Self::local_range)
    /// of it), the same `loss` settings and its copy of the same optimizer.
    ///
    /// Computes `ḡ_r` and `L_r` on the local rows, sums `[n_r·ḡ_r | n_r·L_r | n_r]` over the
    /// ranks in one allreduce, and on every rank sets the gradient to
    /// `g = Σ_r n_r·ḡ_r / N + reg·W` (the L2 term, [`Loss::l2`], added once, after the
    /// reduction) and applies `opt` ([`TwoLayerNet::step_with`]). Returns the loss of the
    /// global batch before the update, `Σ_r n_r·L_r / N + 0.5·reg·(ΣW1² + ΣW2²)`, the same on
    /// every rank: what [`TwoLayerNet::train_step_with`] returns for the whole batch in one
    /// process, whose parameters this step reproduces up to rounding.
    ///
    /// Errors, at the same step on every rank so that none waits for another:
    /// [`ParallelError::Step`] (naming this rank) on a rank whose input is refused (shapes,
    /// labels, an empty shard: give every rank at least one row, i.e. a global batch of at
    /// least `P` rows) or whose loss or gradient is not finite, and
    /// [`ParallelError::OtherRanks`] naming those ranks on the others;
    /// [`ParallelError::Reduced`] on every rank if the summed loss or gradient is not finite
    /// or the optimizer refuses the update. The parameters and the optimizer's state are then
    /// unchanged on every rank. A rank that does not answer within the
    /// [timeout](Self::with_timeout) aborts the job.
    pub fn train_step_with<L: Loss<F>, O: Optimizer<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
        opt: &mut O,
    ) -> Result<F, ParallelError> {
        let start = Instant::now();
        let (p, rank) = (self.net.params().len(), self.rank());
        let local = self.local_pass(x, target, loss);
        let (grad, extra) = self.send.split_at_mut(p);
        let (sums, flags) = extra.split_at_mut(SUMS);
        flags.fill(F::zero());
        let local = local.and_then(|l| {
            let n = F::cast(x.nrows() as f64);
            let local_grads = self.net.gradients().map(|g| g.as_slice()).unwrap_or(&[]);
            // The finiteness of n_r·ḡ_r in the pass that writes it (a boolean AND, which
            // vectorizes): a rank whose own gradient overflowed is named as the cause.
            let mut finite = true;
            for (s, &g) in grad.iter_mut().zip(local_grads) {
                *s = n * g;
                finite &= s.is_finite();
            }
            sums.copy_from_slice(&[n * l, n]);
            if finite { Ok(l) } else { Err(Error::NonFinite { what: "gradient" }) }
        });
        if local.is_err() {
            grad.fill(F::zero());
            sums.fill(F::zero());
            flags[rank] = F::one();
        }
        let reduce = Instant::now();
        self.steps += 1;
        let (comm, send, recv) = (&self.comm, &self.send[..], &mut self.recv[..]);
        self.watchdog.guard(Collective::Step, self.steps, self.timeout, || {
            comm.all_reduce_into(send, recv, SystemOperation::sum())
        });
        let update = Instant::now();
        let result = self.apply(local, loss, opt);
        self.timings.steps += 1;
        self.timings.compute += reduce - start;
        self.timings.allreduce += update - reduce;
        self.timings.update += update.elapsed();
        result
    }

    /// Forward, loss and backward on the local rows (the network's own phases): leaves
    /// `ḡ_r` in the network's gradients and returns `L_r` (the data loss, without the penalty).
    fn local_pass<L: Loss<F>>(
        &mut self,
        x: ArrayView2<'_, F>,
        target: L::Target<'_>,
        loss: &L,
    ) -> crate::Result<F> {
        let l = self.net.forward_loss(x, target, loss)?;
        self.net.backward_loss(x)?;
        Ok(l)
    }

    /// After the reduction: the error if any rank failed, else `g = Σ n_r·ḡ_r / N` into the
    /// network's gradients, the penalty's gradient on top, and the update phase.
    fn apply<L: Loss<F>, O: Optimizer<F>>(
        &mut self,
        local: crate::Result<F>,
        loss: &L,
        opt: &mut O,
    ) -> Result<F, ParallelError> {
        let p = self.net.params().len();
        let (sum_grad, extra) = self.recv.split_at(p);
        let (sums, flags) = extra.split_at(SUMS);
        let [sum_loss, n_global] = [sums[0], sums[1]];
        if let Err(source) = local {
            return Err(ParallelError::Step { rank: self.rank(), source });
        }
        if flags.iter().any(|&f| f != F::zero()) {
            let ranks = flags.iter().enumerate().filter(|&(_, &f)| f != F::zero()).map(|(r, _)| r).collect();
            return Err(ParallelError::OtherRanks { ranks });
        }
        let inv_n = F::one() / n_global;
        let l = sum_loss * inv_n + self.net.penalty(loss);
        if !l.is_finite() {
            return Err(ParallelError::Reduced(Error::NonFinite { what: "loss" }));
        }
        for (g, &s) in self.net.gradients_mut().as_slice_mut().iter_mut().zip(sum_grad) {
            *g = s * inv_n;
        }
        self.net.add_penalty_gradient(loss);
        // The optimizer refuses a non-finite gradient or update, alike on every rank.
        self.net.step_with(opt).map_err(ParallelError::Reduced)?;
        Ok(l)
    }

    /// The largest `|θ − θ₀|` over all parameters and ranks, where `θ₀` are rank 0's
    /// parameters (infinite if a NaN differs): 0 when every rank holds the same parameters,
    /// as data-parallel training keeps them. The same value on every rank. Collective (one
    /// broadcast of the parameters, one allreduce of a scalar); allocates nothing.
    pub fn param_divergence(&mut self) -> F {
        let p = self.net.params().len();
        let theta0 = &mut self.recv[..p];
        theta0.copy_from_slice(self.net.params().as_slice());
        let root = self.comm.process_at_rank(0);
        self.watchdog.guard(Collective::Divergence, 0, self.timeout, || root.broadcast_into(&mut *theta0));
        let mut local = F::zero();
        for (&a, &b) in self.net.params().as_slice().iter().zip(&*theta0) {
            if a == b || (a.is_nan() && b.is_nan()) {
                continue;
            }
            let d = (a - b).abs();
            local = if d.is_nan() { F::infinity() } else { local.max(d) };
        }
        let mut global = F::zero();
        let comm = &self.comm;
        self.watchdog.guard(Collective::Divergence, 0, self.timeout, || {
            comm.all_reduce_into(&local, &mut global, SystemOperation::max())
        });
        global
    }
}

#[cfg(test)]
mod tests {
    use super::shard;

    #[test]
    fn shards_cover_the_batch_in_order_and_differ_by_at_most_one() {
        for size in 1..=9 {
            for n in 0..=40 {
                let parts: Vec<_> = (0..size).map(|r| shard(n, r, size)).collect();
                assert_eq!(parts[0].start, 0);
                assert_eq!(parts[size - 1].end, n);
                for w in parts.windows(2) {
                    assert_eq!(w[0].end, w[1].start);
                }
                let lens: Vec<_> = parts.iter().map(|r| r.len()).collect();
                let (lo, hi) = (lens.iter().min().unwrap(), lens.iter().max().unwrap());
                assert!(hi - lo <= 1, "n {n}, size {size}: {lens:?}");
                assert!(lens.windows(2).all(|w| w[0] >= w[1]), "larger shards first: {lens:?}");
            }
        }
    }

    #[test]
    #[should_panic(expected = "not below")]
    fn a_rank_outside_the_communicator_panics() {
        shard(10, 3, 3);
    }
}
