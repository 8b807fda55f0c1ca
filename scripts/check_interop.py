#!/usr/bin/env python3
"""Checks that a two-layer-net checkpoint reads in Python as documented.

Usage: check_interop.py CHECKPOINT EXPECTED_JSON [CHECKPOINT EXPECTED_JSON ...]

CHECKPOINT is a safetensors file written by `two_layer_net::save`. EXPECTED_JSON is what the
Rust side wrote next to it (several pairs share one torch import, which is slow):

    {"dtype": "f32" | "f64", "activation": "relu" | "leaky_relu(slope=0.2)" | ...,
     "x": [[...], ...],      # a batch, N x D
     "yhat": [[...], ...]}   # the network's output on it, N x K

The checks, in order:

1. `safetensors.numpy.load_file`: exactly the tensors w1 (D, H), b1 (H,), w2 (H, K), b2 (K,),
   all float32 or float64 as `dtype` says.
2. `safetensors.safe_open(path, "np").metadata()`: format = "two-layer-net",
   layout = "in_out", dtype, d, h, k (equal to the shapes), activation (as expected), version.
3. numpy, in float64: yhat = f(x @ w1 + b1) @ w2 + b2, the weights used as stored, (in, out).
4. If torch imports: nn.Sequential(nn.Linear(D, H), f, nn.Linear(H, K)) in the checkpoint's
   dtype, loaded with weight = w.T (nn.Linear holds (out, in)) and bias = b. Whether torch ran
   is printed ("torch: not installed, skipped" otherwise).

A training-state file (`TrainingState::save`) is checked against an EXPECTED_JSON of the form
{"kind": "training-state", "tensors": {name: [dtype, shape, [values...]]}, "metadata": {...}}:
`safetensors.numpy.load_file` must give exactly those tensors, with those numpy dtypes
("float32", "float64", "int64"), shapes and values (bitwise), and the file's metadata must
contain every expected key with its value.

Outputs agree when max |a - e| <= tol * max(1, max |e|), tol = 1e-12 for f64 and 1e-5 for f32.
Exit status 0 when every pair passes; 1, with each failed check on stderr, otherwise; 2 for a
wrong command line.
"""

import json
import re
import sys

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file

NAMES = ("w1", "b1", "w2", "b2")
DTYPES = {"f32": np.float32, "f64": np.float64}
TOL = {"f32": 1e-5, "f64": 1e-12}


class CheckFailed(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def parse_activation(desc):
    """(name, slope) from Activation::describe(): "relu", "leaky_relu(slope=0.2)", ..."""
    m = re.fullmatch(r"leaky_relu\(slope=([^)]+)\)", desc)
    if m:
        return "leaky_relu", float(m.group(1))
    check(desc in ("relu", "sigmoid", "tanh", "identity"), f"unknown activation {desc!r}")
    return desc, None


def numpy_activation(name, slope, y):
    if name == "relu":
        return np.where(y > 0, y, 0.0)
    if name == "leaky_relu":
        return np.where(y > 0, y, slope * y)
    if name == "sigmoid":
        return 1.0 / (1.0 + np.exp(-y))
    if name == "tanh":
        return np.tanh(y)
    return y


def compare(what, actual, expected, tol):
    check(actual.shape == expected.shape, f"{what}: shape {actual.shape}, expected {expected.shape}")
    diff = float(np.max(np.abs(actual - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    check(diff <= tol * scale, f"{what}: max |diff| = {diff:.3e} > {tol:g} * {scale:g}")
    print(f"{what}: max |diff| = {diff:.3e} (tol {tol:g} * {scale:g})")


def check_tensors(path, dtype):
    tensors = load_file(path)
    check(sorted(tensors) == sorted(NAMES), f"tensors {sorted(tensors)}, expected {list(NAMES)}")
    w1, b1, w2, b2 = (tensors[n] for n in NAMES)
    check(w1.ndim == 2 and w2.ndim == 2, f"w1 {w1.shape}, w2 {w2.shape}: expected 2-D weights")
    d, h = w1.shape
    k = w2.shape[1]
    for name, t, shape in (("w1", w1, (d, h)), ("b1", b1, (h,)), ("w2", w2, (h, k)), ("b2", b2, (k,))):
        check(t.shape == shape, f"{name}: shape {t.shape}, expected {shape}")
        check(t.dtype == DTYPES[dtype], f"{name}: dtype {t.dtype}, expected {np.dtype(DTYPES[dtype])}")
        check(bool(np.all(np.isfinite(t))), f"{name}: non-finite values")
    print(f"tensors: w1 {w1.shape} b1 {b1.shape} w2 {w2.shape} b2 {b2.shape}, {w1.dtype}")
    return (w1, b1, w2, b2), (d, h, k)


def check_metadata(path, expected, dims):
    with safe_open(path, "np") as f:
        meta = f.metadata() or {}
    d, h, k = dims
    want = {
        "format": "two-layer-net",
        "layout": "in_out",
        "dtype": expected["dtype"],
        "d": str(d),
        "h": str(h),
        "k": str(k),
        "activation": expected["activation"],
    }
    for key, value in want.items():
        check(meta.get(key) == value, f"metadata {key!r}: {meta.get(key)!r}, expected {value!r}")
    check("version" in meta, "metadata 'version' missing")
    print(f"metadata: {', '.join(f'{k}={meta[k]}' for k in sorted(meta))}")


def check_torch(params, dims, act, x, yhat, dtype):
    try:
        import torch
        from torch import nn
    except ImportError:
        print("torch: not installed, skipped")
        return
    name, slope = act
    modules = {
        "relu": nn.ReLU,
        "leaky_relu": lambda: nn.LeakyReLU(slope),
        "sigmoid": nn.Sigmoid,
        "tanh": nn.Tanh,
        "identity": nn.Identity,
    }
    tdtype = {"f32": torch.float32, "f64": torch.float64}[dtype]
    d, h, k = dims
    model = nn.Sequential(nn.Linear(d, h), modules[name](), nn.Linear(h, k)).to(tdtype)
    w1, b1, w2, b2 = params
    with torch.no_grad():
        # nn.Linear computes x @ weight.T + bias with weight (out, in): weight = w.T.
        model[0].weight.copy_(torch.from_numpy(np.ascontiguousarray(w1.T)))
        model[0].bias.copy_(torch.from_numpy(b1))
        model[2].weight.copy_(torch.from_numpy(np.ascontiguousarray(w2.T)))
        model[2].bias.copy_(torch.from_numpy(b2))
        out = model(torch.from_numpy(x.astype(DTYPES[dtype]))).numpy().astype(np.float64)
    compare(f"torch {torch.__version__} forward", out, yhat, TOL[dtype])


def check_state(path, expected):
    tensors = load_file(path)
    want = expected["tensors"]
    check(sorted(tensors) == sorted(want), f"tensors {sorted(tensors)}, expected {sorted(want)}")
    for name, (dtype, shape, values) in want.items():
        t = tensors[name]
        check(t.dtype == np.dtype(dtype), f"{name}: dtype {t.dtype}, expected {dtype}")
        check(list(t.shape) == shape, f"{name}: shape {list(t.shape)}, expected {shape}")
        e = np.array(values, dtype=np.dtype(dtype)).reshape(shape)
        check(t.tobytes() == e.tobytes(), f"{name}: values differ from the Rust side's")
    with safe_open(path, "np") as f:
        meta = f.metadata() or {}
    for key, value in expected["metadata"].items():
        check(meta.get(key) == value, f"metadata {key!r}: {meta.get(key)!r}, expected {value!r}")
    print(f"training state: {len(tensors)} tensors and {len(expected['metadata'])} metadata entries as expected")


def check_pair(path, expected_path):
    """Runs every check on one checkpoint; True if all pass."""
    with open(expected_path) as f:
        expected = json.load(f)
    if expected.get("kind") == "training-state":
        try:
            check_state(path, expected)
        except CheckFailed as e:
            print(f"{path}: FAILED: {e}", file=sys.stderr)
            return False
        print(f"{path}: ok")
        return True
    dtype = expected["dtype"]
    try:
        check(dtype in DTYPES, f"unknown dtype {dtype!r}")
        act = parse_activation(expected["activation"])
        params, dims = check_tensors(path, dtype)
        check_metadata(path, expected, dims)
        x = np.array(expected["x"], dtype=np.float64)
        yhat = np.array(expected["yhat"], dtype=np.float64)
        w1, b1, w2, b2 = (p.astype(np.float64) for p in params)
        ours = numpy_activation(*act, x @ w1 + b1) @ w2 + b2
        compare("numpy forward", ours, yhat, TOL[dtype])
        check_torch(params, dims, act, x, yhat, dtype)
    except CheckFailed as e:
        print(f"{path}: FAILED: {e}", file=sys.stderr)
        return False
    print(f"{path}: ok")
    return True


def main(argv):
    pairs = argv[1:]
    if not pairs or len(pairs) % 2:
        print(__doc__, file=sys.stderr)
        return 2
    results = [check_pair(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
