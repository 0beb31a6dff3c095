#!/usr/bin/env python3
"""PyTorch doing what `sacro bench model` times: ResNet-50 + fastai's head (eval), forward at 224/512/768
(batch 1) and 224 (batch 8), Grad-CAM at 512, and training steps at 224. Same thread count as Sacro
(torch.set_num_threads). Prints the same CSV: work,median_s,min_s,repeat. Run by benches/model.sh (CPU) and
benches/gpu.sh (DEVICE=cuda: each timing waits for the GPU; float32 without TF32, as candle computes).
Usage: model_pytorch.py REPEAT [TRAIN_BATCHES, default 8]
"""
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastai_head import create_head  # noqa: E402

repeat = int(sys.argv[1])
train_batches = [int(b) for b in (sys.argv[2] if len(sys.argv) > 2 else "8").split(",")]
dev = torch.device(os.environ.get("DEVICE", "cpu"))
torch.backends.cuda.matmul.allow_tf32 = False
torch.backends.cudnn.allow_tf32 = False
torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
body = torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]).eval().to(dev)
head = create_head(2048, 2).eval().to(dev)


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def timed(f):
    f()
    sync()
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        f()
        sync()
        t.append(time.perf_counter() - s)
    t.sort()
    return t[len(t) // 2], t[0]


print("work,median_s,min_s,repeat")
for size, batch in [(224, 1), (512, 1), (768, 1), (224, 8)]:
    x = torch.randn(batch, 3, size, size, device=dev)
    with torch.no_grad():
        med, mn = timed(lambda: head(body(x)))
    print(f"forward_{size}_b{batch},{med:.4f},{mn:.4f},{repeat}")

x = torch.randn(1, 3, 512, 512, device=dev)


def gradcam():
    with torch.no_grad():
        f = body(x)
    f = f.clone().requires_grad_(True)
    head(f)[0, 1].backward()
    w = f.grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((w * f).sum(dim=1))
    return cam / cam.max()


med, mn = timed(gradcam)
print(f"gradcam_512,{med:.4f},{mn:.4f},{repeat}")

# Training steps: train-mode forward, cross-entropy, backward, AdamW (as `sacro bench model`).
for batch in train_batches:
    model = torch.nn.Sequential(
        torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]), create_head(2048, 2)
    ).train().to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    xb = torch.randn(batch, 3, 224, 224, device=dev)
    yb = torch.arange(batch, device=dev) % 2

    def step():
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        opt.step()

    med, mn = timed(step)
    print(f"train_step_224_b{batch},{med:.4f},{mn:.4f},{repeat}")
