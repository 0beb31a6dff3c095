#!/usr/bin/env python3
"""pydicom + PyTorch doing what `sacro predict FOLDER` does, for benches/predict_folder.sh: each film
decoded by pydicom (pylibjpeg-openjpeg), the Modality LUT and the file's first window applied, padded to a
square and resized to 224 (bilinear, antialiased), three channels normalised as ImageNet, then ResNet-50
with fastai's head (random weights: the time does not depend on them) in batches of 8 on all cores.
Prints the films per second. Usage: predict_folder_pytorch.py FOLDER
"""
import os
import sys
import time

import numpy as np
import pydicom
import torch
import torchvision
from pydicom.pixels import apply_modality_lut, apply_voi_lut

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastai_head import create_head  # noqa: E402

torch.set_num_threads(os.cpu_count())
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


def film(path):
    ds = pydicom.dcmread(path)
    arr = apply_voi_lut(apply_modality_lut(ds.pixel_array, ds), ds, index=0).astype(np.float32)
    lo, hi = float(arr.min()), float(arr.max())
    unit = (arr - lo) / max(hi - lo, 1e-6)
    if ds.PhotometricInterpretation == "MONOCHROME1":
        unit = 1.0 - unit
    h, w = unit.shape
    side = max(h, w)
    square = np.zeros((side, side), np.float32)
    square[(side - h) // 2:(side - h) // 2 + h, (side - w) // 2:(side - w) // 2 + w] = unit
    t = torch.from_numpy(square)[None, None]
    t = torch.nn.functional.interpolate(t, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    return (t.expand(1, 3, 224, 224) - MEAN) / STD


def main():
    folder = sys.argv[1]
    files = sorted(os.path.join(folder, f) for f in os.listdir(folder))
    model = torch.nn.Sequential(
        torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]), create_head(2048, 2)
    ).eval()
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(files), 8):
            batch = torch.cat([film(f) for f in files[i:i + 8]])
            torch.softmax(model(batch), dim=1)
    dt = time.perf_counter() - t0
    print(f"pydicom + PyTorch: {dt:.2f} s for {len(files)} films ({len(files) / dt:.2f} films/s)")


if __name__ == "__main__":
    main()
