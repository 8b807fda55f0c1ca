//! The README's scale-out model of data-parallel training (`two_layer_net::parallel`): fits the
//! cost of a step to what `examples/data_parallel.rs --timing --json FILE` measured at P = 1, 2
//! (and 3) ranks, models the time of a step for P up to 64 over two interconnects, and writes
//! the tables (markdown, on stdout) and the plot (speedup against P, an SVG).
//!
//! The input is the example's JSON lines, one object per measurement; lines repeated over
//! rounds are reduced to their median, field by field:
//! - `{"kind":"allreduce","P":2,"bytes":8,"us":0.9,"oversubscribed":false,…}`: one
//!   `MPI_Allreduce` (sum) of `bytes` alone;
//! - `{"kind":"step","P":2,"D":784,"H":256,"K":10,"batch":1024,"local_rows":512,"scalars":203534,
//!   "us_step":…,"us_compute":…,"us_allreduce":…,"us_update":…,"oversubscribed":false,…}`: one
//!   data-parallel step of a global batch of `batch` rows (`us_step`: the slowest rank's wall
//!   time; the phases: rank 0's, which has the most rows, `local_rows`).
//!
//! The model of a step of a global batch of N rows over P ranks:
//!
//! `T(P, N) = compute(⌈N/P⌉) + ring(P, bytes(P)) + update`, with
//! - `compute(n) = a + b·n`, fitted to the P = 1 steps' `us_compute` (forward, loss, backward
//!   on n rows, and packing the reduce buffer);
//! - `bytes(P) = 8·(D·H + H + H·K + K + 2 + P)`: the step's allreduce buffer, f64 (the
//!   gradient, the loss and row count, one error flag per rank);
//! - `ring(P, B) = 2(P−1)·α + 2(P−1)/P · B/β`, the ring allreduce (a reduce-scatter and an
//!   allgather, each P−1 messages of B/P bytes per rank), with latency α per message and
//!   bandwidth β; `ring(1, B) = 0`;
//! - `update`: the mean of the P = 1 steps' `us_update` (dividing by N, the optimizer; the
//!   same on every rank whatever P and N).
//!
//! `T(1, N)` is one process without any allreduce, so the speedup `S = T(1, N)/T(P, N)` and
//! the parallel efficiency `E = S/P` are against plain single-process training.
//!
//! Both fits are weighted least squares with weights 1/t², i.e. they minimise the relative
//! residuals `Σ((model − t)/t)²`, so that the short times (small batches, small messages)
//! count as much as the long ones; α and β are fitted per P to the allreduce sweep at that P.
//!
//! The two interconnects:
//! - **measured**: α and β fitted to the P = 2 sweep on the machine that ran the example (with
//!   every rank on one host, OpenMPI's shared-memory transport); P = 3's fit is shown as a check
//!   only: with three ranks on two cores it is oversubscribed, its latency pessimistic.
//! - **10 GbE**: assumed, not measured: β = 1.25 GB/s, the 10 Gb/s line rate (TCP payload is a
//!   few percent less, so this is optimistic), and α = 50 µs per message, a conservative
//!   figure for MPI over the kernel's TCP stack (its small-message ping-pong latency is
//!   typically some tens of µs on 10 GbE); one rank per node, every ring message on the wire.
//!
//! The smallest global batch that keeps an efficiency E at P ranks (N a multiple of P): from
//! `T(1, N) ≥ E·P·T(P, N)`, `N ≥ ((E·P − 1)(a + update) + E·P·ring(P)) / (b·(1 − E))`.
//!
//! ```sh
//! cargo run --release --manifest-path tools/scale_model/Cargo.toml -- docs/scaleout.jsonl docs/scaleout.svg
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::error::Error;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::ExitCode;

use plotters::element::DashedPathElement;
use plotters::prelude::*;
use serde::Deserialize;

/// The ranks modelled.
const RANKS: [u32; 7] = [1, 2, 4, 8, 16, 32, 64];
/// The global batches modelled.
const BATCHES: [u64; 5] = [256, 1024, 4096, 16384, 65536];
/// The efficiencies of the smallest-batch table.
const EFFICIENCIES: [f64; 2] = [0.5, 0.8];
/// "Useful" ranks: the largest P whose efficiency is at least this.
const USEFUL: f64 = 0.5;
/// The ranks whose allreduce sweep gives the measured interconnect's α and β.
const FIT_RANKS: u32 = 2;

/// 10 GbE, assumed (see the module's documentation): 50 µs per message, 1.25 GB/s.
const TEN_GBE: Link = Link { alpha_us: 50.0, bytes_per_us: 1.25e3 };

/// Colors of the batches' lines: matplotlib's tab10.
const COLORS: [RGBColor; 5] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
];

const USAGE: &str = "usage: scale_model INPUT.jsonl OUTPUT.svg\n\
    (from the repository root: cargo run --release --manifest-path tools/scale_model/Cargo.toml -- INPUT.jsonl OUTPUT.svg)\n\
    \n\
    INPUT.jsonl: the JSON lines of `data_parallel --timing --json INPUT.jsonl` at P = 1 and 2 (and 3)\n\
    OUTPUT.svg:  the plot (modelled speedup against P, fast interconnect and 10 GbE)\n\
    The tables (markdown) go to stdout.";

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
            eprintln!("scale_model: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(input: &Path, output: &Path) -> Result<(), Box<dyn Error>> {
    let text = fs::read_to_string(input).map_err(|e| format!("cannot read {}: {e}", input.display()))?;
    let measured = Measured::parse(&text).map_err(|e| format!("{}: {e}", input.display()))?;
    let model = Model::fit(&measured)?;
    let fast = measured.link(FIT_RANKS)?;
    let check = measured.allreduce.keys().map(|&(p, _)| p).filter(|&p| p > FIT_RANKS).min();
    let check = check.map(|p| measured.link(p).map(|l| (p, l))).transpose()?;
    print!("{}", report(&measured, &model, fast, check));
    plot(&measured, &model, fast, output).map_err(|e| format!("cannot write {}: {e}", output.display()))?;
    eprintln!("scale_model: wrote {}", output.display());
    Ok(())
}

// ---- input ----------------------------------------------------------------------------------

/// One line of the example's `--json` file, the fields the model uses.
#[derive(Deserialize, Debug, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
enum Record {
    Allreduce {
        #[serde(rename = "P")]
        p: u32,
        bytes: u64,
        us: f64,
        oversubscribed: bool,
    },
    Step {
        #[serde(rename = "P")]
        p: u32,
        #[serde(rename = "D")]
        d: u64,
        #[serde(rename = "H")]
        h: u64,
        #[serde(rename = "K")]
        k: u64,
        batch: u64,
        local_rows: u64,
        scalars: u64,
        #[serde(flatten)]
        times: StepTimes,
        oversubscribed: bool,
    },
}

/// The times of one step, in µs.
#[derive(Deserialize, Debug, Clone, Copy, PartialEq)]
struct StepTimes {
    us_step: f64,
    us_compute: f64,
    us_allreduce: f64,
    us_update: f64,
}

/// The median of each measurement over its rounds.
#[derive(Debug)]
struct Measured {
    /// D, H, K of the network (the same on every step line).
    dims: (u64, u64, u64),
    /// (P, bytes) → µs per allreduce.
    allreduce: BTreeMap<(u32, u64), f64>,
    /// (P, N) → (local rows of rank 0, times).
    steps: BTreeMap<(u32, u64), (u64, StepTimes)>,
    /// The P whose runs were oversubscribed (more ranks than cores).
    oversubscribed: BTreeSet<u32>,
    /// The fewest and most rounds of a measurement.
    rounds: (usize, usize),
}

/// The median of `v` (the mean of the middle two for an even count); `v` is not empty.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

impl Measured {
    /// Parses the JSON lines (blank lines skipped; any other line that is not a record is an
    /// error) and reduces repeated measurements to their medians.
    fn parse(text: &str) -> Result<Measured, String> {
        let mut allreduce: BTreeMap<(u32, u64), Vec<f64>> = BTreeMap::new();
        let mut steps: BTreeMap<(u32, u64), (u64, Vec<StepTimes>)> = BTreeMap::new();
        let (mut dims, mut oversubscribed) = (None, BTreeSet::new());
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let err = |e: String| format!("line {}: {e}", i + 1);
            match serde_json::from_str(line).map_err(|e| err(e.to_string()))? {
                Record::Allreduce { p, bytes, us, oversubscribed: over } => {
                    if p == 0 || !us.is_finite() || us <= 0.0 {
                        return Err(err(format!("P = {p}, us = {us}: want P ≥ 1 and a positive time")));
                    }
                    allreduce.entry((p, bytes)).or_default().push(us);
                    if over {
                        oversubscribed.insert(p);
                    }
                }
                Record::Step { p, d, h, k, batch, local_rows, scalars, times, oversubscribed: over } => {
                    let t = [times.us_step, times.us_compute, times.us_allreduce, times.us_update];
                    if p == 0
                        || local_rows != batch.div_ceil(u64::from(p))
                        || t.iter().any(|t| !t.is_finite() || *t < 0.0)
                    {
                        return Err(err(format!(
                            "P = {p}, batch {batch}, local_rows {local_rows}, times {t:?}: want P ≥ 1, \
                             ⌈batch/P⌉ local rows and times ≥ 0"
                        )));
                    }
                    if *dims.get_or_insert((d, h, k)) != (d, h, k) {
                        return Err(err(format!(
                            "D,H,K = {d},{h},{k}, but an earlier step line has {dims:?}"
                        )));
                    }
                    let expected = params((d, h, k)) + 2 + u64::from(p);
                    if scalars != expected {
                        return Err(err(format!("{scalars} scalars reduced, expected {expected}")));
                    }
                    steps.entry((p, batch)).or_insert((local_rows, Vec::new())).1.push(times);
                    if over {
                        oversubscribed.insert(p);
                    }
                }
            }
        }
        let dims = dims.ok_or("no step lines")?;
        let counts = allreduce.values().map(Vec::len).chain(steps.values().map(|(_, v)| v.len()));
        let rounds = (counts.clone().min().unwrap_or(0), counts.max().unwrap_or(0));
        let steps = steps
            .into_iter()
            .map(|(key, (rows, v))| {
                let field = |f: fn(&StepTimes) -> f64| median(v.iter().map(f).collect());
                let times = StepTimes {
                    us_step: field(|t| t.us_step),
                    us_compute: field(|t| t.us_compute),
                    us_allreduce: field(|t| t.us_allreduce),
                    us_update: field(|t| t.us_update),
                };
                (key, (rows, times))
            })
            .collect();
        let allreduce = allreduce.into_iter().map(|(key, v)| (key, median(v))).collect();
        Ok(Measured { dims, allreduce, steps, oversubscribed, rounds })
    }

    /// α and β fitted to the allreduce sweep at `p` ranks.
    fn link(&self, p: u32) -> Result<Link, String> {
        let sweep: Vec<(u64, f64)> = self
            .allreduce
            .iter()
            .filter(|((q, _), _)| *q == p)
            .map(|(&(_, bytes), &us)| (bytes, us))
            .collect();
        Link::fit(p, &sweep).ok_or_else(|| {
            format!(
                "cannot fit α and β to the allreduce sweep at P = {p} ({} sizes; want ≥ 2 sizes \
                 and a positive α and β)",
                sweep.len()
            )
        })
    }
}

/// Parameters of the network: `D·H + H + H·K + K`.
fn params((d, h, k): (u64, u64, u64)) -> u64 {
    d * h + h + h * k + k
}

// ---- fits and the model ---------------------------------------------------------------------

/// The weighted least-squares fit of `t ≈ c0·u + c1·v` to the points `(u, v, t)`, with weights
/// 1/t² (relative residuals): the normal equations
/// `[Σwu² Σwuv; Σwuv Σwv²]·[c0; c1] = [Σwut; Σwvt]`. `None` if they are singular (fewer than
/// two independent points) or a time is not positive.
fn fit2(points: &[(f64, f64, f64)]) -> Option<(f64, f64)> {
    let (mut uu, mut uv, mut vv, mut ut, mut vt) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(u, v, t) in points {
        if !t.is_finite() || t <= 0.0 {
            return None;
        }
        let w = 1.0 / (t * t);
        (uu, uv, vv, ut, vt) =
            (uu + w * u * u, uv + w * u * v, vv + w * v * v, ut + w * u * t, vt + w * v * t);
    }
    let det = uu * vv - uv * uv;
    if !det.is_finite() || det.abs() <= 1e-12 * uu * vv {
        return None;
    }
    Some(((ut * vv - vt * uv) / det, (vt * uu - ut * uv) / det))
}

/// An interconnect as the ring allreduce sees it.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Link {
    /// Latency per message, µs.
    alpha_us: f64,
    /// Bandwidth, bytes per µs (= MB/s; GB/s × 1000).
    bytes_per_us: f64,
}

impl Link {
    /// `ring(P, B) = 2(P−1)·α + 2(P−1)/P · B/β`, µs.
    fn ring_us(&self, p: u32, bytes: f64) -> f64 {
        let p = f64::from(p);
        2.0 * (p - 1.0) * self.alpha_us + 2.0 * (p - 1.0) / p * bytes / self.bytes_per_us
    }

    /// α and 1/β from the sweep `(bytes, µs)` at `p ≥ 2` ranks: [`fit2`] with
    /// `u = 2(P−1)`, `v = 2(P−1)/P·bytes`. `None` unless both come out positive.
    fn fit(p: u32, sweep: &[(u64, f64)]) -> Option<Link> {
        let q = f64::from(p);
        let points: Vec<_> = sweep
            .iter()
            .map(|&(bytes, us)| (2.0 * (q - 1.0), 2.0 * (q - 1.0) / q * bytes as f64, us))
            .collect();
        let (alpha_us, inv_beta) = fit2(&points).filter(|&(a, ib)| p >= 2 && a > 0.0 && ib > 0.0)?;
        Some(Link { alpha_us, bytes_per_us: 1.0 / inv_beta })
    }
}

/// The step's costs outside the allreduce, fitted to the P = 1 steps.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Model {
    /// `compute(n) = a + b·n`: µs, and µs per row.
    a_us: f64,
    b_us: f64,
    /// µs per step.
    update_us: f64,
    /// Parameters of the network.
    params: u64,
}

impl Model {
    fn fit(m: &Measured) -> Result<Model, String> {
        let one: Vec<(f64, StepTimes)> =
            m.steps.iter().filter(|((p, _), _)| *p == 1).map(|(_, &(rows, t))| (rows as f64, t)).collect();
        let points: Vec<_> = one.iter().map(|&(rows, t)| (1.0, rows, t.us_compute)).collect();
        let (a_us, b_us) = fit2(&points)
            .filter(|&(_, b)| b > 0.0)
            .ok_or_else(|| format!("cannot fit compute = a + b·rows to {} P = 1 step sizes", one.len()))?;
        let update_us = one.iter().map(|(_, t)| t.us_update).sum::<f64>() / one.len() as f64;
        Ok(Model { a_us, b_us, update_us, params: params(m.dims) })
    }

    /// The allreduce buffer at `p` ranks: `8·(params + 2 + P)` bytes.
    fn bytes(&self, p: u32) -> f64 {
        8.0 * (self.params + 2 + u64::from(p)) as f64
    }

    /// `T(P, N) = compute(⌈N/P⌉) + ring(P, bytes(P)) + update`, µs.
    fn step_us(&self, link: Link, p: u32, n: u64) -> f64 {
        let rows = n.div_ceil(u64::from(p)) as f64;
        self.a_us + self.b_us * rows + link.ring_us(p, self.bytes(p)) + self.update_us
    }

    /// Speedup `T(1, N)/T(P, N)`.
    fn speedup(&self, link: Link, p: u32, n: u64) -> f64 {
        self.step_us(link, 1, n) / self.step_us(link, p, n)
    }

    /// The smallest multiple of `p ≥ 2` ranks as global batch with efficiency at least `e < 1`:
    /// `N ≥ ((e·P − 1)(a + update) + e·P·ring(P)) / (b·(1 − e))`, rounded up to a multiple of P.
    fn min_batch(&self, link: Link, p: u32, e: f64) -> u64 {
        let q = f64::from(p);
        let fixed = self.a_us + self.update_us;
        let n = ((e * q - 1.0) * fixed + e * q * link.ring_us(p, self.bytes(p))) / (self.b_us * (1.0 - e));
        (n / q).ceil().max(1.0) as u64 * u64::from(p)
    }
}

// ---- report ---------------------------------------------------------------------------------

/// `v` with three significant digits (at least whole numbers).
fn sig3(v: f64) -> String {
    let digits = (2 - v.abs().log10().floor() as i32).max(0) as usize;
    format!("{v:.digits$}")
}

/// The markdown tables.
fn report(m: &Measured, model: &Model, fast: Link, check: Option<(u32, Link)>) -> String {
    let mut out = String::new();
    let (d, h, k) = m.dims;
    let over = |p: u32| if m.oversubscribed.contains(&p) { " (oversubscribed)" } else { "" };
    let (lo, hi) = m.rounds;
    let rounds = if lo == hi { format!("{hi}") } else { format!("{lo}–{hi}") };
    let _ = writeln!(
        out,
        "D,H,K = {d},{h},{k} (f64): {} parameters, allreduce of {:.0} KiB per step at P = 2; \
         medians over {rounds} round(s).\n",
        model.params,
        model.bytes(2) / 1024.0
    );

    let _ = writeln!(out, "Fitted (weighted least squares, relative residuals):\n");
    let _ = writeln!(
        out,
        "- compute(n) = {} µs + {} µs/row · n (P = 1 steps); update {} µs per step",
        sig3(model.a_us),
        sig3(model.b_us),
        sig3(model.update_us)
    );
    let _ = writeln!(
        out,
        "- allreduce at P = {FIT_RANKS}{}: α = {} µs, β = {} GB/s (the model's measured interconnect)",
        over(FIT_RANKS),
        sig3(fast.alpha_us),
        sig3(fast.bytes_per_us / 1e3)
    );
    if let Some((p, link)) = check {
        let _ = writeln!(
            out,
            "- allreduce at P = {p}{}: α = {} µs, β = {} GB/s (a check only)",
            over(p),
            sig3(link.alpha_us),
            sig3(link.bytes_per_us / 1e3)
        );
    }
    let _ = writeln!(
        out,
        "- 10 GbE, assumed: α = {} µs, β = {} GB/s\n",
        sig3(TEN_GBE.alpha_us),
        sig3(TEN_GBE.bytes_per_us / 1e3)
    );

    // The sweep against its fit.
    let ranks: BTreeSet<u32> = m.allreduce.keys().map(|&(p, _)| p).filter(|&p| p >= 2).collect();
    let links: Vec<(u32, Option<Link>)> = ranks.iter().map(|&p| (p, m.link(p).ok())).collect();
    let _ = write!(out, "| allreduce bytes |");
    for (p, _) in &links {
        let _ = write!(out, " P = {p}{}: µs | ring fit |", over(*p));
    }
    let _ = writeln!(out, "\n|---:|{}", "---:|---:|".repeat(links.len()));
    let sizes: BTreeSet<u64> = m.allreduce.keys().filter(|(p, _)| *p >= 2).map(|&(_, b)| b).collect();
    for bytes in sizes {
        let _ = write!(out, "| {bytes} |");
        for &(p, link) in &links {
            let measured = m.allreduce.get(&(p, bytes)).map_or("–".into(), |&us| sig3(us));
            let fit = link.map_or("–".into(), |l| sig3(l.ring_us(p, bytes as f64)));
            let _ = write!(out, " {measured} | {fit} |");
        }
        let _ = writeln!(out);
    }

    // Measured steps against the model.
    let _ = writeln!(
        out,
        "\nMeasured steps (µs per step; speedup against the P = 1 run through DataParallel) \
         and the model (measured interconnect, α and β of P = {FIT_RANKS}):\n"
    );
    let _ = writeln!(
        out,
        "| P | N | rows/rank | step | compute | allreduce | update | speedup | model | model error |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (&(p, n), &(rows, t)) in &m.steps {
        let speedup =
            m.steps.get(&(1, n)).map_or("–".into(), |(_, one)| format!("{:.2}×", one.us_step / t.us_step));
        let modelled = model.step_us(fast, p, n);
        let _ = writeln!(
            out,
            "| {p}{} | {n} | {rows} | {} | {} | {} | {} | {speedup} | {} | {:+.1} % |",
            if m.oversubscribed.contains(&p) { "*" } else { "" },
            sig3(t.us_step),
            sig3(t.us_compute),
            sig3(t.us_allreduce),
            sig3(t.us_update),
            sig3(modelled),
            100.0 * (modelled / t.us_step - 1.0)
        );
    }
    if !m.oversubscribed.is_empty() {
        let _ = writeln!(out, "\n\\* oversubscribed: more ranks than cores, the ranks time-share them.");
    }

    // Modelled speedups.
    for (name, link) in [("measured interconnect", fast), ("10 GbE", TEN_GBE)] {
        let _ = writeln!(
            out,
            "\nModelled speedup T(1,N)/T(P,N) (efficiency), {name} (α = {} µs, β = {} GB/s):\n",
            sig3(link.alpha_us),
            sig3(link.bytes_per_us / 1e3)
        );
        let _ = write!(out, "| N |");
        for p in RANKS.iter().skip(1) {
            let _ = write!(out, " P = {p} |");
        }
        let _ = writeln!(out, " largest P, E ≥ {:.0} % | fastest P |", 100.0 * USEFUL);
        let _ = writeln!(out, "|---:|{}---:|---:|", "---:|".repeat(RANKS.len() - 1));
        for n in BATCHES {
            let _ = write!(out, "| {n} |");
            for &p in RANKS.iter().skip(1) {
                let s = model.speedup(link, p, n);
                let _ = write!(out, " {s:.2} ({:.0} %) |", 100.0 * s / f64::from(p));
            }
            let useful = RANKS.iter().rev().find(|&&p| model.speedup(link, p, n) / f64::from(p) >= USEFUL);
            let fastest = RANKS
                .iter()
                .min_by(|&&p, &&q| model.step_us(link, p, n).total_cmp(&model.step_us(link, q, n)));
            let _ = writeln!(out, " {} | {} |", useful.unwrap_or(&1), fastest.unwrap_or(&1));
        }
    }

    // The smallest global batch for an efficiency.
    let _ = writeln!(out, "\nModelled smallest global batch N for an efficiency (N a multiple of P):\n");
    let _ = write!(out, "| P |");
    for name in ["measured", "10 GbE"] {
        for e in EFFICIENCIES {
            let _ = write!(out, " {name}, E ≥ {:.0} % |", 100.0 * e);
        }
    }
    let _ = writeln!(out, "\n|---:|{}", "---:|".repeat(2 * EFFICIENCIES.len()));
    for &p in RANKS.iter().skip(1) {
        let _ = write!(out, "| {p} |");
        for link in [fast, TEN_GBE] {
            for e in EFFICIENCIES {
                let _ = write!(out, " {} |", model.min_batch(link, p, e));
            }
        }
        let _ = writeln!(out);
    }
    out
}

// ---- plot -----------------------------------------------------------------------------------

/// Speedup against P (log₂ both), one line per global batch, the ideal dashed; a panel per
/// interconnect; on the measured one, the measured speedups at P ≥ 2 (hollow: oversubscribed).
fn plot(m: &Measured, model: &Model, fast: Link, output: &Path) -> Result<(), Box<dyn Error>> {
    let root = SVGBackend::new(output, (1200, 620)).into_drawing_area();
    root.fill(&WHITE)?;
    let (d, h, k) = m.dims;
    let root = root.titled(
        &format!(
            "Data-parallel step, D,H,K = {d},{h},{k} (f64): modelled speedup T(1,N)/T(P,N) against ranks P"
        ),
        ("sans-serif", 24),
    )?;
    let (body, foot) = root.split_vertically(560);
    let panels = body.split_evenly((1, 2));
    let gbe = format!(
        "10 GbE, assumed: α = {} µs, β = {} GB/s",
        sig3(TEN_GBE.alpha_us),
        sig3(TEN_GBE.bytes_per_us / 1e3)
    );
    let shm = format!(
        "measured (shared memory): α = {} µs, β = {} GB/s",
        sig3(fast.alpha_us),
        sig3(fast.bytes_per_us / 1e3)
    );
    let p_max = f64::from(RANKS[RANKS.len() - 1]);
    let speedups = [fast, TEN_GBE]
        .into_iter()
        .flat_map(|l| RANKS.iter().flat_map(move |&p| BATCHES.iter().map(move |&n| model.speedup(l, p, n))));
    let measured: Vec<(u32, u64, f64)> = m
        .steps
        .iter()
        .filter(|((p, n), _)| *p >= 2 && BATCHES.contains(n))
        .filter_map(|(&(p, n), (_, t))| m.steps.get(&(1, n)).map(|(_, one)| (p, n, one.us_step / t.us_step)))
        .collect();
    let y_min = speedups.chain(measured.iter().map(|x| x.2)).fold(1.0, f64::min);
    let y_lo = 2f64.powf(y_min.log2().floor());
    let (x_range, y_range) = (0.8..p_max * 1.25, y_lo * 0.9..p_max * 1.25);
    let powers = |lo: f64, hi: f64| -> Vec<f64> {
        (-10..=10).map(|e| 2f64.powi(e)).filter(|v| (lo..=hi).contains(v)).collect()
    };

    for (area, (title, link)) in panels.iter().zip([(shm, fast), (gbe, TEN_GBE)]) {
        let mut chart = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 19))
            .margin(10)
            .margin_right(20)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(
                x_range.clone().log_scale().with_key_points(RANKS.iter().map(|&p| f64::from(p)).collect()),
                y_range.clone().log_scale().with_key_points(powers(y_range.start, y_range.end)),
            )?;
        chart
            .configure_mesh()
            .x_desc("ranks P (log₂)")
            .y_desc("speedup (log₂)")
            .x_label_formatter(&|x| format!("{}", x.round()))
            .y_label_formatter(&|y| if *y >= 1.0 { format!("{}", y.round()) } else { format!("{y}") })
            .axis_desc_style(("sans-serif", 17))
            .label_style(("sans-serif", 15))
            .bold_line_style(BLACK.mix(0.12))
            .light_line_style(WHITE)
            .draw()?;
        let ideal = RANKS.iter().map(|&p| (f64::from(p), f64::from(p)));
        let gray = RGBColor(90, 90, 90);
        chart
            .draw_series(DashedLineSeries::new(ideal, 8, 6, gray.stroke_width(2)))?
            .label("ideal: speedup = P")
            .legend(move |(x, y)| {
                DashedPathElement::new(vec![(x, y), (x + 24, y)], 8, 6, gray.stroke_width(2))
            });
        for (&n, &color) in BATCHES.iter().zip(&COLORS) {
            let line = RANKS.iter().map(|&p| (f64::from(p), model.speedup(link, p, n)));
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(format!("N = {n}"))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(2)));
            chart.draw_series(line.map(|xy| Circle::new(xy, 3, color.filled())))?;
            if link == fast {
                for &(p, _, s) in measured.iter().filter(|x| x.1 == n) {
                    let style =
                        if m.oversubscribed.contains(&p) { color.stroke_width(2) } else { color.filled() };
                    chart.draw_series([TriangleMarker::new((f64::from(p), s), 7, style)])?;
                }
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 15))
            .draw()?;
    }
    let over: Vec<String> = m.oversubscribed.iter().map(u32::to_string).collect();
    let note = format!(
        "lines: T(P,N) = compute(N/P) + ring allreduce + update, fitted at P = 1, 2 on a 2-core machine; \
         triangles: measured at P = 2{}",
        if over.is_empty() {
            String::new()
        } else {
            format!(" (hollow: P = {}, oversubscribed)", over.join(", "))
        }
    );
    let (w, h) = foot.dim_in_pixel();
    let style = TextStyle::from(("sans-serif", 15).into_font()).color(&RGBColor(90, 90, 90)).pos(
        plotters::style::text_anchor::Pos::new(
            plotters::style::text_anchor::HPos::Center,
            plotters::style::text_anchor::VPos::Center,
        ),
    );
    foot.draw(&Text::new(note, (w as i32 / 2, h as i32 / 2), style))?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs())
    }

    #[test]
    fn fit_recovers_compute() {
        let (a, b) = (35.0, 22.5);
        let points: Vec<_> = [64.0, 256.0, 1024.0, 4096.0].iter().map(|&n| (1.0, n, a + b * n)).collect();
        let (fa, fb) = fit2(&points).unwrap();
        assert!(close(fa, a) && close(fb, b), "{fa} {fb}");
        assert_eq!(fit2(&points[..1]), None);
        assert_eq!(fit2(&[(1.0, 1.0, 1.0), (1.0, 2.0, 0.0)]), None);
    }

    #[test]
    fn ring_formula() {
        let link = Link { alpha_us: 2.0, bytes_per_us: 1000.0 };
        assert_eq!(link.ring_us(1, 1e6), 0.0);
        // P = 2: 2α + B/β.
        assert!(close(link.ring_us(2, 1e6), 4.0 + 1000.0));
        // P = 4: 6α + 1.5·B/β.
        assert!(close(link.ring_us(4, 1e6), 12.0 + 1500.0));
        // Large P: the bandwidth term tends to 2·B/β.
        assert!(link.ring_us(1024, 1e6) < 2.0 * 1000.0 + 2.0 * 1023.0 * 2.0);
    }

    #[test]
    fn fit_recovers_alpha_beta() {
        let link = Link { alpha_us: 0.7, bytes_per_us: 4500.0 };
        for p in [2, 3, 8] {
            let sweep: Vec<(u64, f64)> = [8, 128, 2048, 32768, 524_288, 8_388_608]
                .iter()
                .map(|&b| (b, link.ring_us(p, b as f64)))
                .collect();
            let fit = Link::fit(p, &sweep).unwrap();
            assert!(
                close(fit.alpha_us, link.alpha_us) && close(fit.bytes_per_us, link.bytes_per_us),
                "{fit:?}"
            );
        }
        assert_eq!(Link::fit(1, &[(8, 1.0), (16, 2.0)]), None);
    }

    #[test]
    fn min_batch_meets_the_efficiency() {
        let model = Model { a_us: 30.0, b_us: 22.0, update_us: 300.0, params: 203_530 };
        for link in [Link { alpha_us: 0.5, bytes_per_us: 5000.0 }, TEN_GBE] {
            for p in [2, 8, 64] {
                for e in EFFICIENCIES {
                    let n = model.min_batch(link, p, e);
                    assert_eq!(n % u64::from(p), 0);
                    let eff = |n| model.speedup(link, p, n) / f64::from(p);
                    assert!(eff(n) >= e - 1e-12, "P = {p}, E = {e}: N = {n} gives {}", eff(n));
                    if n > u64::from(p) {
                        assert!(eff(n - u64::from(p)) < e, "P = {p}, E = {e}: N = {n} is not the smallest");
                    }
                }
            }
        }
    }

    #[test]
    fn parses_and_takes_medians() {
        let step = |us: f64| {
            format!(
                r#"{{"kind":"step","P":2,"D":3,"H":4,"K":2,"dtype":"f64","batch":5,"local_rows":3,"scalars":30,"steps":9,"us_step":{us},"us_compute":1.0,"us_allreduce":2.0,"us_update":3.0,"oversubscribed":true}}"#
            )
        };
        let text = [
            step(10.0),
            String::new(),
            step(30.0),
            step(20.0),
            r#"{"kind":"allreduce","P":2,"scalars":1,"bytes":8,"calls":9,"us":1.5,"oversubscribed":false}"#
                .into(),
        ]
        .join("\n");
        let m = Measured::parse(&text).unwrap();
        assert_eq!(m.dims, (3, 4, 2));
        assert_eq!(m.steps[&(2, 5)].0, 3);
        assert_eq!(m.steps[&(2, 5)].1.us_step, 20.0);
        assert_eq!(m.allreduce[&(2, 8)], 1.5);
        assert_eq!(m.oversubscribed, BTreeSet::from([2]));
        assert_eq!(m.rounds, (1, 3));
        // 30 scalars = 3·4 + 4 + 4·2 + 2 + 2 + P; a wrong count, bad rows or an unknown kind fail.
        for bad in [
            step(1.0).replace("\"scalars\":30", "\"scalars\":29"),
            step(1.0).replace("\"local_rows\":3", "\"local_rows\":2"),
            r#"{"kind":"other"}"#.into(),
        ] {
            assert!(Measured::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sig3_format() {
        assert_eq!(sig3(22.4567), "22.5");
        assert_eq!(sig3(0.71234), "0.712");
        assert_eq!(sig3(12345.6), "12346");
    }
}
