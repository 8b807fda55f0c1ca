//! A pipeline: a layer of your own in front of the network, one Adam updating both, a
//! checkpoint of the whole training state mid-run, and a resumed run that must end bitwise
//! equal to the uninterrupted one (the example exits non-zero if it does not).
//!
//! The data: the CS231n spiral (3 classes), each point lifted to 6 raw features; the user's
//! layer is a learnable linear map `X = X0·E` (6 → 8) whose gradient comes from the network's
//! `dX`:
//!
//! ```text
//! X0 (N×6) ─E─▶ X (N×8) ─TwoLayerNet 8→64→3─▶ ŷ ─softmax CE─▶ L
//! dE = X0ᵀ·dX,   dX = dY1·W1ᵀ (backward_with_dx)
//! ```
//!
//! Run: `cargo run --release --example pipeline` (writes `target/pipeline/state.safetensors`).

use std::error::Error;
use std::process::ExitCode;

use two_layer_net::ndarray::{Array1, Array2, Axis, concatenate};
use two_layer_net::rand::seq::SliceRandom;
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{
    Adam, Init, Loss, Optimizer, Slot, SoftmaxCrossEntropy, TrainingState, TwoLayerNet, datasets,
};

const RAW: usize = 6;
const EMBED: usize = 8;
const HIDDEN: usize = 64;
const CLASSES: usize = 3;
const EPOCHS: usize = 40;
const BATCH: usize = 32;
const SEED: u64 = 7;

/// The model: the user's layer `E` and the network.
struct Model {
    e: Array2<f64>,
    net: TwoLayerNet<f64>,
}

impl Model {
    fn new(seed: u64) -> Result<Self, Box<dyn Error>> {
        let mut rng = StdRng::seed_from_u64(seed);
        let e = Array2::from_shape_fn((RAW, EMBED), |(i, j)| if i % EMBED == j { 1.0 } else { 0.1 });
        Ok(Model { e, net: TwoLayerNet::with_init(EMBED, HIDDEN, CLASSES, Init::He, &mut rng)? })
    }

    /// One training step on a batch: forward through `E` and the net, loss, backward to `dE`,
    /// and one Adam step over both. Returns the loss.
    fn step(
        &mut self,
        x0: &Array2<f64>,
        labels: &Array1<usize>,
        adam: &mut Adam<f64>,
    ) -> Result<f64, Box<dyn Error>> {
        let x = x0.dot(&self.e);
        let yhat = self.net.forward(x.view())?;
        let mut dyhat = Array2::zeros(yhat.dim());
        let loss = SoftmaxCrossEntropy.loss_and_grad(yhat, labels.view(), dyhat.view_mut())?;
        let mut dx = Array2::zeros(x.dim());
        self.net.backward_with_dx(x.view(), dyhat.view(), dx.view_mut())?;
        let de = x0.t().dot(&dx);
        let e = self.e.as_slice_mut().ok_or("E is contiguous")?;
        adam.step(&mut [self.net.slot()?, Slot::new(e, de.as_slice().ok_or("dE is contiguous")?)])?;
        Ok(loss)
    }

    fn accuracy(&self, x0: &Array2<f64>, labels: &Array1<usize>) -> Result<f64, Box<dyn Error>> {
        Ok(self.net.accuracy(x0.dot(&self.e).view(), labels.view())?)
    }
}

/// Epochs `from..to` of mini-batch training; each epoch's order comes from a generator seeded
/// by (SEED, epoch), so the position in the run is just the epoch number.
fn train(
    m: &mut Model,
    adam: &mut Adam<f64>,
    data: &(Array2<f64>, Array1<usize>),
    from: usize,
    to: usize,
) -> Result<f64, Box<dyn Error>> {
    let (x0, labels) = data;
    let mut loss = 0.0;
    for epoch in from..to {
        let mut order: Vec<usize> = (0..x0.nrows()).collect();
        order.shuffle(&mut StdRng::seed_from_u64(SEED ^ epoch as u64));
        loss = 0.0;
        for idx in order.chunks(BATCH) {
            let (xb, yb) = (x0.select(Axis(0), idx), labels.select(Axis(0), idx));
            loss += m.step(&xb, &yb, adam)? * idx.len() as f64 / x0.nrows() as f64;
        }
    }
    Ok(loss)
}

/// The spiral with 6 raw features per point: x, y, x², y², xy, 1.
fn data() -> (Array2<f64>, Array1<usize>) {
    let (xy, labels) = datasets::spiral::<f64, _>(100, CLASSES, &mut StdRng::seed_from_u64(SEED));
    let (x, y) = (xy.column(0), xy.column(1));
    let cols = [x.to_owned(), y.to_owned(), &x * &x, &y * &y, &x * &y, Array1::ones(x.len())];
    let views: Vec<_> = cols.iter().map(|c| c.view().insert_axis(Axis(1))).collect();
    (concatenate(Axis(1), &views).expect("columns of one length"), labels)
}

fn main() -> Result<ExitCode, Box<dyn Error>> {
    println!("BLAS: {}", two_layer_net::blas_info());
    let data = data();
    let dir = std::path::Path::new("target/pipeline");
    std::fs::create_dir_all(dir)?;
    let path = dir.join("state.safetensors");

    // The uninterrupted run.
    let (mut whole, mut whole_adam) = (Model::new(SEED)?, Adam::new(1e-2));
    let loss = train(&mut whole, &mut whole_adam, &data, 0, EPOCHS)?;
    println!(
        "uninterrupted: {EPOCHS} epochs, loss {loss:.4}, accuracy {:.1}%",
        100.0 * whole.accuracy(&data.0, &data.1)?
    );

    // Half the run, then the whole training state to disk.
    let (mut first, mut first_adam) = (Model::new(SEED)?, Adam::new(1e-2));
    train(&mut first, &mut first_adam, &data, 0, EPOCHS / 2)?;
    let mut state = TrainingState::new();
    state.set_net("net", &first.net)?;
    state.set_tensor("embed", &[RAW, EMBED], first.e.as_slice().ok_or("E is contiguous")?)?;
    state.set_optimizer("adam", &first_adam)?;
    state.loop_state_mut().insert("epoch".into(), (EPOCHS / 2).to_string());
    state.metadata_mut().insert("features".into(), "x,y,x^2,y^2,xy,1".into());
    state.save(&path)?;
    println!("saved after epoch {}: {}", EPOCHS / 2, path.display());

    // A fresh model and optimizer (other weights, another learning rate), the state restored,
    // the rest of the run.
    let (mut resumed, mut adam) = (Model::new(SEED + 1)?, Adam::new(0.5));
    let state = TrainingState::<f64>::load(&path)?;
    state.restore_net("net", &mut resumed.net)?;
    state.restore_tensor("embed", &[RAW, EMBED], resumed.e.as_slice_mut().ok_or("E is contiguous")?)?;
    state.restore_optimizer("adam", &mut adam)?;
    let from: usize = state.loop_state()["epoch"].parse()?;
    let loss = train(&mut resumed, &mut adam, &data, from, EPOCHS)?;
    println!(
        "resumed from epoch {from}: loss {loss:.4}, accuracy {:.1}%",
        100.0 * resumed.accuracy(&data.0, &data.1)?
    );

    let bits = |m: &Model| -> Vec<u64> {
        m.net.params().as_slice().iter().chain(m.e.iter()).map(|v| v.to_bits()).collect()
    };
    let differing = bits(&whole).iter().zip(&bits(&resumed)).filter(|(a, b)| a != b).count();
    if differing > 0 || adam.state() != whole_adam.state() {
        eprintln!("FAILED: {differing} parameters differ from the uninterrupted run");
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "the resumed run equals the uninterrupted one bit for bit ({} parameters and the Adam state)",
        bits(&whole).len()
    );
    Ok(ExitCode::SUCCESS)
}
