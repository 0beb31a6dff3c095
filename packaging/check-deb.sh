#!/usr/bin/env bash
# Builds the Debian package from the binary CI already built (dev profile: CI builds once) and checks its
# contents unpacked into a clean directory with `dpkg -x`: the binary runs, the desktop entry validates and
# names the DICOM and study MIME types, the icon, the study MIME type, the demo study, fonts, README and
# licences are there. A release package is the same command without `--no-build --profile dev`.
set -euo pipefail
cd "$(dirname "$0")/.."
CARGO_DEB_VERSION=3.8.0
# Greps at the end of a pipe read all their input (no -q): an early exit would kill the writer with SIGPIPE,
# which pipefail turns into a failure that depends on timing (CI once ended with 141 here).
if ! cargo deb --version 2>/dev/null | grep "$CARGO_DEB_VERSION" >/dev/null; then
    cargo install --locked --quiet cargo-deb --version "$CARGO_DEB_VERSION"
fi
test -x target/debug/sacro || cargo build --locked --bin sacro
deb=$(cargo deb --no-build --profile dev --no-strip 2>/dev/null | tail -n 1)
test -f "$deb" || { echo "check-deb: cargo deb did not write a package" >&2; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
dpkg -x "$deb" "$dir"
dpkg-deb --info "$deb" | grep "Package: sacro" >/dev/null
fail() { echo "check-deb: $*" >&2; exit 1; }
for f in usr/bin/sacro \
    usr/share/applications/sacro.desktop \
    usr/share/icons/hicolor/256x256/apps/sacro.png \
    usr/share/mime/packages/sacro.xml \
    usr/share/sacro/demo/study.sacro \
    usr/share/sacro/demo/P0001.dcm \
    usr/share/sacro/models/demo-phantom/model.json \
    usr/share/sacro/models/demo-phantom/weights.safetensors \
    usr/share/doc/sacro/README.md \
    usr/share/doc/sacro/LICENSE-MIT \
    usr/share/doc/sacro/LICENSE-APACHE \
    usr/share/doc/sacro/copyright; do
    test -s "$dir/$f" || fail "$f missing from $deb"
done
ls "$dir"/usr/share/sacro/fonts/*.ttf >/dev/null 2>&1 || fail "no fonts in $deb"
grep -q '^MimeType=.*application/dicom' "$dir/usr/share/applications/sacro.desktop" || fail "desktop entry lacks DICOM"
grep -q 'application/x-sacro-study' "$dir/usr/share/applications/sacro.desktop" || fail "desktop entry lacks studies"
desktop-file-validate "$dir/usr/share/applications/sacro.desktop"
"$dir/usr/bin/sacro" --version | grep '^sacro ' >/dev/null || fail "the packaged binary does not run"
# The packaged binary finds the packaged demo study (../share/sacro beside it).
"$dir/usr/bin/sacro" study status "$dir/usr/share/sacro/demo/study.sacro" >/dev/null || fail "demo study unreadable"
# Without --model it predicts with the packaged demo model (found beside it, not in the source tree).
"$dir/usr/bin/sacro" predict "$dir/usr/share/sacro/demo/P0001.dcm" 2>"$dir/predict.err" | grep '^P0001' >/dev/null ||
    fail "the packaged binary cannot predict with its demo model: $(cat "$dir/predict.err")"
grep -q "$dir/usr/share/sacro/models/demo-phantom" "$dir/predict.err" || fail "the demo model used is not the packaged one"
echo "check-deb: $(basename "$deb") ok ($(du -h "$deb" | cut -f1))"
