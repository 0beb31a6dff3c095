#!/usr/bin/env bash
# 50 films through WADO-RS on loopback into Sacro's film cache (`sacro study fetch` over a study of 50
# archived cases), beside curl fetching the same 50 instances from the same Orthanc, in one run:
# films/s and MB/s. The 50 films are de-identified copies of two real radiographs (RG3 uncompressed,
# RG1 JPEG 2000), each copy made distinct by its own secret (new UIDs), stored through Orthanc's REST API.
# Orthanc: a throwaway one on a free loopback port, authentication on, storage in a temporary folder.
# Usage: benches/wado.sh   (uses target/debug/sacro, the dev profile the tests build)
set -euo pipefail
cd "$(dirname "$0")/.."
sacro=${SACRO:-target/debug/sacro}
[ -x "$sacro" ] || cargo build --locked --bin sacro
data=../shared/testdata/dicom/real
tmp=$(mktemp -d)
trap 'kill $(cat "$tmp/pid" 2>/dev/null) 2>/dev/null || true; sleep 1; rm -rf "$tmp"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
dport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
plugin=""
for p in /usr/share/orthanc/plugins/libOrthancDicomWeb.so /usr/lib/orthanc/plugins/libOrthancDicomWeb.so; do
  [ -f "$p" ] && plugin=$p && break
done
[ -n "$plugin" ] || { echo "the Orthanc DICOMweb plugin is missing: run packaging/setup-debian.sh" >&2; exit 1; }
cat > "$tmp/orthanc.json" <<JSON
{"Name": "sacro-bench", "StorageDirectory": "$tmp/storage", "IndexDirectory": "$tmp/index",
 "HttpPort": $port, "RemoteAccessAllowed": false, "DicomServerEnabled": false, "DicomPort": $dport,
 "AuthenticationEnabled": true, "RegisteredUsers": {"bench": "bench-pw"}, "Plugins": ["$plugin"],
 "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}}
JSON
Orthanc "$tmp/orthanc.json" >"$tmp/orthanc.log" 2>&1 &
echo $! > "$tmp/pid"
for _ in $(seq 1 300); do curl -sf -u bench:bench-pw "http://127.0.0.1:$port/system" >/dev/null && break; sleep 0.1; done
url="http://127.0.0.1:$port/dicom-web"
export SACRO_DICOMWEB_USER=bench SACRO_DICOMWEB_PASSWORD=bench-pw
mkdir -p "$tmp/films"
for i in $(seq 1 25); do
  for f in RG3_UNCR.dcm RG1_J2KI.dcm; do
    printf '%032x' "$i" > "$tmp/secret"
    "$sacro" deidentify "$data/$f" --out "$tmp/films" --secret-file "$tmp/secret" >/dev/null
  done
done
for f in "$tmp"/films/*.dcm; do
  curl -sf -u bench:bench-pw -X POST --data-binary @"$f" "http://127.0.0.1:$port/instances" >/dev/null
done
"$sacro" pacs find "$url" --json > "$tmp/found.json"
python3 - "$tmp/found.json" "$tmp/list.csv" "$tmp/urls.txt" "$url" <<'PY'
import json, sys
studies = json.load(open(sys.argv[1]))
rows, urls = [], []
for st in studies:
    for se in st["series"]:
        for sop in se["instances"]:
            rows.append(f'{st["study_uid"]}/{se["series_uid"]}/{sop}')
            urls.append(f'{sys.argv[4]}/studies/{st["study_uid"]}/series/{se["series_uid"]}/instances/{sop}')
open(sys.argv[2], "w").write("dicomweb\n" + "\n".join(rows) + "\n")
open(sys.argv[3], "w").write("\n".join(urls) + "\n")
PY
n=$(wc -l < "$tmp/urls.txt")
bytes=$(du -cb "$tmp"/films/*.dcm | tail -1 | cut -f1)
"$sacro" study create "$tmp/study.sacro" --protocol single >/dev/null 2>&1
"$sacro" study add-cases "$tmp/study.sacro" "$tmp/list.csv" --dicomweb "$url" >/dev/null
echo "# $(date -u +%F) $(nproc) cores; Orthanc $(Orthanc --version 2>/dev/null | head -1 | awk '{print $NF}'); $n films, $((bytes / 1000000)) MB; loopback; cache and curl output on the same disk"
for run in 1 2 3; do
  rm -rf "$tmp/cache" "$tmp/curl"; mkdir -p "$tmp/curl"
  t0=$(date +%s.%N)
  SACRO_CACHE_DIR="$tmp/cache" "$sacro" study fetch "$tmp/study.sacro" > "$tmp/fetch.log" || { tail -5 "$tmp/fetch.log"; exit 1; }
  t1=$(date +%s.%N)
  i=0
  while read -r u; do
    i=$((i + 1))
    curl -sf -u bench:bench-pw -H 'Accept: multipart/related; type="application/dicom"; transfer-syntax=*' "$u" -o "$tmp/curl/$i"
  done < "$tmp/urls.txt"
  t2=$(date +%s.%N)
  python3 - "$n" "$bytes" "$t0" "$t1" "$t2" "$run" <<'PY'
import sys
n, b, t0, t1, t2, run = int(sys.argv[1]), int(sys.argv[2]), *map(float, sys.argv[3:6]), sys.argv[6]
s, c = t1 - t0, t2 - t1
print(f"run {run}: sacro study fetch {n / s:6.1f} films/s {b / s / 1e6:6.1f} MB/s ({s:.2f} s) | "
      f"curl {n / c:6.1f} films/s {b / c / 1e6:6.1f} MB/s ({c:.2f} s) | sacro/curl time {s / c:.2f}")
PY
done
