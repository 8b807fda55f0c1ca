//! `net.forward(x)` against its two GEMMs alone (X·W1, H1·W2 as `cblas_sgemm`, β = 0), timed
//! interleaved, one call of each in turn, so that both see the same machine: on a shared host
//! Criterion's groups, which run one after the other, can differ by ±30% for the same code.
//!
//! For the f32 shapes with D·H ≥ 1e5 (784x256x10 and 1024x4096x1024 at every N of
//! `benches/step.rs`), prints the min and median µs of each and their ratio; the target is
//! forward ≤ 1.05× its GEMMs.
//!
//! ```text
//! cargo bench --bench forward_ratio            # about a minute
//! cargo bench --bench forward_ratio -- --test  # smoke test: two calls of each per shape
//! ```

use std::hint::black_box;
use std::time::Instant;

mod common;
use common::{Gemms, Shape, problem};

/// (D, H, K, N, calls of each at full run).
const SHAPES: [(usize, usize, usize, usize, usize); 7] = [
    (784, 256, 10, 1, 2000),
    (784, 256, 10, 32, 1000),
    (784, 256, 10, 256, 400),
    (784, 256, 10, 2048, 100),
    (1024, 4096, 1024, 64, 100),
    (1024, 4096, 1024, 512, 30),
    (1024, 4096, 1024, 2048, 15),
];

fn main() {
    let smoke = std::env::args().any(|a| a == "--test");
    eprintln!("benches/forward_ratio: BLAS {}", two_layer_net::blas_info());
    println!(
        "{:>22}  {:>21}  {:>21}  {:>13}",
        "f32 DxHxK/N", "forward min/med µs", "gemms min/med µs", "ratio min/med"
    );
    for (d, h, k, n, calls) in SHAPES {
        let s = Shape { n, d, h, k };
        let (mut net, x, _) = problem::<f32>(s);
        let mut gemms = Gemms::<f32>::new(s);
        let calls = if smoke { 2 } else { calls };
        let (mut forward, mut floor) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        for i in 0..calls + 2 {
            let t = Instant::now();
            black_box(net.forward(x.view()).expect("valid batch"));
            let tf = t.elapsed().as_secs_f64();
            let t = Instant::now();
            gemms.run_forward();
            let tg = t.elapsed().as_secs_f64();
            // The first two of each warm up (the workspace is sized by the first forward).
            if i >= 2 {
                forward.push(tf * 1e6);
                floor.push(tg * 1e6);
            }
        }
        let (f, g) = (min_median(&mut forward), min_median(&mut floor));
        println!(
            "{:>22}  {:>10.1} {:>10.1}  {:>10.1} {:>10.1}  {:>6.3} {:>6.3}",
            format!("{d}x{h}x{k}/N={n}"),
            f.0,
            f.1,
            g.0,
            g.1,
            f.0 / g.0,
            f.1 / g.1
        );
    }
}

/// The min and the median of `v` (sorted in place).
fn min_median(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2])
}
