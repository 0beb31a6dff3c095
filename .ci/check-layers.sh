#!/usr/bin/env bash
# Layering rules of ../shared/design/ARCHITECTURE.md, checked on the `use` lines and paths of src/.
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
# `unsafe` only in the one measured kernel STYLE.md allows (the crate denies it; that module allows it).
check '\bunsafe\b|allow\(unsafe_code\)' '^src/kernels/gemm\.rs$' 'unsafe code outside src/kernels/gemm.rs'
# grading/ and stats/ are pure: no I/O, no other crate modules.
for dir in src/grading src/stats; do
  [ -d "$dir" ] || continue
  hits=$(grep -rlE '\b(std::fs|std::net|std::process|std::io|rusqlite|crate::(imaging|session|model|train|gui|phantom))\b' "$dir" || true)
  if [ -n "$hits" ]; then echo "layering: $dir must be pure (no I/O, no other crate modules): $hits" >&2; fail=1; fi
done
[ $fail -eq 0 ] && echo "layering: ok"
exit $fail
