#!/usr/bin/env bash
# Decode benchmark: Sacro vs pydicom + numpy, same machine, same files, one invocation.
# Usage: benches/decode.sh [REPEAT]   (needs: pip install pydicom pylibjpeg pylibjpeg-openjpeg numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-20}
files=(../shared/testdata/dicom/real/RG3_UNCR.dcm ../shared/testdata/dicom/real/RG3_J2KR.dcm)
cargo build --release --quiet
echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores"
echo "## sacro"
sacro_csv=$(./target/release/sacro bench decode --repeat "$repeat" "${files[@]}")
echo "$sacro_csv"
echo "## pydicom"
py_csv=$(python3 benches/decode_pydicom.py "$repeat" "${files[@]}")
echo "$py_csv"
echo "## ratio (sacro / pydicom, median; < 1 means Sacro is faster)"
paste -d, <(echo "$sacro_csv" | tail -n +2) <(echo "$py_csv" | tail -n +2) |
  awk -F, '{ printf "%s: sacro %.1f ms, pydicom %.1f ms, ratio %.2f\n", $1, $2, $6, $2 / $6 }'
