#!/usr/bin/env bash
# Decode benchmark: Sacro vs pydicom + numpy, same machine, same files, one invocation.
# Usage: benches/decode.sh [REPEAT]   (needs: pip install pydicom pylibjpeg pylibjpeg-openjpeg numpy)
set -euo pipefail
cd "$(dirname "$0")/.."
repeat=${1:-20}
real=../shared/testdata/dicom/real
# Uncompressed, JPEG 2000 lossless and lossy, HTJ2K lossless and lossy (copies of a 768² region of RG3 by
# OpenJPH, tests/fixtures/htj2k), and 12-bit JPEG Extended (a dcmcjpeg copy of RG3, tests/fixtures/jpeg12:
# pydicom cannot decode it, so dcmtk's dcmdjpeg is timed beside it, process start and file write included).
files=($real/RG3_UNCR.dcm $real/RG3_J2KR.dcm $real/RG1_J2KI.dcm
       tests/fixtures/htj2k/RG3_crop_HTJ2KR.dcm tests/fixtures/htj2k/RG3_crop_HTJ2K.dcm
       tests/fixtures/jpeg12/RG3_jpeg12.dcm)
# Whole films in HTJ2K (RG3 lossless, RG1 lossy), made now by OpenJPH where it is installed.
if command -v ojph_compress >/dev/null; then
  full=$(mktemp -d)
  trap 'rm -rf "$full"' EXIT
  python3 tests/fixtures/htj2k/make.py --full "$full" >/dev/null
  files+=("$full/RG3_HTJ2KR.dcm" "$full/RG1_HTJ2K.dcm")
fi
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
  awk -F, '{ if ($6 == "nan") printf "%s: sacro %.1f ms, pydicom cannot decode it\n", $1, $2;
             else printf "%s: sacro %.1f ms, pydicom %.1f ms, ratio %.2f\n", $1, $2, $6, $2 / $6 }'
if command -v dcmdjpeg >/dev/null; then
  echo "## dcmtk dcmdjpeg (12-bit JPEG; decompress to a file, process start included)"
  python3 - "$repeat" tests/fixtures/jpeg12/RG3_jpeg12.dcm <<'PY'
import os, subprocess, sys, tempfile, time
repeat, path = int(sys.argv[1]), sys.argv[2]
with tempfile.TemporaryDirectory() as d:
    ts = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(["dcmdjpeg", path, os.path.join(d, "o.dcm")], check=True, stderr=subprocess.DEVNULL)
        ts.append((time.perf_counter() - t) * 1e3)
ts.sort()
print(f"{path}: dcmdjpeg {ts[len(ts) // 2]:.1f} ms (median), {ts[0]:.1f} ms (min)")
PY
fi
