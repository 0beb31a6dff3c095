#!/usr/bin/env python3
"""Reads Sacro's phantom DICOM files with pydicom (an independent reader) and checks them against
Sacro's own decoding. Run by hand, not in CI; its output is kept in phantoms_pydicom_check.txt.

    cargo run --release -- phantom --n 12 --size 1024 --seed 5 --out /tmp/ph
    cargo run --release -- phantom --n 4 --size 512 --seed 6 --format dicom-deflated --out /tmp/ph/deflated
    cargo run --release -- convert /tmp/ph --raw --out /tmp/ph_raw
    python3 tests/reference/check_phantoms_pydicom.py /tmp/ph /tmp/ph_raw
"""
import sys
from pathlib import Path

import numpy as np
import pydicom
import tifffile
from pydicom.pixels import apply_modality_lut


def main(folder, raw_folder):
    folder, raw_folder = Path(folder), Path(raw_folder)
    files = sorted(folder.rglob("*.dcm"))
    assert files, "no DICOM files"
    for path in files:
        ds = pydicom.dcmread(path)
        arr = ds.pixel_array
        assert ds.SeriesDescription == "SYNTHETIC PHANTOM — NOT A PATIENT", ds.SeriesDescription
        assert str(ds.PatientName).startswith("PHANTOM^"), ds.PatientName
        assert ds.BurnedInAnnotation == "YES"
        assert ds.PhotometricInterpretation in ("MONOCHROME1", "MONOCHROME2")
        assert arr.shape == (ds.Rows, ds.Columns) and arr.max() < 2 ** ds.BitsStored
        centers = ds.WindowCenter if isinstance(ds.WindowCenter, pydicom.multival.MultiValue) else [ds.WindowCenter]
        sacro_values = tifffile.imread(raw_folder / path.relative_to(folder).with_suffix(".tiff"))
        same = np.array_equal(apply_modality_lut(arr, ds).astype(np.float32), sacro_values)
        print(f"{path.relative_to(folder)}: {ds.file_meta.TransferSyntaxUID.name}, {ds.Modality} {ds.Rows}x{ds.Columns}, "
              f"{ds.BitsStored} bits, {ds.PhotometricInterpretation}, windows {[float(c) for c in centers]}, "
              f"pydicom pixels == sacro pixels: {same}")
        assert same
    print(f"{len(files)} files read by pydicom {pydicom.__version__}; all equal to Sacro's decoding")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
