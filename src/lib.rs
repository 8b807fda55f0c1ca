//! A two-layer neural network with backprop written out by hand, every matrix product through
//! CBLAS `?gemm` (OpenBLAS), and no heap allocation in a steady-state training step.
//!
//! # The math
//!
//! For a batch `X` (N×D, one example per row), weights `W1` (D×H), `W2` (H×K), biases `b1`
//! (H), `b2` (K) and a hidden activation `f`:
//!
//! ```text
//! Y1 = X·W1 + b1      H1 = f(Y1)      ŷ = H1·W2 + b2      L = loss(ŷ, y)
//!
//! dŷ  = ∂L/∂ŷ                  MSE: L = (1/N)·Σᵢⱼ (ŷ − y)²  →  dŷ = (2/N)(ŷ − y)
//! dW2 = H1ᵀ·dŷ                 db2 = Σ_rows dŷ               dH1 = dŷ·W2ᵀ
//! dY1 = dH1 ⊙ f'(Y1)           ReLU: f'(Y1) = 1(Y1 > 0)
//! dW1 = Xᵀ·dY1                 db1 = Σ_rows dY1              dX  = dY1·W1ᵀ (on request)
//! SGD: θ ← θ − lr·dθ
//! ```
//!
//! Each line is one function in `net.rs`; the products are GEMMs with transpose flags, never a
//! materialized transpose.
//!
//! # Example
//!
//! ```
//! use two_layer_net::ndarray::{array, Array2};
//! use two_layer_net::rand::{SeedableRng, rngs::StdRng};
//! use two_layer_net::{Loss, Mse, TwoLayerNet};
//!
//! let mut rng = StdRng::seed_from_u64(42);
//! let mut net = TwoLayerNet::<f64>::new(3, 4, 2, &mut rng)?; // D = 3, H = 4, K = 2, ReLU
//! let x = array![[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]];          // N = 2
//! let y = array![[1.0, 0.0], [0.0, 1.0]];
//!
//! // The pieces, for a network inside a larger model:
//! let yhat = net.forward(x.view())?;
//! let mut dyhat = Array2::zeros((2, 2));
//! let loss = Mse.loss_and_grad(yhat, y.view(), dyhat.view_mut())?;
//! let grads = net.backward(x.view(), dyhat.view())?;
//! assert_eq!(grads.w1().dim(), (3, 4));
//! net.step(1e-3)?;
//!
//! // Or all of it, fused:
//! let next = net.train_step(x.view(), y.view(), &Mse, 1e-3)?;
//! assert!(next < loss);
//! # Ok::<(), two_layer_net::Error>(())
//! ```
//!
//! # Linking
//!
//! The default feature `openblas-system` links the system OpenBLAS, found by pkg-config
//! (Debian/Ubuntu: `apt-get install libopenblas-dev pkg-config`). To link another CBLAS
//! provider, turn default features off and link it in your binary, as the blas-src
//! convention has it (`blas-src` with its provider feature, and `extern crate blas_src;`).
//!
//! # Memory
//!
//! For a D→H→K network in `F` (4 bytes for `f32`, 8 for `f64`), with `N_max` the largest batch
//! seen:
//!
//! | what | scalars | method |
//! | --- | --- | --- |
//! | parameters `W1, b1, W2, b2` | `D·H + H + H·K + K` | [`TwoLayerNet::param_bytes`] |
//! | gradients, same layout | `D·H + H + H·K + K` | |
//! | batch workspace `Y1, H1, dY1` (N×H), `ŷ, dŷ` (N×K), `db1, db2` | `(3·H + 2·K)·N_max + H + K` | [`TwoLayerNet::workspace_bytes`] |
//!
//! so `(3·H + 2·K)·size_of::<F>()` bytes per sample of batch. The workspace grows only when a
//! batch is larger than every one before it; [`TwoLayerNet::release_workspace`] frees it.
//! Optimizers with state hold one (`Momentum`) or two (`Adam`, `AdamW`) more buffers of the
//! parameters' size.
//!
//! # Threads
//!
//! OpenBLAS may use several threads for one large GEMM; small products run on the calling
//! thread. If you train several networks at once on threads of your own (rayon,
//! `std::thread`), call [`set_num_threads`]`(1)` (or set `OPENBLAS_NUM_THREADS=1`) so the two
//! kinds of threads do not oversubscribe the cores. [`TwoLayerNet`] is `Send` and `Sync`:
//! `&self` methods only read, and every `&mut self` method works on buffers the network owns.

#![warn(missing_docs)]
// All `unsafe` is in the BLAS boundary module: the CBLAS and OpenBLAS calls in `blas.rs`, and
// its submodule `blas/simd.rs` (calls into `#[target_feature]` loops after the CPU check),
// which allow it, each block with a `// SAFETY:` comment.
#![deny(unsafe_code)]
#![warn(clippy::undocumented_unsafe_blocks)]
// docs.rs (`--cfg docsrs`, nightly): each feature-gated item is shown with the feature it needs.
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "openblas-system")]
extern crate blas_src;
#[cfg(feature = "openblas-system")]
extern crate openblas_src;

mod activation;
mod blas;
mod blas_info;
mod checkpoint;
pub mod datasets;
mod durable;
mod error;
mod gradcheck;
mod init;
mod kernels;
pub mod load;
mod loss;
mod net;
mod optim;
#[cfg(feature = "mpi")]
pub mod parallel;
mod params;
mod scalar;
mod schedule;
mod split;
mod standardize;
mod state;
mod train;
mod workspace;
pub use workspace::Scratch;

pub use activation::{Activation, Identity, LeakyRelu, Relu, Sigmoid, Tanh};
#[cfg(feature = "openblas")]
pub use blas::{num_threads, openblas_config, set_num_threads};
pub use blas_info::{BlasInfo, CpuFeatures, Fallback, Isa, blas_info};
pub use checkpoint::{CheckpointError, from_bytes, from_bytes_with, load, load_with, save, to_bytes};
pub use error::{Error, Result, Shape};
pub use gradcheck::{GradCheck, GradCheckReport, check_gradients};
pub use init::Init;
pub use loss::{L2, Loss, Mse, SoftmaxCrossEntropy};
pub use net::TwoLayerNet;
pub use optim::{Adam, AdamW, Decay, Momentum, Optimizer, OptimizerState, Sgd, Slot, SlotState};
pub use params::{Gradients, Params, ParamsView, ParamsViewMut};
pub use scalar::Scalar;
pub use schedule::{Constant, Cosine, Exponential, Schedule, StepDecay, Warmup};
pub use split::{Split, split, split_stratified};
pub use standardize::Standardizer;
pub use state::TrainingState;
pub use train::{EarlyStopping, Epoch, EpochEnd, Fit, Monitor, Progress, Targets, Trainer, accuracy, fit};

/// Internals exposed to the fuzz targets in `fuzz/` (feature `fuzzing`); not public API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::blas::gemm;
}

/// The ndarray this crate's API speaks, re-exported so that versions match.
pub use ndarray;
/// The rand this crate's constructors take generators from, re-exported so that versions match.
pub use rand;
/// The rand_distr this crate draws its initial weights with (`Normal`, `StandardNormal` …),
/// re-exported so that versions match `rand`.
pub use rand_distr;

/// The README's Rust examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
