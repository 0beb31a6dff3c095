#!/usr/bin/env python3
# The PyTorch learnability check cited in README.md (run 2026-11-27 on the 2-core CPU): ResNet-50 from scratch
# on the first 500 phantoms of `sacro phantom --n 700 --size 512 --seed 2028 --out /tmp/ph700` at 128 px.
# Usage: python3 learnability_check.py  (reads /tmp/ph700/truth.csv and its DICOM files).
import csv, time, numpy as np, torch, torch.nn as nn, pydicom, torchvision
from PIL import Image
from sklearn.metrics import roc_auc_score
torch.manual_seed(0); np.random.seed(0)
torch.set_num_threads(2)
rows = list(csv.DictReader(open('/tmp/ph700/truth.csv')))[:500]
X=[]; y=[]
for r in rows:
    d = pydicom.dcmread('/tmp/ph700/'+r['file']); a = d.pixel_array.astype(np.float32)
    wc=d.WindowCenter; ww=d.WindowWidth; c=float(wc[0] if hasattr(wc,'__len__') else wc); w=float(ww[0] if hasattr(ww,'__len__') else ww)
    a = np.clip((a-(c-w/2))/w, 0, 1)
    X.append(np.asarray(Image.fromarray(a).resize((128,128), Image.BILINEAR))); y.append(int(r['definite']))
X = torch.tensor(np.stack(X))[:,None].repeat(1,3,1,1); X=(X-0.45)/0.25; y=torch.tensor(y)
print('positives', y.float().mean().item(), flush=True)
idx = torch.randperm(500); tr, va = idx[:400], idx[400:]
m = torchvision.models.resnet50(num_classes=2)
E=12; bs=16; steps=E*(400//bs)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3, weight_decay=0.01)
sch = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps)
for e in range(E):
    t=time.time(); m.train(); p=tr[torch.randperm(400)]
    for b in range(400//bs):
        i=p[b*bs:(b+1)*bs]; xb=X[i].clone()
        flip = torch.rand(len(i))<0.5; xb[flip]=xb[flip].flip(-1)
        loss = nn.functional.cross_entropy(m(xb), y[i], label_smoothing=0.1)
        opt.zero_grad(); loss.backward(); opt.step(); sch.step()
    m.eval()
    with torch.no_grad(): pr = torch.softmax(m(X[va]),1)[:,1].numpy()
    print(e, round(loss.item(),3), 'AUC', round(roc_auc_score(y[va].numpy(), pr),3), round(time.time()-t,1),'s', flush=True)
