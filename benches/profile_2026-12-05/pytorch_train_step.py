#!/usr/bin/env python3
"""Where a PyTorch training step goes (the reference beside Sacro's `perf` profile, sacro_perf.sh): ResNet-50
+ fastai's head, batch 8, 224², train-mode forward, cross-entropy, backward, AdamW, 2 threads, as
benches/model_pytorch.py times it; then torch.profiler over 3 steps, operators by their own CPU time.
Usage (from the repository root): GLIBC_TUNABLES=<Sacro's, see benches/model.sh> python3 benches/profile_2026-12-05/pytorch_train_step.py
"""
import os
import sys
import time

import torch
import torchvision
from torch.profiler import profile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from fastai_head import create_head  # noqa: E402

torch.set_num_threads(2)
batch = 8
model = torch.nn.Sequential(
    torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]), create_head(2048, 2)
).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
xb = torch.randn(batch, 3, 224, 224)
yb = torch.arange(batch) % 2


def step():
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(xb), yb).backward()
    opt.step()


step()
t = []
for _ in range(5):
    s = time.perf_counter()
    step()
    t.append(time.perf_counter() - s)
print(f"training step without the profiler: median {sorted(t)[2]:.3f} s, best {min(t):.3f} s")
with profile() as p:
    for _ in range(3):
        step()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
