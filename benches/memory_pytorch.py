#!/usr/bin/env python3
"""PyTorch doing what `sacro bench memory` measures: training steps (train-mode forward, cross-entropy,
backward, AdamW) of ResNet-50 with fastai's head at SIZE² and batch BATCH on the CPU, then the process's
peak resident memory. Run by benches/model.sh in a fresh process. Usage: memory_pytorch.py SIZE BATCH STEPS
Prints CSV: work,peak_rss_mb,step_s
"""
import os
import resource
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from fastai_head import create_head  # noqa: E402

size, batch, steps = (int(a) for a in sys.argv[1:4])
torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
model = torch.nn.Sequential(
    torch.nn.Sequential(*list(torchvision.models.resnet50().children())[:-2]), create_head(2048, 2)
).train()
opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
x = torch.randn(batch, 3, size, size)
y = torch.arange(batch) % 2
last = 0.0
for _ in range(max(steps, 1)):
    s = time.perf_counter()
    opt.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    last = time.perf_counter() - s
peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print("work,peak_rss_mb,step_s")
print(f"train_step_{size}_b{batch},{peak_kb / 1024:.0f},{last:.3f}")
