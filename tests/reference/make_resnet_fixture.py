#!/usr/bin/env python3
"""PyTorch fixture for tests/model_fixture.rs: torchvision's own ResNet code in a reduced configuration
(Bottleneck with expansion 1, width_per_group 16, layers [2, 1, 2, 1]: 0.5 M parameters instead of 25.6 M),
and fastai's own create_head, with seeded random weights and batch-norm statistics.

Run by hand, not in CI:
    pip install torch torchvision fastai safetensors numpy
    python3 tests/reference/make_resnet_fixture.py tests/fixtures/resnet_small.safetensors

Saves one safetensors file holding the weights (torchvision names; fastai's head under head.*), the input,
and the expected outputs:
  expected.eval_logits        torchvision model (fc head) in eval mode
  expected.train_logits       the same in train mode (batch statistics)
  expected.train_running_mean / expected.train_running_var   bn1's running statistics after that forward
  expected.features           layer4 output in eval mode
  expected.fastai_logits      fastai's head on those features, eval mode
  expected.gradcam            Grad-CAM of class 1 through fastai's head for the first input (torch autograd:
                              channel weights = spatial mean of d logit / d layer4, ReLU of the weighted sum,
                              divided by its maximum)
"""
import sys

import torch
from fastai.vision.learner import create_head
from safetensors.torch import save_file
from torchvision.models.resnet import Bottleneck, ResNet

torch.manual_seed(20210426)
Bottleneck.expansion = 1
model = ResNet(Bottleneck, [2, 1, 2, 1], width_per_group=16, num_classes=5)


def randomise(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_(torch.randn_like(p) * (0.5 / max(1.0, p[0].numel() ** 0.5) if p.dim() > 1 else 0.3))
        for name, b in module.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn_like(b) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand_like(b) * 0.8 + 0.4)


randomise(model)
head = create_head(512 * Bottleneck.expansion, 2)  # fastai: concat pool, BN, dropout, linear, relu, BN, dropout, linear
randomise(head)
x = torch.randn(2, 3, 64, 64)

model.eval()
head.eval()
with torch.no_grad():
    eval_logits = model(x)
    f = model.conv1(x); f = model.bn1(f); f = model.relu(f); f = model.maxpool(f)
    f = model.layer4(model.layer3(model.layer2(model.layer1(f))))
    fastai_logits = head(f)
feat = f[0:1].clone().requires_grad_(True)
head(feat)[0, 1].backward()
weights = feat.grad.mean(dim=(2, 3), keepdim=True)
cam = torch.relu((weights * feat).sum(dim=1))[0].detach()
gradcam = cam / cam.max()
state = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
state.update({f"head.{k}": v.clone() for k, v in head.state_dict().items() if not k.endswith("num_batches_tracked")})
model.train()
with torch.no_grad():
    train_logits = model(x)
tensors = dict(state)
tensors.update({
    "input": x,
    "expected.eval_logits": eval_logits,
    "expected.train_logits": train_logits,
    "expected.train_running_mean": model.bn1.running_mean.clone(),
    "expected.train_running_var": model.bn1.running_var.clone(),
    "expected.features": f,
    "expected.fastai_logits": fastai_logits,
    "expected.gradcam": gradcam,
})
save_file({k: v.contiguous().float() for k, v in tensors.items()}, sys.argv[1])
print({k: tuple(v.shape) for k, v in tensors.items() if k.startswith("expected") or k == "input"})
print("head:", head)
