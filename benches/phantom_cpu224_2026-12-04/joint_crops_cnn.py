#!/usr/bin/env python3
# How learnable the phantoms' label is at the network's 224-px resolution when the joints' positions are
# given: each joint's box (from truth.csv, which the network is never told) cropped and resized to the
# size it has in a 224-px input (24 x 48), a small CNN shared by both joints, trained on "definite"
# (PyTorch, CPU, one thread), AUC by scikit-learn on held-out and unseen phantoms. A ceiling check for
# the from-scratch ResNet-50 runs, not a model.
# Usage: python3 joint_crops_cnn.py TRAIN_DIR TEST_DIR   (pip install torch pydicom scikit-learn pillow numpy)
import csv, sys, numpy as np, pydicom, torch, torch.nn as nn
from PIL import Image
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

def first(v):
    return float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v)

def load(folder):
    X, y = [], []
    for r in csv.DictReader(open(f'{folder}/truth.csv')):
        d = pydicom.dcmread(f"{folder}/{r['file']}")
        a = d.pixel_array.astype(np.float32)
        c, w = first(d.WindowCenter), first(d.WindowWidth)
        a = np.clip((a - (c - w / 2)) / w, 0, 1)
        joints = []
        for side in ('left', 'right'):
            x, yy, bw, bh = (int(r[f'{side}_{k}']) for k in 'xywh')
            joints.append(np.asarray(Image.fromarray(a[yy:yy + bh, x:x + bw]).resize((24, 48), Image.BILINEAR)))
        X.append(np.stack(joints)); y.append(int(r['definite']))
    X = torch.tensor(np.stack(X))[:, :, None]  # [n, 2 joints, 1, 48, 24]
    return (X - 0.5) / 0.25, torch.tensor(y, dtype=torch.float32)

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        block = lambda i, o: [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2)]
        self.joint = nn.Sequential(*block(1, 16), *block(16, 32), *block(32, 64),
                                   nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out = nn.Linear(128, 1)
    def forward(self, x):
        n = x.shape[0]
        f = self.joint(x.flatten(0, 1)).view(n, -1)
        return self.out(f).squeeze(1)

torch.manual_seed(0); torch.set_num_threads(1)
X, y = load(sys.argv[1]); Xt, yt = load(sys.argv[2])
tr, va = train_test_split(np.arange(len(y)), test_size=200, stratify=y.numpy(), random_state=0)
m = Net(); E, bs = 40, 32
opt = torch.optim.AdamW(m.parameters(), lr=3e-3, weight_decay=0.01)
sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=E * (len(tr) // bs))
score = lambda Z: torch.sigmoid(m(Z)).detach().numpy()
for e in range(E):
    m.train(); p = np.random.permutation(tr)
    for b in range(len(tr) // bs):
        i = p[b * bs:(b + 1) * bs]
        loss = nn.functional.binary_cross_entropy_with_logits(m(X[i]), y[i])
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    if e % 5 == 4 or e == E - 1:
        m.eval()
        with torch.no_grad():
            print(f'epoch {e + 1}: validation AUC {roc_auc_score(y[va], score(X[va])):.3f}, '
                  f'unseen ({len(yt)}) AUC {roc_auc_score(yt, score(Xt)):.3f}', flush=True)
