#!/usr/bin/env python3
"""Reference pixel values for tests/dicom_reference.rs, made with pydicom (not by Sacro).

Run by hand, not in CI:
    pip install pydicom pylibjpeg pylibjpeg-openjpeg pylibjpeg-libjpeg numpy
    python3 tests/reference/make_dicom_reference.py ../shared/testdata/dicom/real > tests/reference/dicom_pixels.json

For every file: pydicom's pixel array (first frame), `apply_modality_lut` (post-Modality-LUT values, as
float32), and `apply_voi_lut` with the first VOI preset, normalised to [0, 1] by the output range that pydicom
itself uses (so it is comparable with Sacro's normalised window).  Colour images are reduced to luminance
(0.299 R + 0.587 G + 0.114 B), the same formula Sacro uses.  Large images are summarised: a SHA-256 of the
float32 little-endian bytes, min/max/mean, and five sampled rows.
"""
import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut, apply_voi_lut

SAMPLE_ROWS = 5


def voi_range(ds):
    """The y_min / y_max pydicom's apply_windowing maps onto (copied logic, see pydicom.pixels.processing)."""
    if ds.get("ModalityLUTSequence"):
        return 0.0, float(2 ** ds.ModalityLUTSequence[0].LUTDescriptor[2] - 1)
    bits = int(ds.BitsStored)
    if ds.PixelRepresentation == 0:
        lo, hi = 0.0, float(2**bits - 1)
    else:
        lo, hi = float(-(2 ** (bits - 1))), float(2 ** (bits - 1) - 1)
    if "RescaleSlope" in ds and "RescaleIntercept" in ds:
        s, i = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        lo, hi = lo * s + i, hi * s + i
    return lo, hi


def summary(arr):
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    h = arr.shape[0]
    rows = sorted({0, h // 4, h // 2, (3 * h) // 4, h - 1})
    return {
        "sha256": hashlib.sha256(arr.astype("<f4").tobytes()).hexdigest(),
        "min": float(arr.min()),
        "max": float(arr.max()),
        "mean": float(arr.astype(np.float64).mean()),
        "rows": {str(r): [float(v) for v in arr[r]] for r in rows},
    }


def main(folder):
    out = {}
    for path in sorted(Path(folder).glob("*.dcm")):
        ds = pydicom.dcmread(path)
        entry = {
            "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
            "rows": int(ds.Rows),
            "columns": int(ds.Columns),
            "frames": int(ds.get("NumberOfFrames", 1) or 1),
            "photometric": str(ds.PhotometricInterpretation),
            "bits_stored": int(ds.BitsStored),
        }
        try:
            arr = ds.pixel_array
        except Exception as exc:  # noqa: BLE001 - recorded for the test to check Sacro's error
            entry["pydicom_error"] = str(exc)
            out[path.name] = entry
            continue
        if entry["frames"] > 1:
            arr = arr[0]
        if int(ds.SamplesPerPixel) == 3:
            grey = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
            entry["modality"] = summary(grey)
        else:
            modality = apply_modality_lut(arr, ds).astype(np.float64)
            entry["modality"] = summary(modality)
            if "WindowCenter" in ds or "VOILUTSequence" in ds:
                voi = apply_voi_lut(modality, ds, index=0).astype(np.float64)
                if "VOILUTSequence" in ds:
                    bits = int(ds.VOILUTSequence[0].LUTDescriptor[2])
                    lo, hi = 0.0, float(2**bits - 1)
                else:
                    lo, hi = voi_range(ds)
                entry["voi_normalised"] = summary((voi - lo) / (hi - lo))
                wc, ww = ds.get("WindowCenter"), ds.get("WindowWidth")
                first = lambda v: float(v[0]) if isinstance(v, pydicom.multival.MultiValue) else float(v)
                if wc is not None:
                    entry["window"] = [first(wc), first(ww)]
        out[path.name] = entry
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/testdata/dicom/real")
