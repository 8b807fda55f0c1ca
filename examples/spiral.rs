//! The CS231n spiral, end to end: 3 classes × 100 points in 2-D that no linear classifier
//! separates, learned by a two-layer ReLU network with 100 hidden units, softmax
//! cross-entropy plus L2 (reg 1e-3), weights `0.01·randn`, full-batch gradient descent at
//! lr 1.0 for 10,000 steps, as in the CS231n "Putting it together" case study.
//!
//! Prints the loss and the training accuracy every 1000 steps and the final training accuracy
//! (about 98%; the example exits with code 1 below 95%). Writes, under `--out` (default
//! `target/spiral`): `spiral.svg` (the learned decision regions with the data on top),
//! `loss.svg` (the training loss over the steps) and `spiral.safetensors` (the trained
//! network, see `two_layer_net::save`).
//!
//! ```sh
//! cargo run --release --example spiral
//! cargo run --release --example spiral -- --batch-size 64 --lr 0.3 --out /tmp/spiral
//! ```

use std::error::Error;
use std::fs;
use std::num::NonZeroUsize;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use plotters::prelude::*;
use rand::{SeedableRng, rngs::StdRng};
use two_layer_net::ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use two_layer_net::{
    Fit, Init, L2, Progress, Sgd, SoftmaxCrossEntropy, TwoLayerNet, accuracy, datasets, fit,
};

/// Points per class and number of classes, as in CS231n.
const PER_CLASS: usize = 100;
const CLASSES: usize = 3;
/// The training accuracy below which the example fails (CS231n reaches about 98%).
const MIN_ACCURACY: f64 = 0.95;
/// Progress is printed every this many steps.
const PRINT_EVERY: usize = 1000;
/// Cells per side of the grid the decision regions are drawn from.
const GRID: usize = 200;
/// Grid points classified per forward pass (bounds the network's workspace).
const GRID_BATCH: usize = 8000;

/// Class colors: strong for the data points, light for the regions (matplotlib's tab10 hues).
const STRONG: [RGBColor; CLASSES] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
const LIGHT: [RGBColor; CLASSES] =
    [RGBColor(198, 219, 239), RGBColor(250, 205, 205), RGBColor(204, 235, 197)];

/// Train a two-layer network on the CS231n spiral and plot its decision regions.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Hidden units.
    #[arg(long, default_value = "100")]
    hidden: NonZeroUsize,
    /// Gradient-descent steps.
    #[arg(long, default_value = "10000")]
    steps: NonZeroUsize,
    /// Learning rate.
    #[arg(long, default_value_t = 1.0)]
    lr: f64,
    /// L2 regularization strength `reg` (the penalty is 0.5·reg·(ΣW1² + ΣW2²)).
    #[arg(long, default_value_t = 1e-3)]
    reg: f64,
    /// Seed of the data and of the initial weights (and of the mini-batch shuffling).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Examples per step; by default the full batch (all 300). Smaller batches train with
    /// `two_layer_net::fit`, shuffled every epoch.
    #[arg(long)]
    batch_size: Option<NonZeroUsize>,
    /// Directory for spiral.svg, loss.svg and spiral.safetensors (created if missing).
    #[arg(long, default_value = "target/spiral")]
    out: PathBuf,
}

fn main() -> Result<ExitCode, Box<dyn Error>> {
    println!("BLAS: {}", two_layer_net::blas_info());
    let args = Args::parse();
    let (hidden, steps) = (args.hidden.get(), args.steps.get());

    let mut rng = StdRng::seed_from_u64(args.seed);
    let (x, labels) = datasets::spiral::<f64, _>(PER_CLASS, CLASSES, &mut rng);
    let n = x.nrows();
    let mut net = TwoLayerNet::<f64>::with_init(2, hidden, CLASSES, Init::Normal { std: 0.01 }, &mut rng)?;
    let loss = L2::new(SoftmaxCrossEntropy, args.reg);
    let mut opt = Sgd::new(args.lr);

    let batch = args.batch_size.map_or(n, NonZeroUsize::get).min(n);
    println!(
        "spiral: {n} points, {CLASSES} classes; net 2 → {hidden} ReLU → {CLASSES}; \
         softmax cross-entropy + L2 (reg {}); SGD lr {}, {steps} steps, batch {batch}",
        args.reg, args.lr
    );

    let start = Instant::now();
    // The loss of every step (full batch) or of every epoch (mini-batches), at its last step.
    let curve: Vec<(usize, f64)> = if batch == n {
        let mut curve = Vec::with_capacity(steps);
        for step in 0..steps {
            let acc =
                if step % PRINT_EVERY == 0 { Some(accuracy(&net, x.view(), labels.view())?) } else { None };
            let l = net
                .train_step_with(x.view(), labels.view(), &loss, &mut opt)
                .map_err(|e| format!("training stopped at step {step}: {e} (try a smaller --lr)"))?;
            if let Some(acc) = acc {
                println!("iteration {step:>5}: loss {l:.6}, training accuracy {:.2}%", 100.0 * acc);
            }
            curve.push((step, l));
        }
        curve
    } else {
        let per_epoch = n.div_ceil(batch);
        let cfg = Fit {
            epochs: steps.div_ceil(per_epoch),
            batch_size: batch,
            shuffle: true,
            seed: args.seed,
            progress: Progress::Off,
        };
        let mut curve = Vec::with_capacity(cfg.epochs);
        fit(&mut net, x.view(), labels.view(), &loss, &mut opt, &cfg, |e| {
            let (first, last) = (e.epoch * per_epoch, (e.epoch + 1) * per_epoch - 1);
            if first.div_ceil(PRINT_EVERY) * PRINT_EVERY <= last {
                let acc = e.accuracy.unwrap_or(f64::NAN);
                println!(
                    "epoch {:>5} (steps {first}–{last}): mean loss {:.6}, accuracy over the epoch {:.2}%",
                    e.epoch,
                    e.loss,
                    100.0 * acc
                );
            }
            curve.push((last, e.loss));
            ControlFlow::Continue(())
        })
        .map_err(|e| format!("{e} (try a smaller --lr)"))?;
        curve
    };
    let train_secs = start.elapsed().as_secs_f64();

    let done = curve.last().map_or(0, |&(step, _)| step + 1);
    let acc = accuracy(&net, x.view(), labels.view())?;
    println!("training accuracy: {:.2}% (after {done} steps, {train_secs:.2} s)", 100.0 * acc);

    fs::create_dir_all(&args.out).map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let regions_svg = args.out.join("spiral.svg");
    let loss_svg = args.out.join("loss.svg");
    let checkpoint = args.out.join("spiral.safetensors");
    plot_regions(&mut net, x.view(), labels.view(), acc, &regions_svg)?;
    plot_loss(&curve, &args, batch == n, &loss_svg)?;
    two_layer_net::save(&net, &checkpoint)?;
    for path in [&regions_svg, &loss_svg, &checkpoint] {
        println!("wrote {}", path.display());
    }

    if acc < MIN_ACCURACY {
        eprintln!(
            "error: training accuracy {:.2}% is below {:.0}%: try more --steps or another --lr",
            100.0 * acc,
            100.0 * MIN_ACCURACY
        );
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The index of the largest entry of `row`.
fn argmax(row: ArrayView1<'_, f64>) -> usize {
    row.iter().enumerate().fold(0, |best, (i, &v)| if v > row[best] { i } else { best })
}

/// `spiral.svg`: every cell of a GRID×GRID mesh filled with the light color of the class the
/// network gives its center, then the training points in their class's strong color.
fn plot_regions(
    net: &mut TwoLayerNet<f64>,
    x: ArrayView2<'_, f64>,
    labels: ArrayView1<'_, usize>,
    acc: f64,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    // A square window around the data, padded by a quarter unit.
    let lo = x.iter().copied().fold(f64::INFINITY, f64::min) - 0.25;
    let hi = x.iter().copied().fold(f64::NEG_INFINITY, f64::max) + 0.25;
    let cell = (hi - lo) / GRID as f64;
    let center = |i: usize| lo + (i as f64 + 0.5) * cell;

    // Classify the cell centers, row by row of the mesh (x[1] = center(row), x[0] = center(col)).
    let grid =
        Array2::from_shape_fn((GRID * GRID, 2), |(p, j)| center(if j == 0 { p % GRID } else { p / GRID }));
    let mut class = Vec::with_capacity(GRID * GRID);
    for chunk in grid.axis_chunks_iter(Axis(0), GRID_BATCH) {
        class.extend(net.forward(chunk)?.rows().into_iter().map(argmax));
    }

    let root = SVGBackend::new(path, (760, 800)).into_drawing_area();
    root.fill(&WHITE)?;
    let title =
        format!("Spiral: 2-layer ReLU net (H = {}), training accuracy {:.1}%", net.hidden_dim(), 100.0 * acc);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(60)
        .build_cartesian_2d(lo..hi, lo..hi)?;
    chart
        .configure_mesh()
        .disable_mesh()
        .x_desc("x[0]")
        .y_desc("x[1]")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .draw()?;

    // Regions: one rectangle per run of equal class along a mesh row (not one per cell).
    for (row, classes) in class.chunks_exact(GRID).enumerate() {
        let (y0, y1) = (lo + row as f64 * cell, lo + (row + 1) as f64 * cell);
        let mut start = 0;
        for col in 1..=GRID {
            if col == GRID || classes[col] != classes[start] {
                let (x0, x1) = (lo + start as f64 * cell, lo + col as f64 * cell);
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(x0, y0), (x1, y1)],
                    LIGHT[classes[start]].filled(),
                )))?;
                start = col;
            }
        }
    }

    // Points, one series per class so that the legend names it.
    for (c, color) in STRONG.into_iter().enumerate() {
        let points = x.rows().into_iter().zip(labels).filter(|&(_, &l)| l == c).map(|(p, _)| (p[0], p[1]));
        let outline = BLACK.mix(0.6).stroke_width(1);
        let dots = points.map(|p| {
            EmptyElement::at(p) + Circle::new((0, 0), 4, color.filled()) + Circle::new((0, 0), 4, outline)
        });
        chart.draw_series(dots)?.label(format!("class {c}")).legend(move |(px, py)| {
            EmptyElement::at((px + 8, py))
                + Circle::new((0, 0), 5, color.filled())
                + Circle::new((0, 0), 5, outline)
        });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 16))
        .draw()?;
    root.present()?;
    Ok(())
}

/// `loss.svg`: the training loss (data loss + L2 penalty) over the steps.
fn plot_loss(
    curve: &[(usize, f64)],
    args: &Args,
    full_batch: bool,
    path: &Path,
) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(path, (800, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let max_step = curve.last().map_or(1, |&(s, _)| s.max(1));
    let max_loss = curve.iter().map(|&(_, l)| l).fold(0.0, f64::max);
    let title = format!("Spiral training loss (SGD, lr {}, reg {})", args.lr, args.reg);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(50)
        .y_label_area_size(70)
        .build_cartesian_2d(0..max_step, 0.0..max_loss * 1.05)?;
    chart
        .configure_mesh()
        .x_desc("step")
        .y_desc("loss")
        .axis_desc_style(("sans-serif", 18))
        .label_style(("sans-serif", 14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;
    let label = if full_batch {
        "softmax cross-entropy + L2, full batch"
    } else {
        "softmax cross-entropy + L2, mean over each epoch"
    };
    chart
        .draw_series(LineSeries::new(curve.iter().copied(), STRONG[0].stroke_width(2)))?
        .label(label)
        .legend(|(px, py)| PathElement::new([(px, py), (px + 24, py)], STRONG[0].stroke_width(2)));
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
