//! Draws the README's performance plot (`docs/peers.svg`) from the side-by-side step benchmark
//! of `../shared/peers/run.sh`: samples per second (N / median step time) against the batch
//! size N, log-log, one panel per shape family (D=3,H=4,K=2; D=784,H=256,K=10;
//! D=1024,H=4096,K=1024; any other family in the file gets a panel too), for `project`
//! (labelled "two-layer-net"), `numpy`, `torch-manual` and `torch-autograd`, with `gemm-bound`
//! as a dashed reference ("5 GEMMs (floor)").
//!
//! The input is the raw JSON lines of `run.sh --json FILE`: one object per run, e.g.
//! `{"impl":"project","dtype":"f32","N":64,"D":3,"H":4,"K":2,"threads":2,...,"ns_per_step_median":2431.0,...}`
//! (other fields are ignored). As in run.sh's own table, the step time of an
//! (impl, dtype:NxDxHxK) cell is the median over rounds (the mean of the middle two for an
//! even count) of each run's `ns_per_step_median`. Lines that do not parse as such an object
//! are skipped (and counted on stderr); a file without any usable line is an error.
//!
//! Within a panel the points of the family's majority dtype are filled and points of another
//! dtype are hollow (with the default shapes, the f64 point at N=2 of the D=3,H=4,K=2 family);
//! the panel title says which.
//!
//! ```sh
//! bash ../shared/peers/run.sh --setup-python --project . --rounds 3 --json docs/peers.jsonl  # long: owns the CPU
//! cargo run --release --manifest-path tools/plot_peers/Cargo.toml -- docs/peers.jsonl docs/peers.svg
//! ```

use std::collections::{BTreeSet, HashMap};
use std::error::Error;
use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Deserialize;

/// The reference implementation: only the step's five GEMMs.
const FLOOR_IMPL: &str = "gemm-bound";
const FLOOR_LABEL: &str = "5 GEMMs (floor)";
const FLOOR_COLOR: RGBColor = RGBColor(70, 70, 70);
/// The implementation under test, as run.sh names it.
const PROJECT_IMPL: &str = "project";

/// The shape families plotted first, in this order: (D, H, K).
const FAMILIES: [(u64, u64, u64); 3] = [(3, 4, 2), (784, 256, 10), (1024, 4096, 1024)];

/// Font sizes as plotters takes them (its SVG backend writes `font-size` = size / 1.24).
const TITLE_FONT: u32 = 26;
const LEGEND_FONT: u32 = 18;
const CAPTION_FONT: u32 = 19;
const AXIS_FONT: u32 = 18;
const TICK_FONT: u32 = 16;
const NOTE_FONT: u32 = 15;

/// Panels per row of the figure and the size of one panel, in pixels.
const COLUMNS: usize = 3;
const PANEL: (u32, u32) = (540, 540);
/// The least width of the panels together (room for the title, legend and notes).
const MIN_WIDTH: u32 = 1100;

#[derive(Clone, Copy)]
enum Marker {
    Circle,
    Square,
    Triangle,
    Diamond,
}

/// How one plotted implementation is drawn.
struct Style {
    imp: &'static str,
    label: &'static str,
    color: RGBColor,
    marker: Marker,
    width: u32,
}

/// The solid series, drawn in reverse order (the project last, on top). Colors: matplotlib's tab10.
const SERIES: [Style; 4] = [
    Style {
        imp: PROJECT_IMPL,
        label: "two-layer-net",
        color: RGBColor(31, 119, 180),
        marker: Marker::Circle,
        width: 3,
    },
    Style { imp: "numpy", label: "numpy", color: RGBColor(255, 127, 14), marker: Marker::Square, width: 2 },
    Style {
        imp: "torch-manual",
        label: "torch-manual",
        color: RGBColor(44, 160, 44),
        marker: Marker::Triangle,
        width: 2,
    },
    Style {
        imp: "torch-autograd",
        label: "torch-autograd",
        color: RGBColor(214, 39, 40),
        marker: Marker::Diamond,
        width: 2,
    },
];

const USAGE: &str = "usage: plot_peers INPUT.jsonl OUTPUT.svg\n\
    (from the repository root: cargo run --release --manifest-path tools/plot_peers/Cargo.toml -- INPUT.jsonl OUTPUT.svg)\n\
    \n\
    INPUT.jsonl: the raw JSON lines of `bash ../shared/peers/run.sh --project . --rounds 3 --json INPUT.jsonl`\n\
    OUTPUT.svg:  the plot (samples / s against batch size N, log-log, one panel per D,H,K)";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let [input, output] = args.as_slice() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    match run(Path::new(input), Path::new(output)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("plot_peers: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, output: &Path) -> Result<(), Box<dyn Error>> {
    let results = load(input)?;
    let panels = panels(&results);
    if panels.is_empty() {
        let plotted: Vec<&str> = SERIES.iter().map(|s| s.imp).chain([FLOOR_IMPL]).collect();
        return Err(format!(
            "{} has rows only for {}: nothing to plot (plotted: {})",
            input.display(),
            results.impls.join(", "),
            plotted.join(", ")
        )
        .into());
    }
    plot(&results, &panels, input, output).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    println!("wrote {}", output.display());
    Ok(())
}

// ---- input --------------------------------------------------------------------------------

/// One line of `run.sh --json FILE`, the fields the plot uses.
#[derive(Deserialize)]
struct Row {
    #[serde(rename = "impl")]
    imp: String,
    dtype: String,
    #[serde(rename = "N")]
    n: u64,
    #[serde(rename = "D")]
    d: u64,
    #[serde(rename = "H")]
    h: u64,
    #[serde(rename = "K")]
    k: u64,
    #[serde(default)]
    threads: Option<u64>,
    ns_per_step_median: f64,
}

impl Row {
    fn parse(line: &str) -> Result<Row, String> {
        let row: Row = serde_json::from_str(line).map_err(|e| e.to_string())?;
        if row.imp.is_empty() || row.dtype.is_empty() {
            return Err("empty \"impl\" or \"dtype\"".into());
        }
        if row.n == 0 || row.d == 0 || row.h == 0 || row.k == 0 {
            return Err("N, D, H and K must be ≥ 1".into());
        }
        if row.ns_per_step_median <= 0.0 {
            return Err(format!("\"ns_per_step_median\" is {}, not positive", row.ns_per_step_median));
        }
        Ok(row)
    }
}

/// A run's shape, as run.sh's table keys it (`dtype:NxDxHxK`).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct Shape {
    dtype: String,
    n: u64,
    d: u64,
    h: u64,
    k: u64,
}

impl Shape {
    fn family(&self) -> (u64, u64, u64) {
        (self.d, self.h, self.k)
    }

    fn label(&self) -> String {
        format!("{}:{}x{}x{}x{}", self.dtype, self.n, self.d, self.h, self.k)
    }
}

/// All usable lines, grouped by (shape, impl).
struct Results {
    /// Shapes and implementations in the order of their first line (run.sh's order).
    shapes: Vec<Shape>,
    impls: Vec<String>,
    /// `ns_per_step_median` of every round.
    times: HashMap<(Shape, String), Vec<f64>>,
    threads: BTreeSet<u64>,
}

impl Results {
    /// The median over rounds of the runs' `ns_per_step_median`, as run.sh's table.
    fn median_ns(&self, shape: &Shape, imp: &str) -> Option<f64> {
        let mut v = self.times.get(&(shape.clone(), imp.to_string()))?.clone();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        match n {
            0 => None,
            _ if n % 2 == 1 => Some(v[n / 2]),
            _ => Some((v[n / 2 - 1] + v[n / 2]) / 2.0),
        }
    }

    /// Samples per second of the median step: N / step time.
    fn samples_per_s(&self, shape: &Shape, imp: &str) -> Option<f64> {
        self.median_ns(shape, imp).map(|ns| shape.n as f64 * 1e9 / ns)
    }

    /// The smallest and largest number of rounds over all cells.
    fn rounds(&self) -> (usize, usize) {
        let counts = self.times.values().map(Vec::len);
        (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0))
    }
}

/// Reads the JSON lines of `path`, skipping (and reporting on stderr) those that are unusable.
fn load(path: &Path) -> Result<Results, Box<dyn Error>> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut results =
        Results { shapes: Vec::new(), impls: Vec::new(), times: HashMap::new(), threads: BTreeSet::new() };
    let mut skipped: Vec<String> = Vec::new();
    let mut lines = 0;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_start_matches('\u{feff}').trim();
        if line.is_empty() {
            continue;
        }
        lines += 1;
        let row = match Row::parse(line) {
            Ok(row) => row,
            Err(e) => {
                skipped.push(format!("line {}: {e}", i + 1));
                continue;
            }
        };
        let shape = Shape { dtype: row.dtype, n: row.n, d: row.d, h: row.h, k: row.k };
        if !results.shapes.contains(&shape) {
            results.shapes.push(shape.clone());
        }
        if !results.impls.contains(&row.imp) {
            results.impls.push(row.imp.clone());
        }
        results.threads.extend(row.threads);
        results.times.entry((shape, row.imp)).or_default().push(row.ns_per_step_median);
    }
    if results.times.is_empty() {
        let why = match skipped.first() {
            None => "it has no non-empty lines".to_string(),
            Some(first) => format!("all {lines} non-empty lines were skipped; first: {first}"),
        };
        return Err(format!(
            "no usable rows in {} ({why}); expected the JSON lines written by \
             `run.sh --json FILE`, one object per line with impl, dtype, N, D, H, K and \
             ns_per_step_median",
            path.display()
        )
        .into());
    }
    if !skipped.is_empty() {
        eprintln!("plot_peers: skipped {} of {lines} non-empty lines:", skipped.len());
        for s in skipped.iter().take(5) {
            eprintln!("  {s}");
        }
        if skipped.len() > 5 {
            eprintln!("  ... and {} more", skipped.len() - 5);
        }
    }
    if results.threads.len() > 1 {
        eprintln!(
            "plot_peers: warning: the file mixes thread counts {:?}; they are pooled per cell",
            results.threads
        );
    }
    Ok(results)
}

/// `v` with three significant digits and an SI suffix: 950, 1.2k, 34.5M.
fn si(v: f64) -> String {
    if !(v.is_finite() && v > 0.0) {
        return format!("{v}");
    }
    let scale = 10f64.powf(2.0 - v.log10().floor());
    let v = (v * scale).round() / scale;
    let (x, suffix) = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .into_iter()
        .find(|&(unit, _)| v >= unit)
        .map_or((v, ""), |(unit, suffix)| (v / unit, suffix));
    let mut s = match x {
        _ if x >= 100.0 => format!("{x:.0}"),
        _ if x >= 10.0 => format!("{x:.1}"),
        _ => format!("{x:.2}"),
    };
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    s + suffix
}

// ---- plot -----------------------------------------------------------------------------------

/// One line of a panel: (N, samples / s, hollow) sorted by N.
struct Line {
    /// `None` for the floor.
    style: Option<&'static Style>,
    points: Vec<(f64, f64, bool)>,
}

struct Panel {
    title: String,
    /// The family's majority dtype (filled markers) and the other dtypes plotted (hollow).
    main: String,
    hollow: Vec<String>,
    /// The N values present (the x ticks).
    ns: Vec<u64>,
    lines: Vec<Line>,
}

/// The panels to draw: the known families first, then any other, each only if it has a row
/// of a plotted implementation.
fn panels(r: &Results) -> Vec<Panel> {
    let mut families: Vec<(u64, u64, u64)> = Vec::new();
    for f in FAMILIES.into_iter().chain(r.shapes.iter().map(Shape::family)) {
        if !families.contains(&f) {
            families.push(f);
        }
    }
    families.into_iter().filter_map(|f| panel(r, f)).collect()
}

fn panel(r: &Results, family: (u64, u64, u64)) -> Option<Panel> {
    let plotted: Vec<(Option<&'static Style>, &str)> =
        std::iter::once((None, FLOOR_IMPL)).chain(SERIES.iter().rev().map(|s| (Some(s), s.imp))).collect();
    let shapes: Vec<&Shape> = r
        .shapes
        .iter()
        .filter(|s| s.family() == family && plotted.iter().any(|&(_, imp)| r.median_ns(s, imp).is_some()))
        .collect();
    if shapes.is_empty() {
        return None;
    }
    // The family's majority dtype (ties: f32, then by name) is drawn filled, others hollow.
    let mut dtypes: Vec<(&str, usize)> = Vec::new();
    for s in &shapes {
        match dtypes.iter_mut().find(|(d, _)| *d == s.dtype) {
            Some((_, c)) => *c += 1,
            None => dtypes.push((&s.dtype, 1)),
        }
    }
    dtypes.sort_by(|a, b| b.1.cmp(&a.1).then((b.0 == "f32").cmp(&(a.0 == "f32"))).then(a.0.cmp(b.0)));
    let main = dtypes[0].0;
    let mut ns: Vec<u64> = shapes.iter().map(|s| s.n).collect();
    ns.sort_unstable();
    ns.dedup();

    // At each N the main dtype if it was timed, else the first other dtype in `dtypes` order.
    let mut hollow: Vec<(u64, &str)> = Vec::new();
    let mut lines = Vec::new();
    for &(style, imp) in &plotted {
        let mut points = Vec::new();
        for &n in &ns {
            let pick = dtypes.iter().find_map(|&(dt, _)| {
                let shape = shapes.iter().find(|s| s.n == n && s.dtype == dt)?;
                r.samples_per_s(shape, imp).map(|v| (dt, v))
            });
            if let Some((dt, v)) = pick {
                if dt != main && !hollow.contains(&(n, dt)) {
                    hollow.push((n, dt));
                }
                points.push((n as f64, v, dt != main));
            }
        }
        if !points.is_empty() {
            lines.push(Line { style, points });
        }
    }
    for s in &shapes {
        if s.dtype != main && !hollow.contains(&(s.n, s.dtype.as_str())) {
            eprintln!("plot_peers: note: {} is in the table but not plotted ({main} is)", s.label());
        }
    }

    let (d, h, k) = family;
    let mut title = format!("D={d}, H={h}, K={k} ({main}");
    hollow.sort();
    let mut hollow_dtypes = Vec::new();
    for (dt, _) in dtypes.iter().skip(1) {
        let at: Vec<String> = hollow.iter().filter(|(_, x)| x == dt).map(|(n, _)| n.to_string()).collect();
        if !at.is_empty() {
            title += &format!("; N={} in {dt}, hollow", at.join(","));
            hollow_dtypes.push(dt.to_string());
        }
    }
    title.push(')');
    Some(Panel { title, main: main.to_string(), hollow: hollow_dtypes, ns, lines })
}

/// Log-axis ticks for `lo..hi`: labelled ones (powers of ten, or 1-2-5 when the range spans
/// less than 2.5 decades) and unlabelled grid lines at the other 1..9 multiples.
fn log_ticks(lo: f64, hi: f64) -> (Vec<f64>, Vec<f64>) {
    let decades = (hi / lo).log10();
    let bold_mults: &[f64] = match decades {
        _ if decades >= 2.5 => &[1.0],
        _ if decades >= 0.8 => &[1.0, 2.0, 5.0],
        _ => &[1.0, 1.5, 2.0, 3.0, 5.0, 7.0],
    };
    let (mut bold, mut light) = (Vec::new(), Vec::new());
    for e in (lo.log10().floor() as i32)..=(hi.log10().ceil() as i32) {
        let p = 10f64.powi(e);
        for m in 1..=9 {
            let v = m as f64 * p;
            if (lo..=hi).contains(&v) {
                if bold_mults.contains(&(m as f64)) { bold.push(v) } else { light.push(v) }
            }
        }
        for &m in bold_mults.iter().filter(|m| m.fract() != 0.0) {
            if (lo..=hi).contains(&(m * p)) {
                bold.push(m * p);
            }
        }
    }
    bold.sort_by(f64::total_cmp);
    (bold, light)
}

fn plot(r: &Results, panels: &[Panel], input: &Path, output: &Path) -> Result<(), Box<dyn Error>> {
    let cols = panels.len().min(COLUMNS);
    let rows = panels.len().div_ceil(COLUMNS);
    // Panels widen when there are fewer than COLUMNS of them, so that the title and notes fit.
    let panel_w = PANEL.0.max(MIN_WIDTH / cols as u32);
    let (head, legend_h, foot) = (50, 44, 50);
    let size = (20 + panel_w * cols as u32, head + legend_h + PANEL.1 * rows as u32 + foot);
    let root = SVGBackend::new(output, size).into_drawing_area();
    root.fill(&WHITE)?;
    let body = root.titled(
        "One training step of the two-layer net: samples / s against batch size (log-log, higher is better)",
        ("sans-serif", TITLE_FONT),
    )?;
    let (legend, body) = body.split_vertically(legend_h);
    let (grid, footer) = body.split_vertically(PANEL.1 * rows as u32);
    draw_legend(&legend, panels)?;

    for (panel, cell) in panels.iter().zip(grid.margin(0, 0, 10, 10).split_evenly((rows, cols))) {
        draw_panel(&root, &cell, panel)?;
    }

    let (lo, hi) = r.rounds();
    let rounds = if lo == hi { format!("{hi}") } else { format!("{lo}–{hi}") };
    let threads = r.threads.iter().map(u64::to_string).collect::<Vec<_>>().join(", ");
    let name = input.file_name().map_or_else(|| input.display().to_string(), |n| n.to_string_lossy().into());
    let threads = if threads.is_empty() { "?".to_string() } else { threads };
    let notes = [
        format!(
            "samples / s = N / step time; step time = median over {rounds} round(s) of each run's \
             ns_per_step_median, as in run.sh's table; threads {threads}; data: {name}"
        ),
        "dashed: only the step's five GEMMs through cblas_?gemm on preallocated buffers, \
         the floor for any OpenBLAS-based step"
            .to_string(),
    ];
    let (w, h) = footer.dim_in_pixel();
    let style = TextStyle::from(("sans-serif", NOTE_FONT).into_font())
        .color(&RGBColor(90, 90, 90))
        .pos(Pos::new(HPos::Center, VPos::Center));
    for (i, note) in notes.into_iter().enumerate() {
        let y = h as i32 / 2 + (2 * i as i32 - 1) * 10;
        footer.draw(&Text::new(note, (w as i32 / 2, y), style.clone()))?;
    }
    root.present()?;
    Ok(())
}

fn draw_panel(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    cell: &DrawingArea<SVGBackend<'_>, Shift>,
    panel: &Panel,
) -> Result<(), Box<dyn Error>> {
    let (x_lo, x_hi) = (panel.ns[0] as f64 / 1.6, panel.ns[panel.ns.len() - 1] as f64 * 1.6);
    let ys = panel.lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let (y_min, y_max) = ys.fold((f64::INFINITY, 0.0f64), |(lo, hi), y| (lo.min(y), hi.max(y)));
    let (y_lo, y_hi) = (y_min / 2.0, y_max * 2.0);
    let x_light: Vec<f64> = (0..64)
        .map(|e| 2f64.powi(e))
        .filter(|x| (x_lo..=x_hi).contains(x) && !panel.ns.contains(&(*x as u64)))
        .collect();
    let (y_bold, y_light) = log_ticks(y_lo, y_hi);

    let mut chart = ChartBuilder::on(cell)
        .caption(&panel.title, ("sans-serif", CAPTION_FONT))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(46)
        .y_label_area_size(64)
        .build_cartesian_2d(
            (x_lo..x_hi)
                .log_scale()
                .with_key_points(panel.ns.iter().map(|&n| n as f64).collect())
                .with_light_points(x_light),
            (y_lo..y_hi).log_scale().with_key_points(y_bold).with_light_points(y_light),
        )?;
    chart
        .configure_mesh()
        .x_desc("batch size N")
        .y_desc("samples / s")
        .x_label_formatter(&|x| format!("{}", x.round()))
        .y_label_formatter(&|y| si(*y))
        .axis_desc_style(("sans-serif", AXIS_FONT))
        .label_style(("sans-serif", TICK_FONT))
        .bold_line_style(BLACK.mix(0.14))
        .light_line_style(BLACK.mix(0.05))
        .draw()?;

    for line in &panel.lines {
        let xy = line.points.iter().map(|&(x, y, _)| (x, y));
        match line.style {
            None => {
                chart.draw_series(DashedLineSeries::new(xy, 9, 6, FLOOR_COLOR.stroke_width(2)))?;
                for &(x, y, hollow) in &line.points {
                    let at = chart.backend_coord(&(x, y));
                    let fill = if hollow { WHITE.filled() } else { FLOOR_COLOR.filled() };
                    root.draw(&Circle::new(at, 3, fill))?;
                    root.draw(&Circle::new(at, 3, FLOOR_COLOR.stroke_width(1)))?;
                }
            }
            Some(style) => {
                chart.draw_series(LineSeries::new(xy, style.color.stroke_width(style.width)))?;
                for &(x, y, hollow) in &line.points {
                    draw_marker(root, chart.backend_coord(&(x, y)), style, hollow)?;
                }
            }
        }
    }
    Ok(())
}

/// A marker of `style` centred at the pixel `at` of `area`; hollow ones are filled white.
fn draw_marker(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    (x, y): (i32, i32),
    style: &Style,
    hollow: bool,
) -> Result<(), Box<dyn Error>> {
    let fill = if hollow { WHITE.filled() } else { style.color.filled() };
    let stroke = style.color.stroke_width(2);
    let r = if style.width >= 3 { 6 } else { 5 };
    let polygon: Vec<(i32, i32)> = match style.marker {
        Marker::Circle => {
            area.draw(&Circle::new((x, y), r, fill))?;
            area.draw(&Circle::new((x, y), r, stroke))?;
            return Ok(());
        }
        Marker::Square => vec![
            (x - r + 1, y - r + 1),
            (x + r - 1, y - r + 1),
            (x + r - 1, y + r - 1),
            (x - r + 1, y + r - 1),
        ],
        Marker::Triangle => vec![(x, y - r - 1), (x + r + 1, y + r - 1), (x - r - 1, y + r - 1)],
        Marker::Diamond => vec![(x, y - r - 1), (x + r, y), (x, y + r + 1), (x - r, y)],
    };
    area.draw(&Polygon::new(polygon.clone(), fill))?;
    let mut outline = polygon.clone();
    outline.push(polygon[0]);
    area.draw(&PathElement::new(outline, stroke))?;
    Ok(())
}

/// The rendered width in pixels of `text` at plotters font size `size`, for a Helvetica-like
/// sans-serif (DejaVu Sans is a little wider): plotters' own estimate without a font backend
/// assumes the same width for every byte.
fn text_width(text: &str, size: u32) -> i32 {
    let ems: f64 = text
        .chars()
        .map(|c| match c {
            'i' | 'j' | 'l' | '.' | ',' | ':' | ';' | '\'' | '|' | '!' => 0.28,
            ' ' | 'f' | 't' | 'r' | '-' | '(' | ')' | '/' | 'I' => 0.36,
            'm' | 'w' | 'M' | 'W' => 0.88,
            'A'..='Z' => 0.68,
            _ => 0.58,
        })
        .sum();
    (ems * f64::from(size) / 1.24).round() as i32
}

/// One row of legend entries, centred: the implementations present, the floor, and the
/// hollow-marker convention if any panel uses it.
fn draw_legend(area: &DrawingArea<SVGBackend<'_>, Shift>, panels: &[Panel]) -> Result<(), Box<dyn Error>> {
    enum Entry {
        Series(&'static Style),
        Floor,
        Hollow,
    }
    let present = |imp: &str| {
        panels.iter().flat_map(|p| &p.lines).any(|l| l.style.map_or(FLOOR_IMPL, |s| s.imp) == imp)
    };
    let mut entries: Vec<(Entry, String)> =
        SERIES.iter().filter(|s| present(s.imp)).map(|s| (Entry::Series(s), s.label.to_string())).collect();
    if present(FLOOR_IMPL) {
        entries.push((Entry::Floor, FLOOR_LABEL.to_string()));
    }
    if panels.iter().flat_map(|p| &p.lines).flat_map(|l| &l.points).any(|p| p.2) {
        let mains: BTreeSet<&str> = panels.iter().map(|p| p.main.as_str()).collect();
        let hollows: BTreeSet<&str> = panels.iter().flat_map(|p| &p.hollow).map(String::as_str).collect();
        let label = match (mains.len(), hollows.len()) {
            (1, 1) => format!("hollow: {} (filled: {})", hollows.first().unwrap(), mains.first().unwrap()),
            _ => "hollow: other dtype (see panel titles)".to_string(),
        };
        entries.push((Entry::Hollow, label));
    }

    let text_style =
        TextStyle::from(("sans-serif", LEGEND_FONT).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    // Each entry: a sample (a line, or just a marker), a gap, its label; entries `spacing` apart.
    let sample_width = |entry: &Entry| if matches!(entry, Entry::Hollow) { 14 } else { 36 };
    let (gap, spacing) = (8, 30);
    let widths: Vec<i32> =
        entries.iter().map(|(e, label)| sample_width(e) + gap + text_width(label, LEGEND_FONT)).collect();
    let total: i32 = widths.iter().sum::<i32>() + spacing * (widths.len() as i32 - 1);
    let (w, h) = area.dim_in_pixel();
    let (mut x, y) = ((w as i32 - total) / 2, h as i32 / 2);
    for ((entry, label), width) in entries.iter().zip(&widths) {
        let sample = sample_width(entry);
        let mid = (x + sample / 2, y);
        match entry {
            Entry::Series(style) => {
                area.draw(&PathElement::new(
                    vec![(x, y), (x + sample, y)],
                    style.color.stroke_width(style.width),
                ))?;
                draw_marker(area, mid, style, false)?;
            }
            Entry::Floor => {
                area.draw(&DashedPathElement::new(
                    vec![(x, y), (x + sample, y)],
                    9,
                    6,
                    FLOOR_COLOR.stroke_width(2),
                ))?;
            }
            Entry::Hollow => {
                let style = Style { color: RGBColor(60, 60, 60), ..SERIES[0] };
                draw_marker(area, mid, &style, true)?;
            }
        }
        area.draw(&Text::new(label.as_str(), (x + sample + gap, y), text_style.clone()))?;
        x += width + spacing;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_harness_line() {
        let line = r#"{"impl":"project","dtype":"f32","N":64,"D":3,"H":4,"K":2,"threads":2,"steps":123456,"repeats":7,"ns_per_step_median":2431.0,"ns_per_step_min":2398.2,"version":"two-layer-net 0.1.0 (OpenBLAS 0.3.21)"}"#;
        let row = Row::parse(line).unwrap();
        assert_eq!(
            (row.imp.as_str(), row.dtype.as_str(), row.n, row.d, row.h, row.k),
            ("project", "f32", 64, 3, 4, 2)
        );
        assert_eq!((row.threads, row.ns_per_step_median), (Some(2), 2431.0));
        for bad in [
            "",
            "{}",
            r#"{"impl":"x","dtype":"f32","N":0,"D":3,"H":4,"K":2,"ns_per_step_median":1.0}"#,
            r#"{"impl":"x","dtype":"f32","N":1,"D":3,"H":4,"K":2,"ns_per_step_median":-1.0}"#,
            r#"{"impl":"","dtype":"f32","N":1,"D":3,"H":4,"K":2,"ns_per_step_median":1.0}"#,
        ] {
            assert!(Row::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn median_mirrors_run_sh() {
        let shape = Shape { dtype: "f32".into(), n: 1, d: 1, h: 1, k: 1 };
        let mut r = Results {
            shapes: vec![shape.clone()],
            impls: vec!["x".into()],
            times: HashMap::new(),
            threads: BTreeSet::new(),
        };
        r.times.insert((shape.clone(), "x".into()), vec![3.0, 1.0, 2.0]);
        assert_eq!(r.median_ns(&shape, "x"), Some(2.0));
        r.times.insert((shape.clone(), "x".into()), vec![4.0, 1.0]);
        assert_eq!(r.median_ns(&shape, "x"), Some(2.5));
    }

    #[test]
    fn si_format() {
        assert_eq!(si(999.6), "1k");
        assert_eq!(si(1234.0), "1.23k");
        assert_eq!(si(20e6), "20M");
        assert_eq!(si(5.0), "5");
    }
}
