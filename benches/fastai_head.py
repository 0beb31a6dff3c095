"""fastai's `create_head(nf, n_out)` for the benchmarks: fastai's own where it is installed, else the same
layers written out (the GPU machine has no fastai): concat pool (max, average), BatchNorm1d(2·nf),
Dropout(0.25), Linear(2·nf, 512, no bias), ReLU, BatchNorm1d(512), Dropout(0.5), Linear(512, n_out, no bias).
"""
import torch

try:
    from fastai.vision.learner import create_head
except ImportError:

    class ConcatPool(torch.nn.Module):
        def forward(self, x):
            return torch.cat([torch.amax(x, dim=(2, 3)), torch.mean(x, dim=(2, 3))], 1)

    def create_head(nf, n_out):
        return torch.nn.Sequential(
            ConcatPool(),
            torch.nn.BatchNorm1d(2 * nf),
            torch.nn.Dropout(0.25),
            torch.nn.Linear(2 * nf, 512, bias=False),
            torch.nn.ReLU(inplace=True),
            torch.nn.BatchNorm1d(512),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(512, n_out, bias=False),
        )


