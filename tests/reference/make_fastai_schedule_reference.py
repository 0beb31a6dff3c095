#!/usr/bin/env python3
"""Reference values from fastai's own code for tests/train_reference.rs: the one-cycle schedule
(combined_cos for learning rate and momentum), even_mults (slice(a, b) over parameter groups), the
LR finder's exponential schedule and "valley" suggestion, and label-smoothing cross-entropy.

Run by hand, not in CI:
    pip install fastai
    python3 tests/reference/make_fastai_schedule_reference.py > tests/reference/fastai_schedule.json
"""
import json

import numpy as np
import torch
from fastai.callback.schedule import SchedExp, combined_cos, valley
from fastai.losses import LabelSmoothingCrossEntropy
from fastai.torch_core import even_mults

positions = [i / 40 for i in range(41)] + [0.999, 0.2499, 0.2501]
lr_max = 3e-3
lr = combined_cos(0.25, lr_max / 25.0, lr_max, lr_max / 1e5)  # fit_one_cycle: div=25, div_final=1e5
mom = combined_cos(0.25, 0.95, 0.85, 0.95)
exp = SchedExp(1e-7, 10.0)

rng = np.random.default_rng(3)
# A synthetic LR-finder curve: flat, a long descent, then divergence; plus noise.
n = 100
lrs = [1e-7 * (10.0 / 1e-7) ** (i / (n - 1)) for i in range(n)]
losses = [1.0 - 0.6 / (1 + np.exp(-(np.log10(l) + 3.5) * 2)) + 3.0 * max(0.0, np.log10(l) + 0.7) ** 2 + 0.01 * rng.standard_normal()
          for l in lrs]
suggestion, _ = valley(lrs, torch.tensor(losses), n)

logits = torch.tensor(rng.standard_normal((6, 2)), dtype=torch.float32)
targets = torch.tensor([0, 1, 1, 0, 1, 1])
ls = LabelSmoothingCrossEntropy(eps=0.1)(logits, targets).item()

json.dump({
    "positions": positions,
    "lr_max": lr_max,
    "one_cycle_lr": [float(lr(p)) for p in positions],
    "one_cycle_mom": [float(mom(p)) for p in positions],
    "lr_find_exp": [float(exp(p)) for p in positions],
    "even_mults": [float(v) for v in even_mults(1e-5, 1e-3, 3)],
    "valley": {"lrs": lrs, "losses": [float(v) for v in losses], "suggestion": float(suggestion)},
    "label_smoothing": {"logits": logits.tolist(), "targets": targets.tolist(), "eps": 0.1, "loss": ls},
}, open("/dev/stdout", "w"), indent=1)
