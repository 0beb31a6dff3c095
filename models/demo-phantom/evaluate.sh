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
python3 models/demo-phantom/phantom_auc.py "$tmp/ph/truth.csv" "$tmp/pred.csv"
