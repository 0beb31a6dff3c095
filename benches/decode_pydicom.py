#!/usr/bin/env python3
"""pydicom + numpy doing what `sacro bench decode` times: open -> decode -> Modality LUT -> 8-bit window.

Prints the same CSV as `sacro bench decode`: file,median_ms,min_ms,repeat. Run by benches/decode.sh.
"""
import sys
import time

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut


def run(path):
    ds = pydicom.dcmread(path)
    arr = apply_modality_lut(ds.pixel_array, ds)
    lo, hi = float(ds.get("BitsStored", 16)), 0.0
    out = apply_voi_lut(arr, ds, index=0)
    # Normalise the windowed output to 0..255 and invert MONOCHROME1, as Sacro does.
    bits = int(ds.BitsStored)
    y_min, y_max = 0.0, float(2**bits - 1)
    if "RescaleSlope" in ds:
        y_min = y_min * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
        y_max = y_max * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    unit = (out - y_min) / (y_max - y_min)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1.0 - unit
    return np.clip(np.rint(unit * 255.0), 0, 255).astype(np.uint8)


def main():
    repeat = int(sys.argv[1])
    print("file,median_ms,min_ms,repeat")
    for path in sys.argv[2:]:
        try:
            run(path)
        except Exception as exc:  # noqa: BLE001 - pydicom cannot decode some files (12-bit JPEG)
            print(f"{path},nan,nan,0", flush=True)
            print(f"pydicom: {path}: {exc}".splitlines()[0], file=sys.stderr)
            continue
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            run(path)
            times.append((time.perf_counter() - t) * 1e3)
        times.sort()
        print(f"{path},{times[len(times) // 2]:.2f},{times[0]:.2f},{repeat}")


if __name__ == "__main__":
    main()
