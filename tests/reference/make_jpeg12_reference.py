#!/usr/bin/env python3
"""Reference values for 12-bit JPEG Extended files (tests/dicom_reference.rs), made with dcmtk (not by
Sacro): `dcmdjpeg` decompresses each file, pydicom reads the decompressed pixels and applies the
Modality LUT. pydicom + pylibjpeg cannot decode JPEG-lossy.dcm itself (see dicom_pixels.json).

Run by hand, not in CI:
    apt-get install dcmtk && pip install pydicom numpy
    python3 tests/reference/make_jpeg12_reference.py > tests/reference/jpeg12_dcmtk.json
"""
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pydicom
from pydicom.pixels import apply_modality_lut

FILES = [
    "../shared/testdata/dicom/real/JPEG-lossy.dcm",
    "tests/fixtures/jpeg12/CR_spine_6154_jpeg12.dcm",
    "tests/fixtures/jpeg12/RG3_jpeg12.dcm",
]


def main():
    out = {}
    version = subprocess.run(["dcmdjpeg", "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    for name in FILES:
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.dcm"
            subprocess.run(["dcmdjpeg", name, str(raw)], check=True)
            ds = pydicom.dcmread(raw)
            values = apply_modality_lut(ds.pixel_array, ds).astype(np.float32)
        out[name] = {
            "decoder": version,
            "rows": int(ds.Rows),
            "columns": int(ds.Columns),
            "sha256": hashlib.sha256(np.ascontiguousarray(values).astype("<f4").tobytes()).hexdigest(),
            "min": float(values.min()),
            "max": float(values.max()),
            "mean": float(values.astype(np.float64).mean()),
        }
    json.dump(out, sys.stdout, indent=1)


if __name__ == "__main__":
    main()
