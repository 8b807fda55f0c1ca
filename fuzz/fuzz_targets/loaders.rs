//! The data loaders on arbitrary bytes: every `load::parse_*` (IDX images and labels, CSV
//! with labels or targets, `.npy` matrices and labels) returns data or a typed `LoadError`,
//! never a panic, an abort or a hang, and the error's message is printable.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use two_layer_net::load::{
    parse_csv, parse_csv_targets, parse_idx_images, parse_idx_labels, parse_npy, parse_npy_labels,
};

fuzz_target!(|bytes: &[u8]| {
    let p = Path::new("fuzz");
    let _ = parse_idx_images::<f32>(bytes, p).map_err(|e| e.to_string());
    let _ = parse_idx_images::<f64>(bytes, p).map_err(|e| e.to_string());
    let _ = parse_idx_labels(bytes, p).map_err(|e| e.to_string());
    let _ = parse_csv::<f32>(bytes, p, "label").map_err(|e| e.to_string());
    let _ = parse_csv::<f64>(bytes, p, "x2").map_err(|e| e.to_string());
    let _ = parse_csv_targets::<f64>(bytes, p, &["x1", "label"]).map_err(|e| e.to_string());
    let _ = parse_npy::<f32>(bytes, p).map_err(|e| e.to_string());
    let _ = parse_npy::<f64>(bytes, p).map_err(|e| e.to_string());
    let _ = parse_npy_labels(bytes, p).map_err(|e| e.to_string());
});
