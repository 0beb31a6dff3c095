#!/usr/bin/env bash
# Model benchmark: Sacro (candle; its im2col convolutions and candle's stock ones) vs PyTorch on the same
# machine, same thread count, one invocation.
# Usage: benches/model.sh [REPEAT]   (needs: pip install torch torchvision fastai)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-3}
threads=${THREADS:-$(nproc)}
cargo build --release --quiet
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $threads threads"
sacro_csv=$(RAYON_NUM_THREADS=$threads ./target/release/sacro bench model --repeat "$repeat")
stock_csv=$(SACRO_CONV=stock RAYON_NUM_THREADS=$threads ./target/release/sacro bench model --repeat "$repeat")
py_csv=$(THREADS=$threads python3 benches/model_pytorch.py "$repeat" 2>/dev/null)
echo "## sacro (im2col)"; echo "$sacro_csv"
echo "## sacro (SACRO_CONV=stock)"; echo "$stock_csv"
echo "## pytorch"; echo "$py_csv"
echo "## ratio (median seconds; sacro / pytorch)"
paste -d, <(echo "$sacro_csv" | tail -n +2) <(echo "$stock_csv" | tail -n +2) <(echo "$py_csv" | tail -n +2) |
  awk -F, '{ printf "%s: sacro %.3f s (stock %.3f s), pytorch %.3f s, ratio %.2f (stock %.2f)\n", $1, $2, $6, $10, $2 / $10, $6 / $10 }'
# Peak resident memory of training steps at 768² batch 2, each in a fresh process.
echo "## peak memory, training step 768² batch 2 (work,peak_rss_mb,step_s; fresh process each)"
for path in im2col stock; do
  conv=""
  [ "$path" = stock ] && conv=stock
  echo "sacro ($path): $(SACRO_CONV=$conv RAYON_NUM_THREADS=$threads ./target/release/sacro bench memory --size 768 --batch 2 --steps 2 | tail -1)"
done
echo "pytorch: $(THREADS=$threads python3 benches/memory_pytorch.py 768 2 2 2>/dev/null | tail -1)"
