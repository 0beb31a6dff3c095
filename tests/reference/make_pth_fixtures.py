#!/usr/bin/env python3
"""PyTorch .pth checkpoints for tests/model_pth.rs, made from tests/fixtures/resnet_small.safetensors.

Run by hand, not in CI (after make_resnet_fixture.py):
    python3 tests/reference/make_pth_fixtures.py tests/fixtures

- resnet_small.pth: a torchvision-style state dict (torch.save(model.state_dict())), zip format;
- fastai_small.pth: fastai's learn.save layout, {"model": state_dict of nn.Sequential(body, head), "opt": None},
  body names 0.0 (conv1), 0.1 (bn1), 0.4–0.7 (layer1–4), head names 1.N;
- malicious.pth: a pickle whose object reduces to os.system("echo pwned") — written by torch.save, never run.
"""
import collections
import os
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

out = Path(sys.argv[1])
t = load_file(out / "resnet_small.safetensors")
weights = {k: v for k, v in t.items() if not k.startswith("expected.") and k != "input"}
tv = collections.OrderedDict((k, v) for k, v in weights.items() if not k.startswith("head."))
torch.save(tv, out / "resnet_small.pth")

rename = {"conv1.": "0.0.", "bn1.": "0.1.", "layer1.": "0.4.", "layer2.": "0.5.", "layer3.": "0.6.", "layer4.": "0.7."}
fastai = collections.OrderedDict()
for k, v in weights.items():
    if k.startswith("fc."):
        continue
    if k.startswith("head."):
        fastai["1." + k[len("head."):]] = v
        continue
    for a, b in rename.items():
        if k.startswith(a):
            fastai[b + k[len(a):]] = v
            break
torch.save({"model": fastai, "opt": None}, out / "fastai_small.pth")


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


torch.save({"conv1.weight": torch.zeros(1), "evil": Payload()}, out / "malicious.pth")
print(sorted(p.name for p in out.glob("*.pth")))
