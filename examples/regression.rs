//! 1-D regression: a two-layer Tanh network fits the noisy wave `y = sin(x) + 0.3·cos(2x) + ε`
//! (200 points, noise σ = 0.1, `datasets::wave`) with MSE and Adam, trained by
//! `two_layer_net::fit` in shuffled mini-batches (one progress line per epoch on stderr).
//!
//! Prints the final training MSE and the MSE of the prediction against the noiseless function
//! (`datasets::wave_truth`) on a dense grid; a good fit has the first near the noise variance
//! σ² = 0.01 and the second well below it. Writes `regression.svg` (the data, the true
//! function and the network's prediction) under `--out` (default `target/regression`).
//!
//! ```sh
//! cargo run --release --example regression
//! cargo run --release --example regression -- --hidden 32 --epochs 500 --lr 0.005 --out /tmp/reg
//! ```

use std::error::Error;
use std::fs;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Parser;
use plotters::prelude::*;
use rand::{SeedableRng, rngs::StdRng};
use two_layer_net::ndarray::{Array2, ArrayView2};
use two_layer_net::{Adam, Fit, Init, Mse, Progress, Tanh, TwoLayerNet, datasets, fit};

/// Training points and their noise σ.
const POINTS: usize = 200;
const NOISE: f64 = 0.1;
/// The interval `datasets::wave` draws `x` from, and the points of the dense evaluation grid.
const X_RANGE: (f64, f64) = (-3.0, 3.0);
const GRID: usize = 1000;

/// Fit a two-layer Tanh network to a noisy 1-D wave with MSE and Adam, and plot the fit.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Hidden units.
    #[arg(long, default_value = "48")]
    hidden: NonZeroUsize,
    /// Passes over the 200 training points.
    #[arg(long, default_value = "300")]
    epochs: NonZeroUsize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    /// Examples per step (the last batch of an epoch may be smaller).
    #[arg(long, default_value = "20")]
    batch_size: NonZeroUsize,
    /// Seed of the data, the initial weights and the mini-batch shuffling.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory for regression.svg (created if missing).
    #[arg(long, default_value = "target/regression")]
    out: PathBuf,
}

fn main() -> Result<(), Box<dyn Error>> {
    println!("BLAS: {}", two_layer_net::blas_info());
    let args = Args::parse();
    let hidden = args.hidden.get();

    let mut rng = StdRng::seed_from_u64(args.seed);
    let (x, y) = datasets::wave::<f64, _>(POINTS, NOISE, &mut rng);
    let mut net = TwoLayerNet::<f64, Tanh>::with_init(1, hidden, 1, Init::Xavier, &mut rng)?;
    let cfg = Fit {
        epochs: args.epochs.get(),
        batch_size: args.batch_size.get(),
        shuffle: true,
        seed: args.seed,
        progress: Progress::Lines,
    };
    println!(
        "wave: {POINTS} points, noise σ = {NOISE}; net 1 → {hidden} tanh → 1; MSE; \
         Adam lr {}, {} epochs of batches of {}",
        args.lr, cfg.epochs, cfg.batch_size
    );

    let start = Instant::now();
    let mut opt = Adam::new(args.lr);
    fit(&mut net, x.view(), y.view(), &Mse, &mut opt, &cfg, |_| ControlFlow::Continue(()))
        .map_err(|e| format!("{e} (try a smaller --lr)"))?;
    let secs = start.elapsed().as_secs_f64();

    let train_mse = mse(net.forward(x.view())?, y.view());
    let grid = Array2::from_shape_fn((GRID, 1), |(i, _)| {
        X_RANGE.0 + (X_RANGE.1 - X_RANGE.0) * i as f64 / (GRID - 1) as f64
    });
    let truth = grid.mapv(datasets::wave_truth);
    let pred = net.predict(grid.view())?;
    let truth_mse = mse(pred.view(), truth.view());
    println!("trained in {secs:.2} s");
    println!("training MSE:             {train_mse:.5} (noise variance σ² = {:.5})", NOISE * NOISE);
    println!("MSE vs the true function: {truth_mse:.5} (on {GRID} points in [−3, 3])");
    // The fit must be closer to the function than the noise is (CI runs this example).
    if truth_mse.is_nan() || truth_mse >= NOISE * NOISE {
        return Err(format!("the fit is no closer to the true function ({truth_mse}) than the noise").into());
    }

    fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let svg = args.out.join("regression.svg");
    plot(x.view(), y.view(), grid.view(), truth.view(), pred.view(), hidden, &svg)?;
    println!("wrote {}", svg.display());
    Ok(())
}

/// `(1/N)·Σ (a − b)²` over two N×1 columns.
fn mse(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> f64 {
    a.iter().zip(b).map(|(p, t)| (p - t) * (p - t)).sum::<f64>() / a.len() as f64
}

/// The points `(x[i], y[i])` of two N×1 columns.
fn pairs<'a>(
    x: ArrayView2<'a, f64>,
    y: ArrayView2<'a, f64>,
) -> impl Iterator<Item = (f64, f64)> + Clone + 'a {
    x.into_iter().copied().zip(y.into_iter().copied())
}

/// `regression.svg`: the training data, the true function and the network's prediction.
fn plot(
    x: ArrayView2<'_, f64>,
    y: ArrayView2<'_, f64>,
    grid: ArrayView2<'_, f64>,
    truth: ArrayView2<'_, f64>,
    pred: ArrayView2<'_, f64>,
    hidden: usize,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let (y_lo, y_hi) =
        y.iter().chain(pred).fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let pad = 0.1 * (y_hi - y_lo);

    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(format!("Regression: 2-layer tanh net (H = {hidden}), MSE + Adam"), ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(X_RANGE.0 - 0.1..X_RANGE.1 + 0.1, y_lo - pad..y_hi + pad)?;
    chart
        .configure_mesh()
        .x_desc("x")
        .y_desc("y")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;

    let data = RGBColor(120, 120, 120);
    chart
        .draw_series(pairs(x, y).map(|p| Circle::new(p, 3, data.filled())))?
        .label(format!("training data ({} points, noise σ = {NOISE})", x.nrows()))
        .legend(move |(px, py)| Circle::new((px + 12, py), 3, data.filled()));
    chart
        .draw_series(DashedLineSeries::new(pairs(grid, truth), 10, 6, BLACK.stroke_width(2)))?
        .label("true function sin(x) + 0.3 cos(2x)")
        .legend(|(px, py)| {
            EmptyElement::at((px, py))
                + PathElement::new([(0, 0), (10, 0)], BLACK.stroke_width(2))
                + PathElement::new([(15, 0), (24, 0)], BLACK.stroke_width(2))
        });
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(LineSeries::new(pairs(grid, pred), red.stroke_width(3)))?
        .label("network prediction")
        .legend(move |(px, py)| PathElement::new([(px, py), (px + 24, py)], red.stroke_width(3)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}
