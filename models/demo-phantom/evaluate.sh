#!/usr/bin/env bash
# The demo model on phantoms it never saw (seed 2029, not the training seed 2028): AUC by scikit-learn.
# Usage: models/demo-phantom/evaluate.sh [N]   (needs: pip install scikit-learn); prints N, AUC, prevalence.
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${1:-300}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cargo build --release --quiet
./target/release/sacro phantom --n "$n" --size 512 --seed 2029 --out "$tmp/ph" >/dev/null
./target/release/sacro predict --model models/demo-phantom --batch 16 --out "$tmp/pred.csv" "$tmp/ph"
python3 - "$tmp" <<'PY'
import csv, os, sys
from sklearn.metrics import roc_auc_score
tmp = sys.argv[1]
truth = {r["file"]: int(r["definite"]) for r in csv.DictReader(open(f"{tmp}/ph/truth.csv"))}
rows = [(truth[os.path.basename(r["file"])], float(r["probability"])) for r in csv.DictReader(open(f"{tmp}/pred.csv"))]
y = [a for a, _ in rows]
print(f"n {len(rows)}, AUC {roc_auc_score(y, [b for _, b in rows]):.3f}, prevalence {sum(y) / len(y):.3f}")
PY
