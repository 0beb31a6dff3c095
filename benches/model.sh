#!/usr/bin/env bash
# Model benchmark: Sacro (candle; its im2col convolutions and candle's stock ones) vs PyTorch on the same
# machine, same thread count, one invocation. Sacro's model commands run with glibc tunables that keep freed
# memory for reuse (src/main.rs, keep_freed_memory); `GLIBC_TUNABLES=` (set, empty) turns that off, and
# PyTorch is timed both ways so that the ratio is not the allocator's.
# Then ROUNDS (default 3) interleaved pairs, Sacro then PyTorch with Sacro's tunables, for the ratio's
# spread: this shared machine's speed drifts by 10–15 % over an hour, so one pass of each can be biased
# either way; the reported ratio is the median of the rounds' ratios, with their range.
# ROUNDS_ONLY=1 runs the interleaved rounds alone (for more rounds after a full run).
# Usage: [ROUNDS=3] [ROUNDS_ONLY=1] benches/model.sh [REPEAT]   (needs: pip install torch torchvision fastai)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-3}
source benches/common.sh
cargo build --release --quiet
header
# A pause before each program, so that what follows one (the kernel reclaiming its memory, 12 GB after
# candle's stock path) stays out of the next one's timings. (PyTorch with glibc's default allocator
# settings varied by up to 2x between repetitions on 2026-11-28 with and without the pause; with Sacro's
# settings it was steady.)
settle() { sleep "${SETTLE_S:-15}"; }
if [ -z "${ROUNDS_ONLY:-}" ]; then
sacro_csv=$(RAYON_NUM_THREADS=$threads ./target/release/sacro bench model --repeat "$repeat")
settle
plain_csv=$(GLIBC_TUNABLES= RAYON_NUM_THREADS=$threads ./target/release/sacro bench model --repeat "$repeat")
settle
stock_csv=$(SACRO_CONV=stock RAYON_NUM_THREADS=$threads ./target/release/sacro bench model --repeat "$repeat")
settle
py_csv=$(THREADS=$threads python3 benches/model_pytorch.py "$repeat" 2>/dev/null)
settle
pytuned_csv=$(GLIBC_TUNABLES=$tunables THREADS=$threads python3 benches/model_pytorch.py "$repeat" 2>/dev/null)
echo "## sacro (im2col; keeps freed memory)"; echo "$sacro_csv"
echo "## sacro (im2col; glibc's default allocator settings, GLIBC_TUNABLES=)"; echo "$plain_csv"
echo "## sacro (SACRO_CONV=stock)"; echo "$stock_csv"
echo "## pytorch"; echo "$py_csv"
echo "## pytorch (GLIBC_TUNABLES as sacro's)"; echo "$pytuned_csv"
echo "## ratio (median seconds; sacro / pytorch; in brackets: glibc defaults for both, candle stock, pytorch with sacro's tunables)"
paste -d, <(echo "$sacro_csv" | tail -n +2) <(echo "$plain_csv" | tail -n +2) <(echo "$stock_csv" | tail -n +2) \
  <(echo "$py_csv" | tail -n +2) <(echo "$pytuned_csv" | tail -n +2) |
  awk -F, '{ printf "%s: sacro %.3f s, pytorch %.3f s, ratio %.2f (defaults: sacro %.3f s, ratio %.2f; stock %.3f s, ratio %.2f; pytorch tuned %.3f s, ratio %.2f)\n", $1, $2, $14, $2 / $14, $6, $6 / $14, $10, $10 / $14, $18, $2 / $18 }'
# Peak resident memory of training steps at 768² batch 2, each in a fresh process.
echo "## peak memory, training step 768² batch 2 (work,peak_rss_mb,step_s; fresh process each)"
for path in im2col stock; do
  settle
  conv=""
  [ "$path" = stock ] && conv=stock
  echo "sacro ($path): $(SACRO_CONV=$conv RAYON_NUM_THREADS=$threads ./target/release/sacro bench memory --size 768 --batch 2 --steps 2 | tail -1)"
done
settle
echo "sacro (im2col, --checkpoint): $(RAYON_NUM_THREADS=$threads ./target/release/sacro bench memory --size 768 --batch 2 --steps 2 --checkpoint | tail -1)"
settle
echo "pytorch: $(THREADS=$threads python3 benches/memory_pytorch.py 768 2 2 2>/dev/null | tail -1)"
fi
# Interleaved rounds: Sacro, then PyTorch with the same tunables, ROUNDS times; per work the median of the
# rounds' ratios (each a ratio of medians of REPEAT) and their range; each round's raw lines go to stderr.
rounds=${ROUNDS:-3}
echo "## interleaved rounds ($rounds × sacro, pytorch with sacro's tunables): work: sacro median s, pytorch median s, ratio median [min, max]"
for r in $(seq "$rounds"); do
  settle
  RAYON_NUM_THREADS=$threads ./target/release/sacro bench model --repeat "$repeat" | tail -n +2 | sed "s/^/sacro,$r,/"
  settle
  GLIBC_TUNABLES=$tunables THREADS=$threads python3 benches/model_pytorch.py "$repeat" 2>/dev/null | tail -n +2 | sed "s/^/pytorch,$r,/"
done | tee >(cat >&2) | python3 -c '
import sys, collections, statistics
t = collections.defaultdict(dict)
order = []
for line in sys.stdin:
    who, r, work, med = line.strip().split(",")[:4]
    t[work].setdefault(who, {})[r] = float(med)
    if work not in order:
        order.append(work)
for work in order:
    s, p = t[work].get("sacro", {}), t[work].get("pytorch", {})
    ratios = [s[r] / p[r] for r in s if r in p]
    if ratios:
        print("%s: sacro %.3f s, pytorch %.3f s, ratio %.2f [%.2f, %.2f]" % (work, statistics.median(s.values()),
              statistics.median(p.values()), statistics.median(ratios), min(ratios), max(ratios)))
'
