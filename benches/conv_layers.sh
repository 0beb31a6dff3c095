#!/usr/bin/env bash
# Each ResNet-50 convolution shape at 224² batch 8, Sacro's im2col op (src/kernels/conv/layers.rs, an ignored
# test built in release) beside PyTorch's (benches/conv_layers.py), same thread count, both with Sacro's
# glibc allocator settings (src/main.rs; a test binary does not set them itself): forward and backward
# (input and weight gradients) medians, the ratio per shape and the totals weighted by how often each
# shape occurs. Usage: [ROUNDS=2] benches/conv_layers.sh   (needs: pip install torch)
#
# PARTS=1: instead, where the time of the 3x3 stride-1 shapes goes inside Sacro's op (an ignored test in
# src/kernels/conv/im2col.rs): the forward pass's im2col and products; the backward pass's gradient transpose,
# whole-batch im2col, weight-gradient product, W^T*G and col2im; fastest of six runs per part, the products'
# GFLOP/s; then the same for the Winograd op of those shapes (src/kernels/conv/winograd/tests.rs: each transform and the
# 16 products). Compare with this script's PyTorch times for the same shapes.
# SACRO_WINOGRAD=off: the layer times with im2col for the 3x3 stride-1 shapes too.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
header
if [ -n "${PARTS:-}" ]; then
  for round in $(seq "${ROUNDS:-2}"); do
    echo "## round $round"
    SACRO_WINOGRAD=off GLIBC_TUNABLES=$tunables RAYON_NUM_THREADS=$threads cargo test --release --quiet --lib print_im2col_parts -- --ignored --nocapture 2>/dev/null | grep -E '^(shape|[0-9])'
    echo "# Winograd F(2x2,3x3), whole batch (the forward pass runs in chunks of >= 512 tiles)"
    GLIBC_TUNABLES=$tunables RAYON_NUM_THREADS=$threads cargo test --release --quiet --lib print_winograd_parts -- --ignored --nocapture 2>/dev/null | grep -E '^(shape|[0-9])'
  done
  exit 0
fi
# ROUNDS (default 2) alternations of the two, each printed: this shared machine's speed drifts by 10–15 %
# over minutes, so one round can be biased either way.
for round in $(seq "${ROUNDS:-2}"); do
echo "## round $round"
sacro=$(GLIBC_TUNABLES=$tunables RAYON_NUM_THREADS=$threads cargo test --release --quiet --lib kernels::conv::layers -- --ignored --nocapture 2>/dev/null | grep -E '^(layer|[0-9]|total)')
torch=$(GLIBC_TUNABLES=$tunables THREADS=$threads python3 benches/conv_layers.py)
echo "layer,count,sacro_fwd_ms,torch_fwd_ms,fwd_ratio,sacro_bwd_ms,torch_bwd_ms,bwd_ratio"
paste -d, <(echo "$sacro" | tail -n +2) <(echo "$torch" | tail -n +2) |
  awk -F, '{ printf "%s,%s,%s,%s,%.2f,%s,%s,%.2f\n", $1, $2, $3, $7, $3 / $7, $4, $8, $4 / $8 }'
done
