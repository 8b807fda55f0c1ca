//! Handwritten digits, end to end: the UCI optical digits built into the crate (1797 images of
//! 8×8 pixels, 10 classes), a seeded stratified 75/25 train/test split, inputs standardized on
//! the training part, a 64 → H → 10 ReLU network trained by Adam in mini-batches with a
//! validation set cut off the training part and early stopping on its loss. Prints the test
//! accuracy and the confusion matrix, writes the learning curve (`learning_curve.svg`) and the
//! training state (`digits.safetensors`: network, optimizer, loop position and the scaler),
//! loads that state back into a fresh network and checks it predicts the same. Exits non-zero
//! below 95% test accuracy.
//!
//! `--mnist DIR` trains on MNIST instead (its four IDX files, uncompressed, in DIR), with the
//! official test set as the test part.
//!
//! ```text
//! cargo run --release --example digits
//! cargo run --release --example digits -- --hidden 128 --epochs 300 --out target/digits
//! ```

use std::error::Error;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use plotters::prelude::*;
use two_layer_net::ndarray::{Array1, Array2};
use two_layer_net::rand::{SeedableRng, rngs::StdRng};
use two_layer_net::{
    Adam, EarlyStopping, Epoch, Fit, Init, Progress, SoftmaxCrossEntropy, Standardizer, Trainer,
    TrainingState, TwoLayerNet, datasets, load, split_stratified,
};

/// Train a two-layer network on handwritten digits.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Hidden units.
    #[arg(long, default_value_t = 64)]
    hidden: usize,
    /// The most epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 200)]
    epochs: usize,
    /// Examples per step.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// Epochs without a better validation loss before stopping.
    #[arg(long, default_value_t = 10)]
    patience: usize,
    /// Seed of the splits, the initial weights and the shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on MNIST from the IDX files in this directory instead.
    #[arg(long)]
    mnist: Option<PathBuf>,
    /// Directory for learning_curve.svg and digits.safetensors (created if missing).
    #[arg(long, default_value = "target/digits")]
    out: PathBuf,
}

const CLASSES: usize = 10;

type Data = (Array2<f32>, Array1<usize>);

/// (train, test): the built-in digits split 75/25, or MNIST's own split.
fn data(args: &Args) -> Result<(Data, Data, &'static str), Box<dyn Error>> {
    match &args.mnist {
        Some(dir) => {
            let (train, test) = load::read_mnist::<f32>(dir)?;
            Ok((train, test, "MNIST"))
        }
        None => {
            let (x, labels) = datasets::digits::<f32>();
            let (train, test) = split_stratified(x.view(), labels.view(), 0.25, args.seed)?;
            Ok((train, test, "UCI digits"))
        }
    }
}

fn main() -> Result<ExitCode, Box<dyn Error>> {
    let args = Args::parse();
    println!("BLAS: {}", two_layer_net::blas_info());
    let ((x_all, y_all), (x_test, y_test), name) = data(&args)?;
    // A validation set for early stopping, cut off the training part (the test part is never
    // looked at until the end).
    let ((x_train, y_train), (x_val, y_val)) =
        split_stratified(x_all.view(), y_all.view(), 0.2, args.seed + 1)?;
    let scaler = Standardizer::fit(x_train.view())?;
    let [x_train, x_val, x_test] = [&x_train, &x_val, &x_test].map(|x| scaler.transform(x.view()));
    let (x_train, x_val, x_test) = (x_train?, x_val?, x_test?);
    let d = x_train.ncols();
    println!(
        "{name}: {} train, {} validation, {} test examples of {d} features; net {d} → {} ReLU → {CLASSES}; \
         Adam lr {}, batches of {}",
        x_train.nrows(),
        x_val.nrows(),
        x_test.nrows(),
        args.hidden,
        args.lr,
        args.batch_size
    );

    let mut net = TwoLayerNet::<f32>::with_init(
        d,
        args.hidden,
        CLASSES,
        Init::He,
        &mut StdRng::seed_from_u64(args.seed),
    )?;
    let mut adam = Adam::new(args.lr as f32);
    let fit = Fit {
        epochs: args.epochs,
        batch_size: args.batch_size,
        shuffle: true,
        seed: args.seed,
        progress: Progress::Lines,
    };
    let early = EarlyStopping { patience: args.patience, ..EarlyStopping::default() };
    let mut trainer = Trainer::new(fit).with_early_stopping(early)?;
    let start = Instant::now();
    let history = trainer.fit(
        &mut net,
        x_train.view(),
        y_train.view(),
        Some((x_val.view(), y_val.view())),
        &SoftmaxCrossEntropy,
        &mut adam,
        |_| ControlFlow::Continue(()),
    )?;
    let secs = start.elapsed().as_secs_f64();
    let best = trainer.best().map_or(0, |(epoch, _)| epoch);
    println!(
        "{} epochs in {secs:.3} s{}; the best validation loss at epoch {}",
        history.len(),
        if trainer.stopped_early() { " (stopped early)" } else { "" },
        best + 1
    );

    let predicted = net.predict_classes(x_test.view())?;
    let accuracy = net.accuracy(x_test.view(), y_test.view())?;
    println!("test accuracy {:.2}% ({} examples)", 100.0 * accuracy, y_test.len());
    print_confusion(&predicted, &y_test);

    std::fs::create_dir_all(&args.out)?;
    let curve = args.out.join("learning_curve.svg");
    plot_curve(&history, best, name, &curve)?;
    let path = args.out.join("digits.safetensors");
    let mut state = TrainingState::new();
    state.set_net("net", &net)?;
    state.set_optimizer("adam", &adam)?;
    trainer.save(&mut state);
    scaler.save(&mut state, "scaler")?;
    state.metadata_mut().insert("dataset".into(), name.into());
    state.metadata_mut().insert("classes".into(), "0,1,2,3,4,5,6,7,8,9".into());
    state.save(&path)?;
    println!("wrote {} and {}", curve.display(), path.display());

    // A model loaded from the state predicts the same: the scaler travels with it.
    let state = TrainingState::<f32>::load(&path)?;
    let mut loaded = TwoLayerNet::<f32>::new(d, args.hidden, CLASSES, &mut StdRng::seed_from_u64(1))?;
    state.restore_net("net", &mut loaded)?;
    let scaler = Standardizer::restore(&state, "scaler")?;
    let (x_raw, _) = data(&args)?.1;
    if loaded.predict_classes(scaler.transform(x_raw.view())?.view())? != predicted {
        eprintln!("FAILED: the loaded model predicts differently");
        return Ok(ExitCode::FAILURE);
    }
    if accuracy < 0.95 {
        eprintln!("FAILED: test accuracy {:.2}% is below 95%", 100.0 * accuracy);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The confusion matrix: rows the true class, columns the predicted one.
fn print_confusion(predicted: &Array1<usize>, truth: &Array1<usize>) {
    let mut m = [[0usize; CLASSES]; CLASSES];
    for (&p, &t) in predicted.iter().zip(truth) {
        m[t][p] += 1;
    }
    println!("confusion matrix (rows: true class, columns: predicted)");
    println!("     {}", (0..CLASSES).map(|c| format!("{c:>5}")).collect::<String>());
    for (t, row) in m.iter().enumerate() {
        println!("{t:>5}{}", row.iter().map(|n| format!("{n:>5}")).collect::<String>());
    }
}

/// Training and validation loss per epoch, with the best epoch marked.
fn plot_curve(history: &[Epoch], best: usize, name: &str, path: &Path) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let train: Vec<(usize, f64)> = history.iter().map(|e| (e.epoch + 1, e.loss)).collect();
    let val: Vec<(usize, f64)> = history.iter().filter_map(|e| Some((e.epoch + 1, e.val_loss?))).collect();
    let top = train.iter().chain(&val).map(|&(_, l)| l).fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("{name}: learning curve (Adam, early stopping)"), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(1..history.len().max(2), 0.0..top * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("epoch")
        .y_desc("softmax cross-entropy")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    let (blue, red) = (RGBColor(31, 119, 180), RGBColor(214, 39, 40));
    for (points, color, label) in
        [(&train, blue, "training (mean over the epoch)"), (&val, red, "validation")]
    {
        chart
            .draw_series(LineSeries::new(points.iter().copied(), color.stroke_width(2)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 24, y)], color.stroke_width(2)));
    }
    chart.draw_series(std::iter::once(Circle::new(
        (best + 1, val.get(best).map_or(0.0, |v| v.1)),
        6,
        red.filled(),
    )))?;
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}
