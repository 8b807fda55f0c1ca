//! The training state: everything a run needs to continue bit for bit after a restart — the
//! networks' parameters, tensors of your own, each optimizer's state, the training loop's
//! position and your own metadata — in one safetensors file that `safetensors.numpy` reads.
//!
//! # Format
//!
//! ```text
//! tensor                   dtype            shape     what
//! {net}.w1 .b1 .w2 .b2     F32 | F64        as save   a network's parameters (see `save`)
//! {name}                   F32 | F64        yours     a tensor of your own
//! {opt}.{i}.step           I64              []        steps the optimizer applied to slot i
//! {opt}.{i}.{buffer}       F32 | F64        [len]     its buffers: momentum_buffer, exp_avg, exp_avg_sq
//!
//! __metadata__ key         value
//! format                   "two-layer-net/training-state"
//! format_version           "1"
//! version                  the crate's version (recorded, not checked)
//! dtype                    "f32" | "f64"
//! {net}.d .h .k            a network's dimensions; {net}.activation its activation
//! {opt}.kind               "sgd" | "momentum" | "adam" | "adamw"
//! {opt}.slots              the number of slots with state
//! {opt}.buffers            the buffer names, comma-separated
//! {opt}.hyperparameters    their names, comma-separated; {opt}.hyper.{name} each value
//!                          (Rust's shortest round-trip form of an f64)
//! loop.{key}               the training loop's position (see `loop_state`)
//! user.{key}               your metadata (see `metadata`)
//! ```
//!
//! Loading checks the format, that every float tensor has the state's dtype and every value
//! is finite (hyperparameters finite in that dtype), and the optimizer entries' structure;
//! restoring into a network or optimizer checks that it fits (shape, activation, kind). No
//! input panics. The setters refuse what the file cannot hold (reserved names, shapes whose
//! product overflows, step counts beyond `I64`), and writing refuses a file readers would
//! refuse: whatever [`TrainingState::to_bytes`] writes, [`TrainingState::from_bytes`] reads
//! back equal.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use safetensors::Dtype;

use crate::activation::Activation;
use crate::checkpoint::{self, CheckpointError, decode, dtype, encode, parse, serialize};
use crate::durable::write_atomic;
use crate::error::Error;
use crate::net::TwoLayerNet;
use crate::optim::{Optimizer, OptimizerState, SlotState};
use crate::scalar::Scalar;

const FORMAT: &str = "two-layer-net/training-state";
const FORMAT_VERSION: &str = "1";
/// The network tensors, in the order of the parameter buffer.
const NET_TENSORS: [&str; 4] = ["w1", "b1", "w2", "b2"];

/// A tensor of the state: its shape and its values, row-major.
#[derive(Clone, Debug, PartialEq)]
struct Tensor<F> {
    shape: Vec<usize>,
    values: Vec<F>,
}

/// A training state, built up with `set_*` and written with [`save`](Self::save), or read
/// with [`load`](Self::load) and put back with `restore_*`.
///
/// ```
/// use two_layer_net::{Adam, Mse, Optimizer, TrainingState, TwoLayerNet, ndarray::array};
/// use two_layer_net::rand::{SeedableRng, rngs::StdRng};
///
/// let (x, y) = (array![[1.0, 2.0], [0.5, -1.0]], array![[1.0], [0.0]]);
/// let mut net = TwoLayerNet::<f64>::new(2, 4, 1, &mut StdRng::seed_from_u64(0))?;
/// let mut adam = Adam::new(1e-2);
/// net.train_step_with(x.view(), y.view(), &Mse, &mut adam)?;
///
/// let mut state = TrainingState::new();
/// state.set_net("net", &net)?;
/// state.set_optimizer("adam", &adam)?;
/// state.metadata_mut().insert("note".into(), "after one step".into());
/// let bytes = state.to_bytes()?;
///
/// // Later, maybe in another process:
/// let state = TrainingState::<f64>::from_bytes(&bytes)?;
/// let mut net2 = TwoLayerNet::<f64>::new(2, 4, 1, &mut StdRng::seed_from_u64(99))?;
/// let mut adam2 = Adam::new(0.0);
/// state.restore_net("net", &mut net2)?;
/// state.restore_optimizer("adam", &mut adam2)?;
/// assert_eq!(net2.params(), net.params());
/// assert_eq!(adam2.state(), adam.state());
/// assert_eq!(state.metadata()["note"], "after one step");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct TrainingState<F> {
    tensors: BTreeMap<String, Tensor<F>>,
    steps: BTreeMap<String, u64>,
    /// Metadata that describes the entries: networks' dimensions, optimizers' kinds.
    entries: BTreeMap<String, String>,
    loop_state: BTreeMap<String, String>,
    metadata: BTreeMap<String, String>,
}

impl<F: Scalar> Default for TrainingState<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl<F: Scalar> TrainingState<F> {
    /// An empty state.
    pub fn new() -> Self {
        TrainingState {
            tensors: BTreeMap::new(),
            steps: BTreeMap::new(),
            entries: BTreeMap::new(),
            loop_state: BTreeMap::new(),
            metadata: BTreeMap::new(),
        }
    }

    /// Records `net` under `name`: tensors `{name}.w1`, `.b1`, `.w2`, `.b2` and metadata
    /// `{name}.d`, `.h`, `.k`, `.activation`. All or nothing.
    ///
    /// Errors: [`CheckpointError::Entry`] for a reserved `name` (see
    /// [`set_optimizer`](Self::set_optimizer)) or a tensor name [`set_tensor`](Self::set_tensor)
    /// refuses; [`CheckpointError::NonFinite`] if a parameter is not finite.
    pub fn set_net<A: Activation>(
        &mut self,
        name: &str,
        net: &TwoLayerNet<F, A>,
    ) -> Result<(), CheckpointError> {
        check_entry_name(name)?;
        let (d, h, k) = net.params().dims();
        let shapes = [vec![d, h], vec![h], vec![h, k], vec![k]];
        let tensors = NET_TENSORS.map(|tensor| format!("{name}.{tensor}"));
        for ((tensor, shape), part) in tensors.iter().zip(&shapes).zip(net.params().parts()) {
            self.check_tensor(tensor, shape, part)?;
        }
        for ((tensor, shape), part) in tensors.into_iter().zip(shapes).zip(net.params().parts()) {
            self.tensors.insert(tensor, Tensor { shape, values: part.to_vec() });
        }
        for (key, value) in [("d", d.to_string()), ("h", h.to_string()), ("k", k.to_string())] {
            self.entries.insert(format!("{name}.{key}"), value);
        }
        self.entries.insert(format!("{name}.activation"), net.activation().describe());
        Ok(())
    }

    /// Records a tensor of your own (a layer's weights, say) under `name`, with `shape`
    /// (row-major, `values.len()` = the product of `shape`).
    ///
    /// Errors: [`CheckpointError::Entry`] for the name `__metadata__` (the safetensors header's
    /// own) or an optimizer's step count's (`{opt}.{i}.step`); [`CheckpointError::Shape`] if
    /// the lengths disagree or the shape's product overflows `usize`;
    /// [`CheckpointError::NonFinite`] if a value is not finite.
    pub fn set_tensor(&mut self, name: &str, shape: &[usize], values: &[F]) -> Result<(), CheckpointError> {
        self.check_tensor(name, shape, values)?;
        self.tensors.insert(name.to_owned(), Tensor { shape: shape.to_vec(), values: values.to_vec() });
        Ok(())
    }

    /// `Ok` if [`set_tensor`](Self::set_tensor) takes these.
    fn check_tensor(&self, name: &str, shape: &[usize], values: &[F]) -> Result<(), CheckpointError> {
        if name == "__metadata__" || self.steps.contains_key(name) {
            return Err(CheckpointError::Entry {
                name: name.to_owned(),
                expected: "a tensor name other than `__metadata__` and the optimizers' step counts".into(),
                found: Some(name.to_owned()),
            });
        }
        if elements(shape) != Some(values.len()) {
            return Err(CheckpointError::Shape {
                tensor: name.to_owned(),
                expected: vec![values.len()],
                found: shape.to_vec(),
            });
        }
        encode(name, values, &mut Vec::new())
    }

    /// Records `opt`'s [`state`](Optimizer::state) under `name`: its kind and
    /// hyperparameters as metadata, each slot's step count and buffers as tensors. All or
    /// nothing.
    ///
    /// `name`, as a network's, must not start with the sections `loop` or `user` (its entries
    /// would land in the loop's or your metadata).
    ///
    /// Errors: [`CheckpointError::Entry`] for a reserved `name`, a buffer or hyperparameter
    /// name that is empty, holds a comma, is `step` or comes twice, a step count's name that is already a
    /// tensor's, a step count beyond `i64::MAX` (the file's `I64`), or a hyperparameter that is
    /// not finite in `F`; [`CheckpointError::NonFinite`] if a buffer value is not finite.
    pub fn set_optimizer<O: Optimizer<F>>(&mut self, name: &str, opt: &O) -> Result<(), CheckpointError> {
        check_entry_name(name)?;
        let state = opt.state();
        let entry = |key: String, expected: &str, found: String| {
            Err(CheckpointError::Entry { name: key, expected: expected.into(), found: Some(found) })
        };
        // The name lists are written comma-joined and split on commas when read, and each
        // name keys one tensor or metadata entry: a name twice would be read back as its
        // last value twice.
        let lists: [Vec<&String>; 2] =
            [state.buffer_names.iter().collect(), state.hyperparameters.iter().map(|(h, _)| h).collect()];
        let bad = lists.iter().find_map(|list| {
            let mut names = list.iter().enumerate();
            names.find(|&(i, n)| n.is_empty() || n.contains(',') || *n == "step" || list[..i].contains(n))
        });
        if let Some((_, bad)) = bad {
            return entry(
                format!("{name}.buffers"),
                "names neither empty, with a comma, `step` nor repeated",
                (*bad).clone(),
            );
        }
        for (h, value) in &state.hyperparameters {
            if !F::cast(*value).is_finite() {
                return entry(
                    format!("{name}.hyper.{h}"),
                    "a number finite in the state's dtype",
                    value.to_string(),
                );
            }
        }
        let mut buffers = Vec::new();
        for (i, slot) in state.slots.iter().enumerate() {
            let step = format!("{name}.{i}.step");
            if self.tensors.contains_key(&step) {
                return entry(step, "an optimizer step count, not a tensor's name", "a tensor".into());
            }
            step_bytes(&step, slot.step)?;
            for (buffer, values) in state.buffer_names.iter().zip(&slot.buffers) {
                let tensor = format!("{name}.{i}.{buffer}");
                self.check_tensor(&tensor, &[values.len()], values)?;
                buffers.push((tensor, values));
            }
        }
        for (tensor, values) in buffers {
            self.tensors.insert(tensor, Tensor { shape: vec![values.len()], values: values.clone() });
        }
        for (i, slot) in state.slots.iter().enumerate() {
            self.steps.insert(format!("{name}.{i}.step"), slot.step);
        }
        let names: Vec<&str> = state.hyperparameters.iter().map(|(n, _)| n.as_str()).collect();
        self.entries.insert(format!("{name}.kind"), state.kind.clone());
        self.entries.insert(format!("{name}.slots"), state.slots.len().to_string());
        self.entries.insert(format!("{name}.buffers"), state.buffer_names.join(","));
        self.entries.insert(format!("{name}.hyperparameters"), names.join(","));
        for (h, value) in &state.hyperparameters {
            self.entries.insert(format!("{name}.hyper.{h}"), format!("{value:?}"));
        }
        Ok(())
    }

    /// The training loop's position (epoch, batch, RNG state, schedule, best-so-far …), as
    /// strings by key; stored as metadata `loop.{key}`. Empty unless a loop filled it.
    pub fn loop_state(&self) -> &BTreeMap<String, String> {
        &self.loop_state
    }

    /// The training loop's position, mutably.
    pub fn loop_state_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.loop_state
    }

    /// Your metadata (a scaler's mean and std, class names …), stored as `user.{key}`.
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// Your metadata, mutably.
    pub fn metadata_mut(&mut self) -> &mut BTreeMap<String, String> {
        &mut self.metadata
    }

    /// The tensor `name` (a network's, an optimizer's or your own): its shape and values.
    pub fn tensor(&self, name: &str) -> Option<(&[usize], &[F])> {
        self.tensors.get(name).map(|t| (t.shape.as_slice(), t.values.as_slice()))
    }

    /// Puts the network recorded as `name` into `net`, whose shape and activation must be the
    /// recorded ones. All or nothing: on error `net` is unchanged.
    ///
    /// Errors: [`CheckpointError::Entry`] for a missing network or another shape or
    /// activation; [`CheckpointError::Shape`] for a tensor of the wrong shape.
    pub fn restore_net<A: Activation>(
        &self,
        name: &str,
        net: &mut TwoLayerNet<F, A>,
    ) -> Result<(), CheckpointError> {
        let (d, h, k) = net.params().dims();
        for (key, value) in [("d", d.to_string()), ("h", h.to_string()), ("k", k.to_string())] {
            self.expect_entry(&format!("{name}.{key}"), &value)?;
        }
        self.expect_entry(&format!("{name}.activation"), &net.activation().describe())?;
        // Every tensor found and checked before the first is copied: all or nothing.
        let shapes = [vec![d, h], vec![h], vec![h, k], vec![k]];
        let mut found = Vec::with_capacity(4);
        for (tensor, shape) in NET_TENSORS.iter().zip(&shapes) {
            found.push(self.tensor_of_shape(&format!("{name}.{tensor}"), shape)?);
        }
        for (dst, src) in net.params_mut().parts_mut().into_iter().zip(found) {
            dst.copy_from_slice(src);
        }
        Ok(())
    }

    /// Copies the tensor `name` into `out`; it must have `shape`.
    ///
    /// Errors: [`CheckpointError::Entry`] if there is no such tensor; [`CheckpointError::Shape`]
    /// if it has another shape or `out` another length.
    pub fn restore_tensor(&self, name: &str, shape: &[usize], out: &mut [F]) -> Result<(), CheckpointError> {
        if elements(shape) != Some(out.len()) {
            return Err(CheckpointError::Shape {
                tensor: name.to_owned(),
                expected: shape.to_vec(),
                found: vec![out.len()],
            });
        }
        out.copy_from_slice(self.tensor_of_shape(name, shape)?);
        Ok(())
    }

    /// Puts the optimizer state recorded as `name` into `opt` ([`Optimizer::set_state`]):
    /// hyperparameters, step counts, buffers. All or nothing.
    ///
    /// Errors: [`CheckpointError::Entry`] if there is none under `name`, or it is of another
    /// kind than `opt`, or does not fit it.
    pub fn restore_optimizer<O: Optimizer<F>>(&self, name: &str, opt: &mut O) -> Result<(), CheckpointError> {
        let state = self.optimizer_state(name)?;
        self.expect_entry(&format!("{name}.kind"), &opt.state().kind)?;
        opt.set_state(state).map_err(|e| match e {
            Error::State { what, expected, found } => {
                CheckpointError::Entry { name: format!("{name}.{what}"), expected, found: Some(found) }
            }
            e => CheckpointError::Net(e),
        })
    }

    /// The optimizer state recorded under `name`.
    fn optimizer_state(&self, name: &str) -> Result<OptimizerState<F>, CheckpointError> {
        let entry = |key: &str| self.entry(&format!("{name}.{key}"));
        let list = |s: &str| -> Vec<String> {
            if s.is_empty() { Vec::new() } else { s.split(',').map(str::to_owned).collect() }
        };
        let kind = entry("kind")?.to_owned();
        let buffer_names = list(entry("buffers")?);
        let slots_key = format!("{name}.slots");
        let slots: usize = self.entry(&slots_key)?.parse().map_err(|_| CheckpointError::Entry {
            name: slots_key.clone(),
            expected: "a count (decimal integer)".into(),
            found: self.entries.get(&slots_key).cloned(),
        })?;
        let mut hyperparameters = Vec::new();
        for h in list(entry("hyperparameters")?) {
            let key = format!("{name}.hyper.{h}");
            let value = self.entry(&key)?;
            // Finite in `F`, not only in f64: `lr = 1e39` would be ∞ in an f32 optimizer.
            let parsed = match value.parse::<f64>() {
                Ok(v) if F::cast(v).is_finite() => v,
                _ => {
                    return Err(CheckpointError::Entry {
                        name: key.clone(),
                        expected: "a number finite in the state's dtype".into(),
                        found: Some(value.to_owned()),
                    });
                }
            };
            hyperparameters.push((h, parsed));
        }
        let mut slot_states = Vec::new();
        for i in 0..slots.min(self.steps.len() + 1) {
            let step_key = format!("{name}.{i}.step");
            let step = *self.steps.get(&step_key).ok_or_else(|| CheckpointError::Entry {
                name: step_key.clone(),
                expected: "a step count (I64 tensor)".into(),
                found: None,
            })?;
            let buffers = buffer_names
                .iter()
                .map(|b| {
                    let key = format!("{name}.{i}.{b}");
                    self.tensors.get(&key).map(|t| t.values.clone()).ok_or(CheckpointError::Entry {
                        name: key,
                        expected: "an optimizer buffer".into(),
                        found: None,
                    })
                })
                .collect::<Result<_, _>>()?;
            slot_states.push(SlotState { step, buffers });
        }
        if slot_states.len() != slots {
            return Err(CheckpointError::Entry {
                name: slots_key,
                expected: format!("at most {} slots (one step count each)", self.steps.len()),
                found: Some(slots.to_string()),
            });
        }
        Ok(OptimizerState { kind, hyperparameters, buffer_names, slots: slot_states })
    }

    fn entry(&self, name: &str) -> Result<&str, CheckpointError> {
        self.entries.get(name).map(String::as_str).ok_or_else(|| CheckpointError::Entry {
            name: name.to_owned(),
            expected: "an entry".into(),
            found: None,
        })
    }

    fn expect_entry(&self, name: &str, expected: &str) -> Result<(), CheckpointError> {
        match self.entries.get(name) {
            Some(found) if found == expected => Ok(()),
            found => Err(CheckpointError::Entry {
                name: name.to_owned(),
                expected: format!("{expected:?}"),
                found: found.map(|f| format!("{f:?}")),
            }),
        }
    }

    fn tensor_of_shape(&self, name: &str, shape: &[usize]) -> Result<&[F], CheckpointError> {
        let t = self.tensors.get(name).ok_or_else(|| CheckpointError::Entry {
            name: name.to_owned(),
            expected: format!("a tensor of shape {shape:?}"),
            found: None,
        })?;
        if t.shape != shape {
            return Err(CheckpointError::Shape {
                tensor: name.to_owned(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        Ok(&t.values)
    }

    /// The state as the bytes of a safetensors file (the format is in the module docs).
    /// Deterministic: the same state always gives the same bytes.
    ///
    /// Errors: [`CheckpointError::NonFinite`] if a value is not finite (which `set_tensor` and
    /// the other setters already refuse); [`CheckpointError::Unreadable`] for a state that
    /// safetensors readers would refuse (a header over their 100 MB limit, a tensor dimension
    /// beyond the file's length): what `to_bytes` and [`save`](Self::save) write,
    /// [`from_bytes`](Self::from_bytes) and [`load`](Self::load) read.
    pub fn to_bytes(&self) -> Result<Vec<u8>, CheckpointError> {
        let mut floats =
            Vec::with_capacity(self.tensors.values().map(|t| t.values.len() * size_of::<F>()).sum());
        let mut ends = Vec::with_capacity(self.tensors.len());
        for (name, t) in &self.tensors {
            encode(name, &t.values, &mut floats)?;
            ends.push(floats.len());
        }
        let steps: Vec<[u8; 8]> =
            self.steps.iter().map(|(name, &s)| step_bytes(name, s)).collect::<Result<_, _>>()?;
        let starts = std::iter::once(0).chain(ends.iter().copied());
        let float_tensors = self.tensors.iter().zip(starts.zip(&ends)).map(|((name, t), (start, &end))| {
            checkpoint::Tensor { name, dtype: dtype::<F>().1, shape: &t.shape, bytes: &floats[start..end] }
        });
        let step_tensors = self.steps.keys().zip(&steps).map(|(name, bytes)| checkpoint::Tensor {
            name,
            dtype: "I64",
            shape: &[],
            bytes,
        });
        let tensors: Vec<checkpoint::Tensor<'_>> = float_tensors.chain(step_tensors).collect();
        let mut meta = self.entries.clone();
        meta.extend(self.loop_state.iter().map(|(k, v)| (format!("loop.{k}"), v.clone())));
        meta.extend(self.metadata.iter().map(|(k, v)| (format!("user.{k}"), v.clone())));
        meta.insert("format".into(), FORMAT.into());
        meta.insert("format_version".into(), FORMAT_VERSION.into());
        meta.insert("version".into(), env!("CARGO_PKG_VERSION").into());
        meta.insert("dtype".into(), F::NAME.into());
        let bytes = serialize(&tensors, &meta);
        // What the setters cannot see alone is checked on the whole file: the safetensors
        // header limit (100 MB of metadata, say), a shape number beyond the file's length (a
        // tensor of shape [0, 10⁹])... Whatever is written here, `from_bytes` reads.
        parse(&bytes).map_err(|e| CheckpointError::Unreadable(e.to_string()))?;
        Ok(bytes)
    }

    /// A state from the bytes of a training-state file, checked as the module docs say.
    ///
    /// Errors: [`CheckpointError::Format`] for bytes that are not safetensors;
    /// [`CheckpointError::Metadata`] for another `format` or `dtype`;
    /// [`CheckpointError::DType`] for a tensor of another dtype; [`CheckpointError::NonFinite`]
    /// for a NaN or infinite value; [`CheckpointError::Entry`] for a negative step count.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CheckpointError> {
        let (file, meta) = parse(bytes)?;
        for (key, expected) in [("format", FORMAT), ("dtype", F::NAME)] {
            if meta.get(key).map(String::as_str) != Some(expected) {
                return Err(CheckpointError::Metadata {
                    key,
                    expected: expected.into(),
                    found: meta.get(key).cloned(),
                });
            }
        }
        let mut state = Self::new();
        for (key, value) in &meta {
            if let Some(k) = key.strip_prefix("loop.") {
                state.loop_state.insert(k.to_owned(), value.clone());
            } else if let Some(k) = key.strip_prefix("user.") {
                state.metadata.insert(k.to_owned(), value.clone());
            } else if !matches!(key.as_str(), "format" | "format_version" | "version" | "dtype") {
                state.entries.insert(key.clone(), value.clone());
            }
        }
        let (float, float_name) = dtype::<F>();
        for (name, view) in file.iter() {
            match view.dtype() {
                Dtype::I64 if view.shape().is_empty() => {
                    let step = i64::from_le_bytes(
                        view.data()
                            .try_into()
                            .map_err(|_| CheckpointError::Format(format!("{name}: not 8 bytes")))?,
                    );
                    let step = u64::try_from(step).map_err(|_| CheckpointError::Entry {
                        name: name.to_owned(),
                        expected: "a step count ≥ 0".into(),
                        found: Some(step.to_string()),
                    })?;
                    state.steps.insert(name.to_owned(), step);
                }
                d if d == float => {
                    let mut values = vec![F::zero(); view.shape().iter().product()];
                    decode(name, view.data(), &mut values)?;
                    state.tensors.insert(name.to_owned(), Tensor { shape: view.shape().to_vec(), values });
                }
                d => {
                    return Err(CheckpointError::DType {
                        tensor: name.to_owned(),
                        expected: float_name,
                        found: d.to_string(),
                    });
                }
            }
        }
        Ok(state)
    }

    /// Writes the state to `path` atomically and durably, as [`save`](crate::save) writes a
    /// checkpoint (a temporary file, fsynced, renamed over `path`).
    ///
    /// Errors: as [`to_bytes`](Self::to_bytes); [`CheckpointError::Io`] naming `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), CheckpointError> {
        write_atomic(path.as_ref(), &self.to_bytes()?)
    }

    /// Reads the state at `path`.
    ///
    /// Errors: [`CheckpointError::Io`] naming `path`; otherwise as [`from_bytes`](Self::from_bytes).
    pub fn load(path: impl AsRef<Path>) -> Result<Self, CheckpointError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| CheckpointError::Io { path: path.to_owned(), source })?;
        Self::from_bytes(&bytes)
    }
}

/// The metadata sections of the loop and of the user: `loop.{key}`, `user.{key}`.
const SECTIONS: [&str; 2] = ["loop", "user"];

/// `Ok` unless a network or optimizer named `name` would write its metadata into a section.
fn check_entry_name(name: &str) -> Result<(), CheckpointError> {
    let first = name.split('.').next().unwrap_or(name);
    if SECTIONS.contains(&first) {
        return Err(CheckpointError::Entry {
            name: name.to_owned(),
            expected: "a name whose first part is not `loop` or `user` (the loop's and your sections)".into(),
            found: Some(name.to_owned()),
        });
    }
    Ok(())
}

/// The number of elements of `shape`, `None` if it overflows `usize`.
fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

/// The step count `step` as the file's little-endian `I64`.
fn step_bytes(name: &str, step: u64) -> Result<[u8; 8], CheckpointError> {
    i64::try_from(step).map(i64::to_le_bytes).map_err(|_| CheckpointError::Entry {
        name: name.to_owned(),
        expected: format!("a step count ≤ {} (an I64)", i64::MAX),
        found: Some(step.to_string()),
    })
}
