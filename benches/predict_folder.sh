#!/usr/bin/env bash
# Folder throughput, end to end: `sacro predict` over 50 JPEG 2000 films (25 copies each of RG3_J2KR.dcm,
# lossless, and RG1_J2KI.dcm, lossy; the bundled demo model, 224², batch 8), its films decoded in parallel
# (the default: a batch at once, the next batch while the model runs) and one at a time
# (--sequential-decode), alternating; then pydicom + PyTorch doing the same work in one script
# (benches/predict_folder_pytorch.py: decode, Modality LUT, window, pad and resize to 224, ResNet-50 +
# fastai head, batch 8, all cores). Release build; films per second and ratios.
# Usage: [ROUNDS=2] benches/predict_folder.sh   (needs: pip install pydicom pylibjpeg pylibjpeg-openjpeg torch torchvision)
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-2}
real=../shared/testdata/dicom/real
cargo build --release --quiet
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/films"
for i in $(seq -w 1 25); do
  cp "$real/RG3_J2KR.dcm" "$dir/films/a$i.dcm"
  cp "$real/RG1_J2KI.dcm" "$dir/films/b$i.dcm"
done
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, 50 films"
run() {
  local t0 t1
  t0=$(date +%s.%N)
  ./target/release/sacro predict --model models/demo-phantom --batch 8 --out "$dir/p.csv" "$@" "$dir/films" >/dev/null 2>&1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
for r in $(seq "$rounds"); do
  par=$(run)
  seq_=$(run --sequential-decode)
  echo "round $r: parallel decode ${par} s ($(echo "scale=2; 50 / $par" | bc) films/s), one at a time ${seq_} s ($(echo "scale=2; 50 / $seq_" | bc) films/s), ratio $(echo "scale=2; $seq_ / $par" | bc)"
done
cp "$dir/p.csv" "$dir/parallel.csv"
run --sequential-decode >/dev/null
cmp -s "$dir/p.csv" "$dir/parallel.csv" && echo "the two CSVs are identical" || echo "THE TWO CSVs DIFFER"
python3 benches/predict_folder_pytorch.py "$dir/films"
