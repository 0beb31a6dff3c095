#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no Rust, no internet there): Sacro's CUDA build, carried in as
# .dev/sacro.xz (built on the development machine, by packaging/cuda/build.sh), against PyTorch on the
# same GPU; then the demo model's training run on synthetic phantoms.
#
#   benches/gpu.sh smoke   # libraries, bench at repeat 1, a 2-epoch training run on 12 tiny phantoms
#   benches/gpu.sh full    # bench (repeat 5; both convolution paths) vs PyTorch, then the demo model's run
#
# The device tool sends the working tree, at most 64 MiB: with the demo model's 51 MB of weights in it, move
# models/demo-phantom/weights.safetensors out of the tree for the call (and back after).
# Everything it prints goes to $OUT/log.txt too; the trained demo model comes back as $OUT/demo.tar.part-*
# (the device returns files of at most 16 MiB) and the histories, configurations and logs as $OUT/runs.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
OUT=${OUT:-/tmp/gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/log.txt") 2>&1
start=$(date +%s)
budget=${BUDGET_S:-480}
# GPU_SH_DEVICE=cpu and a carried binary (SACRO_XZ) dry-run the script on a development machine.
dev=${GPU_SH_DEVICE:-cuda}
log() { echo "[$(($(date +%s) - start)) s] $*"; }

# The binary and the CUDA libraries it links (PyTorch's wheels hold them; the driver gives libcuda).
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('${SACRO_XZ:-.dev/sacro.xz}'), open('/tmp/sacro', 'wb'))" || exit 1
chmod +x /tmp/sacro
sacro=/tmp/sacro
libs=$(python3 -c "
import glob, os, torch
site = os.path.dirname(os.path.dirname(torch.__file__))
want = ('libcublas.so', 'libcublasLt.so', 'libcurand.so', 'libnvrtc.so', 'libcudart.so')
print(':'.join(sorted({os.path.dirname(p) for p in glob.glob(site + '/nvidia/**/lib*.so*', recursive=True)
                       if os.path.basename(p).startswith(want)})))")
export LD_LIBRARY_PATH="$libs:/usr/local/nvidia/lib64:/usr/local/nvidia/lib:${LD_LIBRARY_PATH:-}"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv,noheader
log "libraries: $libs"
if ldd "$sacro" | grep 'not found'; then log "missing libraries"; exit 1; fi
export RAYON_NUM_THREADS=$(nproc)

if [ "$mode" = smoke ]; then
  $sacro bench model --device $dev --repeat 1 --train-batch 8 || exit 1
  $sacro phantom --n 12 --size 128 --seed 1 --out /tmp/phs >/dev/null || exit 1
  cat >/tmp/smoke.toml <<'EOF'
seed = 1
valid_pct = 0.34
max_micro_batch = 4
[[stages]]
size = 64
batch = 4
frozen_epochs = 1
unfrozen_epochs = 1
EOF
  $sacro train --data /tmp/phs/truth.csv --config /tmp/smoke.toml --out /tmp/smoke-run || exit 1
  $sacro predict --model /tmp/smoke-run/model /tmp/phs/P0001.dcm || exit 1
  log "ImageNet weights on this machine?"
  ls -la ~/.cache/torch/hub/checkpoints 2>/dev/null
  timeout 20 find / -xdev \( -iname '*resnet50*.pth' -o -iname '*resnet*50*.safetensors' -o -iname 'resnet50*' \) \
    -size +50M 2>/dev/null | head
  log "smoke passed"
  exit 0
fi

# Phantoms on the CPUs while the GPU is benchmarked: the training set and, from another seed, unseen ones.
n=${PHANTOMS:-1200}
($sacro phantom --n "$n" --size 512 --seed 2028 --out /tmp/ph >/tmp/phantom.log 2>&1; echo $? >/tmp/phantom.rc) &
phantoms=$!
($sacro phantom --n 300 --size 512 --seed 2029 --out /tmp/unseen >/dev/null 2>&1) &
unseen=$!

# Training steps through both convolution paths on the GPU (the default there: candle's conv2d and its
# conv_transpose2d backward; SACRO_CONV=tensor: tensor operations with a GEMM backward,
# src/kernels/conv/tensor.rs); the faster one that works trains the model.
if [ -z "${SKIP_BENCH:-}" ]; then
  log "sacro bench (CUDA, f32)"
  timeout 150 $sacro bench model --device $dev --repeat 5 --train-batch 8,32 | tee /tmp/bench_sacro.csv
  log "sacro bench (CUDA, f32; SACRO_CONV=tensor)"
  SACRO_CONV=tensor timeout 60 $sacro bench model --device $dev --repeat 5 --train-batch 8,32 --only train_step |
    tee /tmp/bench_sacro_tensor.csv
  log "pytorch bench (CUDA, f32, no TF32)"
  DEVICE=$dev timeout 90 python3 benches/model_pytorch.py 5 8,32 | tee /tmp/bench_torch.csv
else
  echo "train_step_224_b32,$SKIP_BENCH" >/tmp/bench_sacro.csv
fi
step() { awk -F, '$1 == "train_step_224_b32" { print $2 }' "$1" 2>/dev/null; }
t32=$(step /tmp/bench_sacro.csv)
t32_tensor=$(step /tmp/bench_sacro_tensor.csv)
if [ -n "$t32_tensor" ] && { [ -z "$t32" ] || python3 -c "import sys; sys.exit(not $t32_tensor < $t32)"; }; then
  export SACRO_CONV=tensor
  t32=$t32_tensor
fi
log "training path: ${SACRO_CONV:-default}, step b32 ${t32:-?} s"
wait $phantoms $unseen # (a bare `wait` would also wait for the `tee` of this script's output, forever)
log "phantoms: rc $(cat /tmp/phantom.rc); $(tail -1 /tmp/phantom.log)"

# The demo model: the study's schedule at 224 px as the CPU run that made the current demo model ran it
# (benches/phantom_cpu224_2026-12-04/cpu224.toml: no frozen phase from random weights, slice(1e-3, 2e-3),
# MixUp off), its epochs chosen from the measured step time so that the run ends inside the budget (an
# epoch: its steps, augmentation on the CPUs overlapping, and a validation pass; 60 s kept for evaluation
# and packing).
left=$((budget - ($(date +%s) - start) - 60))
epochs=$(python3 -c "
t32 = float('${t32:-0}' or 0) or 1.0
epoch = ($n * 5 / 6 / 32) * t32 * 1.2 + 2.5
print(max(2, min(200, int($left / epoch) - 1)))")
log "${left} s left; ${epochs} unfrozen epochs"
cat >/tmp/plain.toml <<TOML
seed = 2028
valid_pct = 0.1667
lr_unfrozen = [1e-3, 2e-3]
mixup_alpha = 0.0
max_micro_batch = 32
[[stages]]
size = 224
batch = 32
frozen_epochs = 0
unfrozen_epochs = $epochs
TOML
timeout $((left + 20)) $sacro train --data /tmp/ph/truth.csv --config /tmp/plain.toml --out /tmp/run-plain \
  >/tmp/train-plain.log 2>&1
log "run: rc $?; $(grep -a 'model written' /tmp/train-plain.log | tail -1)"
tail -c 1500 /tmp/run-plain/metrics.csv 2>/dev/null

# The model on the 300 unseen phantoms (seed 2029), AUC by scikit-learn; then the f16 copy back in parts
# under the 16 MiB file limit, and everything small.
if [ -f /tmp/run-plain/model/model.json ]; then
  $sacro model half /tmp/run-plain/model --out /tmp/demo-phantom &&
    tar -C /tmp -cf - demo-phantom | split -b 15M - "$OUT/demo.tar.part-"
  $sacro predict --model /tmp/demo-phantom --batch 32 --out /tmp/unseen-pred.csv /tmp/unseen >/dev/null &&
    python3 models/demo-phantom/phantom_auc.py /tmp/unseen/truth.csv /tmp/unseen-pred.csv 60
fi
mkdir -p /tmp/small/plain
cp /tmp/bench_*.csv /tmp/*.toml /tmp/train-*.log /tmp/phantom.log /tmp/unseen-pred.csv /tmp/small/ 2>/dev/null
find /tmp/run-plain -maxdepth 1 -type f ! -name '*.safetensors' -exec cp {} /tmp/small/plain/ \; 2>/dev/null
cp /tmp/run-plain/model/*.json /tmp/run-plain/model/*.csv /tmp/small/plain/ 2>/dev/null
tar -C /tmp -czf "$OUT/runs.tgz" small
log "done"
