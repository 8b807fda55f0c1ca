#!/usr/bin/env python3
"""Writes data/digits.bin, the compact copy of the UCI optical digits that datasets::digits()
embeds, from scikit-learn's copy (sklearn/datasets/data/digits.csv.gz: 1797 rows of 64 pixel
counts 0..16 and the class 0..9, comma-separated).

Usage: scripts/make_digits.py [DIGITS_CSV_GZ]   (default: the installed scikit-learn's copy)

Layout of digits.bin: 1797 records of 65 bytes, in the CSV's row order: the 64 pixels of the
8x8 image row by row, then the label.
"""

import gzip
import sys
from pathlib import Path

if len(sys.argv) > 1:
    src = Path(sys.argv[1])
else:
    import sklearn.datasets

    src = Path(sklearn.datasets.__file__).parent / "data" / "digits.csv.gz"

rows = [line.split(",") for line in gzip.open(src, "rt").read().split()]
assert len(rows) == 1797 and all(len(r) == 65 for r in rows), "unexpected shape"
out = bytearray()
for r in rows:
    values = [int(float(v)) for v in r]
    assert all(0 <= v <= 16 for v in values[:64]) and 0 <= values[64] <= 9
    out.extend(values)
dst = Path(__file__).resolve().parent.parent / "data" / "digits.bin"
dst.write_bytes(bytes(out))
print(f"wrote {dst} ({len(out)} bytes) from {src}")
