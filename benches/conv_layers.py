"""PyTorch's side of benches/conv_layers.sh: each ResNet-50 convolution shape at 224² batch 8, forward
(F.conv2d) and backward (aten.convolution_backward: input and weight gradients, none for the stem's
input), median of 10 after a warm-up, the same CSV as Sacro's `print_layer_times`."""
import os
import time

import torch
import torch.nn.functional as F

torch.set_num_threads(int(os.environ.get("THREADS", os.cpu_count())))
# (in channels, out channels, kernel, stride, input side, count), as src/kernels/conv/layers.rs.
SHAPES = [(3, 64, 7, 2, 224, 1), (64, 64, 1, 1, 56, 1), (64, 64, 3, 1, 56, 3), (64, 256, 1, 1, 56, 4),
          (256, 64, 1, 1, 56, 2), (256, 128, 1, 1, 56, 1), (128, 128, 3, 2, 56, 1), (128, 512, 1, 1, 28, 4),
          (256, 512, 1, 2, 56, 1), (512, 128, 1, 1, 28, 3), (128, 128, 3, 1, 28, 3), (512, 256, 1, 1, 28, 1),
          (256, 256, 3, 2, 28, 1), (256, 1024, 1, 1, 14, 6), (512, 1024, 1, 2, 28, 1), (1024, 256, 1, 1, 14, 5),
          (256, 256, 3, 1, 14, 5), (1024, 512, 1, 1, 14, 1), (512, 512, 3, 2, 14, 1), (512, 2048, 1, 1, 7, 3),
          (1024, 2048, 1, 2, 14, 1), (2048, 512, 1, 1, 7, 2), (512, 512, 3, 1, 7, 2)]
n = 8
total_f = total_b = 0.0
print("layer,count,forward_ms,backward_ms")
for ci, co, k, s, side, count in SHAPES:
    pad = k // 2
    x = torch.randn(n, ci, side, side)
    w = torch.randn(co, ci, k, k) * 0.05
    g = torch.randn_like(F.conv2d(x, w, stride=s, padding=pad))
    f, b = [], []
    for _ in range(11):
        t = time.perf_counter()
        F.conv2d(x, w, stride=s, padding=pad)
        f.append(time.perf_counter() - t)
        t = time.perf_counter()
        torch.ops.aten.convolution_backward(g, x, w, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1,
                                            [ci != 3, True, False])
        b.append(time.perf_counter() - t)
    f, b = sorted(f[1:])[5], sorted(b[1:])[5]
    total_f += f * count
    total_b += b * count
    print(f"{ci}-{co}-k{k}-s{s}-{side},{count},{f * 1e3:.2f},{b * 1e3:.2f}")
print(f"total (× count),,{total_f * 1e3:.1f},{total_b * 1e3:.1f}")
