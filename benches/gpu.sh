#!/usr/bin/env bash
# One prepared run on a lent GPU machine (no Rust, no internet there): Sacro's CUDA build, carried in as
# .dev/sacro.xz (built on the development machine, see packaging/cuda/README.md), against PyTorch on the
# same GPU; then the demo model's training run on synthetic phantoms.
#
#   benches/gpu.sh smoke   # libraries, bench at repeat 1, a 2-epoch training run on 12 tiny phantoms
#   benches/gpu.sh full    # bench (repeat 5) vs PyTorch, then the demo-model training runs
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
log() { echo "[$(($(date +%s) - start)) s] $*"; }

# The binary and the CUDA libraries it links (PyTorch's wheels hold them; the driver gives libcuda).
python3 -c "import lzma, shutil; shutil.copyfileobj(lzma.open('.dev/sacro.xz'), open('/tmp/sacro', 'wb'))" || exit 1
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
  $sacro bench model --device cuda --repeat 1 --train-batch 8 || exit 1
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

# Phantoms on the CPUs while the GPU is benchmarked.
($sacro phantom --n 700 --size 512 --seed 2028 --out /tmp/ph >/tmp/phantom.log 2>&1; echo $? >/tmp/phantom.rc) &
phantoms=$!

if [ -z "${SKIP_BENCH:-}" ]; then
  log "sacro bench (CUDA, f32)"
  timeout 150 $sacro bench model --device cuda --repeat 5 --train-batch 8,32 | tee /tmp/bench_sacro.csv
  log "pytorch bench (CUDA, f32, no TF32)"
  DEVICE=cuda timeout 90 python3 benches/model_pytorch.py 5 8,32 | tee /tmp/bench_torch.csv
else
  echo "train_step_224_b32,$SKIP_BENCH" >/tmp/bench_sacro.csv
fi
wait $phantoms  # (a bare `wait` would also wait for the `tee` of this script's output, forever)
log "phantoms: rc $(cat /tmp/phantom.rc); $(tail -1 /tmp/phantom.log)"

# The demo model: the study's schedule at 224 px (one frozen epoch, then unfrozen) without MixUp and, when
# the GPU is fast enough for two runs side by side to get 14 epochs or more each, with MixUp too; epochs
# chosen from the measured step time so that the runs end inside the budget.
t32=$(awk -F, '$1 == "train_step_224_b32" { print $2 }' /tmp/bench_sacro.csv)
left=$((budget - ($(date +%s) - start) - 20))
read -r one two < <(python3 -c "
t32 = float('${t32:-0}' or 0) or 1.0
epoch = (600 / 32) * t32 * 1.25 + 4  # augmentation, validation, checkpoints
print(max(2, min(80, int($left / epoch) - 1)), max(2, min(80, int($left / (1.8 * epoch)) - 1)))")
if [ "$two" -ge 14 ]; then runs="plain mixup"; epochs=$two; else runs="plain"; epochs=$one; fi
log "train step b32 ${t32} s; ${left} s left; runs: $runs, ${epochs} unfrozen epochs each"
for run in $runs; do
  alpha=0.4
  [ "$run" = plain ] && alpha=0.0
  cat >/tmp/$run.toml <<EOF
seed = 2028
valid_pct = 0.143
lr_frozen = 4e-3
lr_unfrozen = [2e-3, 4e-3]
mixup_alpha = $alpha
max_micro_batch = 32
[[stages]]
size = 224
batch = 32
frozen_epochs = 1
unfrozen_epochs = $epochs
EOF
  (timeout $((left + 30)) $sacro train --data /tmp/ph/truth.csv --config /tmp/$run.toml --out /tmp/run-$run \
    >/tmp/train-$run.log 2>&1; echo $? >/tmp/train-$run.rc) &
  pids="${pids:-} $!"
done
wait $pids
for run in $runs; do
  log "run $run: rc $(cat /tmp/train-$run.rc); $(grep -a 'model written' /tmp/train-$run.log | tail -1)"
  tail -c 600 /tmp/run-$run/metrics.csv 2>/dev/null
done

# Bring back the better run's model (f16 weights, split under the 16 MiB file limit) and everything small.
best=$(for run in $runs; do
  a=$(grep -ao 'validation AUC [0-9.]*' /tmp/train-$run.log | tail -1 | awk '{print $3}')
  [ -n "$a" ] && [ -f /tmp/run-$run/model/model.json ] && echo "$a $run"
done | sort -rn | head -1 | awk '{print $2}')
if [ -n "$best" ]; then
  $sacro model half /tmp/run-$best/model --out /tmp/demo-phantom && log "best: $best" &&
    tar -C /tmp -cf - demo-phantom | split -b 15M - "$OUT/demo.tar.part-"
fi
mkdir -p /tmp/small
cp /tmp/bench_*.csv /tmp/*.toml /tmp/train-*.log /tmp/phantom.log /tmp/small/ 2>/dev/null
for run in $runs; do
  mkdir -p /tmp/small/$run
  find /tmp/run-$run -maxdepth 1 -type f ! -name '*.safetensors' -exec cp {} /tmp/small/$run/ \; 2>/dev/null
done
tar -C /tmp -czf "$OUT/runs.tgz" small
log "done"
