#!/usr/bin/env bash
# Layering rules of ARCHITECTURE.md, checked on the `use` lines and paths of src/: which crates each
# layer may name (grep below), and the import graph between the crate's own files (.ci/import_graph.rs:
# no import cycles, no layer using one above it; compiled here with rustc alone, and run by
# tests/architecture.rs too).
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
check() { # pattern, allowed-path-regex, message
  local hits
  hits=$(grep -rlE "$1" src --include='*.rs' | grep -vE "$2" || true)
  if [ -n "$hits" ]; then
    echo "layering: $3: $hits" >&2
    fail=1
  fi
}
check '\b(egui|eframe|egui_wgpu|wgpu|rfd)::' '^src/(gui/|main\.rs$)' 'GUI crates outside src/gui/'
check '\bcandle_(core|nn)\b' '^src/(kernels|model|train)/' 'candle outside src/kernels/, src/model/ and src/train/'
check '\bdicom_(object|pixeldata|core|dictionary_std|encoding|transfer_syntax_registry|parser)\b' '^src/imaging/' 'dicom crates outside src/imaging/'
# `unsafe` only in the one measured kernel STYLE.md allows and in the foreign calls to libjpeg-turbo for
# 12-bit JPEG (the crate denies it; those two modules allow it).
check '\bunsafe\b|allow\(unsafe_code\)' '^src/(kernels/gemm|imaging/jpeg12)\.rs$' 'unsafe code outside src/kernels/gemm.rs and src/imaging/jpeg12.rs'
# The kernels know nothing of the network, training, the app or the stores (the graph below checks
# every layer; this names the rule for the kernels plainly).
hits=$(grep -rlE 'crate::(model|train|gui|report|session|phantom)\b' src/kernels || true)
if [ -n "$hits" ]; then echo "layering: src/kernels/ imports a layer above it: $hits" >&2; fail=1; fi
# Database clients only in the session stores; the HTTP client only in the PACS client.
check '\brusqlite::' '^src/session/' 'rusqlite outside src/session/'
check '\b(postgres|postgres_openssl|postgres_protocol)::' '^src/session/' 'PostgreSQL client outside src/session/'
check '\bureq::' '^src/pacs/' 'HTTP client outside src/pacs/'
# grading/, stats/ and escape.rs are pure: no I/O, no other crate modules.
for dir in src/grading src/stats src/escape.rs; do
  [ -e "$dir" ] || continue
  hits=$(grep -rlE '\b(std::fs|std::net|std::process|std::io|rusqlite|crate::(imaging|session|model|train|gui|phantom))\b' "$dir" || true)
  if [ -n "$hits" ]; then echo "layering: $dir must be pure (no I/O, no other crate modules): $hits" >&2; fail=1; fi
done
# The import graph between files: cycles and layers inside the crate.
bin="${CARGO_TARGET_DIR:-target}/import_graph"
mkdir -p "$(dirname "$bin")"
if rustc --edition 2024 -O .ci/import_graph.rs -o "$bin" 2>/dev/null; then
  "$bin" . || fail=1
else
  echo "layering: cannot compile .ci/import_graph.rs" >&2
  fail=1
fi
[ $fail -eq 0 ] && echo "layering: ok"
exit $fail
