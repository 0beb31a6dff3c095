#!/usr/bin/env bash
# Interleaved A/B of training steps between Sacro binaries (copies of target/release/sacro built from the
# commits to compare), as used for the per-change numbers in README "Performance": each round runs every
# binary once (`sacro bench memory`, a fresh process, 5 steps); prints per binary the best and median
# step time and the median process CPU time (user + system).
# Usage: benches/ab.sh ROUNDS SIZE BATCH BINARY...
set -euo pipefail
rounds=$1 size=$2 batch=$3
shift 3
for _ in $(seq "$rounds"); do
  for bin in "$@"; do
    out=$({ /usr/bin/time -f "CPU %U %S" "$bin" bench memory --size "$size" --batch "$batch" --steps 5 2>&1; } |
      grep -E "train_step|CPU" | tr '\n' ' ')
    echo "$bin $out"
  done
done | python3 -c '
import sys, collections, statistics
t, c = collections.defaultdict(list), collections.defaultdict(list)
for line in sys.stdin:
    p = line.split()
    step = [x for x in p if x.startswith("train_step")][0].split(",")
    t[p[0]].append(float(step[2]))
    i = p.index("CPU")
    c[p[0]].append(float(p[i + 1]) + float(p[i + 2]))
for k in t:
    print(k, "best %.3f s, median %.3f s, CPU median %.1f s" % (min(t[k]), statistics.median(t[k]), statistics.median(c[k])), sorted(t[k]))
'
