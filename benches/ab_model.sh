#!/usr/bin/env bash
# Interleaved A/B of the model benchmark (`sacro bench model`) between two Sacro binaries built from the
# commits to compare (e.g. before and after a refactoring): ROUNDS rounds, each running A then B in fresh
# processes with the same thread count; prints every round's medians and, per measurement, the median of
# the rounds' B/A ratios with their range.
# Usage: [ROUNDS=5] [REPEAT=3] [ONLY=name-prefix] benches/ab_model.sh BINARY_A BINARY_B
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/common.sh
a=$1 b=$2 rounds=${ROUNDS:-5} repeat=${REPEAT:-3}
header
echo "# A = $a ($(sha256sum "$a" | cut -c1-12)), B = $b ($(sha256sum "$b" | cut -c1-12)), $rounds rounds, --repeat $repeat"
for r in $(seq "$rounds"); do
  for which in A B; do
    bin=$a; [ "$which" = B ] && bin=$b
    sleep "${SETTLE_S:-5}"
    RAYON_NUM_THREADS=$threads "$bin" bench model --repeat "$repeat" ${ONLY:+--only "$ONLY"} |
      tail -n +2 | sed "s/^/$r,$which,/"
  done
done | tee >(cat >&2) | python3 -c '
import sys, collections, statistics
t = collections.defaultdict(dict)
for line in sys.stdin:
    p = line.strip().split(",")
    if len(p) < 4: continue
    t[(p[2], p[0])][p[1]] = float(p[3])
names = sorted({k[0] for k in t})
for n in names:
    ratios = [v["B"] / v["A"] for (m, _), v in t.items() if m == n and "A" in v and "B" in v]
    a = [v["A"] for (m, _), v in t.items() if m == n and "A" in v]
    b = [v["B"] for (m, _), v in t.items() if m == n and "B" in v]
    print("%s: A median %.3f s, B median %.3f s, B/A median %.3f [%.3f, %.3f] over %d rounds" % (
        n, statistics.median(a), statistics.median(b), statistics.median(ratios), min(ratios), max(ratios), len(ratios)))
'
