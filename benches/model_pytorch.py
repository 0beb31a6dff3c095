#!/usr/bin/env python3
"""PyTorch doing what `sacro bench model` times: ResNet-50 + fastai's head (eval), forward at 224/512/768
(batch 1) and 224 (batch 8), and Grad-CAM at 512. Same thread count as Sacro (torch.set_num_threads).
Prints the same CSV: work,median_s,min_s,repeat. Run by benches/model.sh.
"""
import os
import sys
import time

import torch
import torchvision
from fastai.vision.learner import create_head

repeat = int(sys.argv[1])
torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
body = torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]).eval()
head = create_head(2048, 2).eval()


def timed(f):
    f()
    t = []
    for _ in range(repeat):
        s = time.perf_counter()
        f()
        t.append(time.perf_counter() - s)
    t.sort()
    return t[len(t) // 2], t[0]


print("work,median_s,min_s,repeat")
for size, batch in [(224, 1), (512, 1), (768, 1), (224, 8)]:
    x = torch.randn(batch, 3, size, size)
    with torch.no_grad():
        med, mn = timed(lambda: head(body(x)))
    print(f"forward_{size}_b{batch},{med:.4f},{mn:.4f},{repeat}")

x = torch.randn(1, 3, 512, 512)


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

# One training step: train-mode forward, cross-entropy, backward, AdamW (as `sacro bench model`).
model = torch.nn.Sequential(
    torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]), create_head(2048, 2)
).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
xb = torch.randn(8, 3, 224, 224)
yb = torch.tensor([0, 1, 0, 1, 0, 1, 0, 1])


def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()


med, mn = timed(step)
print(f"train_step_224_b8,{med:.4f},{mn:.4f},{repeat}")
