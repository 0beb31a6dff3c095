#!/usr/bin/env bash
# System packages Sacro needs to build and test on Debian/Ubuntu (run as root or with sudo available).
# cmake + g++: the CharLS JPEG-LS decoder is C++ built by the charls-sys crate.
# mesa-vulkan-drivers + libvulkan1: a software GPU (lavapipe) for the GUI's rendering tests and for running
# the desktop app on machines without a GPU driver; libxkbcommon-x11-0: keyboard handling under X11;
# xvfb: a virtual display for running the app headless (frame-time measurements); desktop-file-utils:
# validating the packaged desktop entry (packaging/check-deb.sh). libssl-dev: TLS to a PostgreSQL study
# server (the postgres-openssl crate links the system's OpenSSL, as libpq does). postgresql: the tests
# start throwaway servers of their own (initdb + pg_ctl on a loopback port, tests/pg); the package's
# own cluster is not used. orthanc + orthanc-dicomweb: the DICOMweb tests start a throwaway archive of
# their own (tests/orthanc); the package's service is not used.
set -euo pipefail
pkgs=(cmake g++ pkg-config libssl-dev postgresql orthanc orthanc-dicomweb mesa-vulkan-drivers libvulkan1 libxkbcommon-x11-0 xvfb desktop-file-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}"
fi
# The pinned toolchain (rust-toolchain.toml) is installed by rustup on first use of cargo.
command -v cargo >/dev/null || { echo "install Rust with rustup first: https://rustup.rs" >&2; exit 1; }
