#!/usr/bin/env bash
# `sacro stats` on a large predictions set with the default resamples (2,000 AUC, 1,000 per kappa),
# timed for each Sacro binary given (copies built from the commits to compare), one after the other on an
# otherwise idle machine: wall time, user CPU time, peak memory.
# Usage: benches/stats.sh ROWS BINARY...
set -euo pipefail
rows=$1
shift
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
python3 - "$rows" "$dir" <<'PY'
import math, random, sys
n, d = int(sys.argv[1]), sys.argv[2]
random.seed(1)
with open(f"{d}/pred.csv", "w") as f, open(f"{d}/truth.csv", "w") as g:
    f.write("case,probability\n"); g.write("case,label\n")
    for i in range(n):
        y = random.random() < 0.3
        p = 1 / (1 + math.exp(-(random.gauss(0, 1) + 1.5 * y - 0.5)))
        f.write(f"C{i},{p:.6f}\n"); g.write(f"C{i},{int(y)}\n")
PY
for bin in "$@"; do
  /usr/bin/time -f "$bin: %e s wall, %U s user CPU, %M KB peak" \
    "$bin" stats --predictions "$dir/pred.csv" --truth "$dir/truth.csv" --json 2>&1 >/dev/null | tail -1
done
