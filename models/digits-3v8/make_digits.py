"""Writes the real handwritten digits "3" and "8" of ../shared/testdata/digits (UCI, as shipped with
scikit-learn; 8x8, values 0-16) as 8-bit PNGs (value * 255 / 16) with labels.csv (label 1 = "8"), for the
recorded sanity run of `sacro train` on data nobody here made.

usage: python3 make_digits.py ../../../shared/testdata/digits/digits.csv.gz OUT_DIR
"""
import csv
import gzip
import os
import sys

from PIL import Image

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
rows = []
with gzip.open(src, "rt") as f:
    for i, row in enumerate(csv.reader(f)):
        if i == 0 and not row[0].strip().lstrip("-").replace(".", "").isdigit():
            continue  # header
        values = [float(v) for v in row]
        pixels, label = values[:64], int(values[64])
        if label not in (3, 8):
            continue
        name = f"d{i:04d}_{label}.png"
        img = Image.new("L", (8, 8))
        img.putdata([round(v * 255 / 16) for v in pixels])
        img.save(os.path.join(out, name))
        rows.append((name, 1 if label == 8 else 0))
with open(os.path.join(out, "labels.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["file", "label"])
    w.writerows(rows)
print(f"{len(rows)} digits ({sum(r[1] for r in rows)} eights) in {out}")
