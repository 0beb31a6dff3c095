#!/usr/bin/env bash
# Builds `sacro` with CUDA (candle's CUDA backend, CUDA 13) on a machine with no GPU and no CUDA toolkit,
# from NVIDIA's PyPI wheels: nvcc, its headers and the CUDA libraries to link against. The driver library
# (libcuda.so.1) is not on PyPI: a stub with its function names is made for the link; the real one
# comes with the driver on the GPU machine. Where the CUDA toolkit is installed, plain
# `cargo build --release --features cuda` does the same.
#
#   packaging/cuda/build.sh [COMPUTE_CAP]   # default 90 (Hopper); writes .dev/sacro.xz
#
# On the GPU machine the binary needs libcublas/libcublasLt/libcurand/libnvrtc/libcudart of CUDA 13 on
# LD_LIBRARY_PATH (PyTorch's cu13 wheels hold them; benches/gpu.sh finds them).
set -euo pipefail
cd "$(dirname "$0")/../.."
cap=${1:-90}
work=${CUDA_WORK:-/tmp/sacro-cuda}
mkdir -p "$work/wheels" "$work/root"
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$work/wheels" \
  "nvidia-cuda-nvcc==13.0.*" "nvidia-cuda-runtime==13.0.*" "nvidia-cuda-crt==13.0.*" "nvidia-nvvm==13.0.*" \
  "nvidia-cuda-cccl==13.0.*" "nvidia-cuda-nvrtc==13.0.*" "nvidia-cublas==13.*" "nvidia-curand==10.*"
for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/root"; done
cuda=$work/root/nvidia/cu13
# Link-time stub of the driver library: every cu* function cudarc declares.
cudarc=$(cargo metadata --format-version 1 --locked --features cuda |
  python3 -c "import json, sys; print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name'] == 'cudarc'))")
grep -h -A1 'extern "C" {' "$(dirname "$cudarc")/src/driver/sys/mod.rs" | grep -oP '^\s*fn \K(cu\w+)' | sort -u |
  sed 's/.*/int &(void) { return 999; }/' >"$work/libcuda_stub.c"
mkdir -p "$cuda/lib/stubs"
gcc -shared -fPIC -o "$cuda/lib/stubs/libcuda.so" -Wl,-soname,libcuda.so.1 "$work/libcuda_stub.c"
(cd "$cuda/lib" && for l in cublas cublasLt cudart nvrtc; do ln -sf "lib$l.so.13" "lib$l.so"; done &&
  ln -sf libcurand.so.10 libcurand.so)
export CUDA_HOME=$cuda NVCC=$cuda/bin/nvcc CUDA_COMPUTE_CAP=$cap CUDARC_CUDA_VERSION=13000 PATH=$cuda/bin:$PATH
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$work/target}
cargo build --release --locked --features cuda
mkdir -p .dev
strip -o "$work/sacro" "$CARGO_TARGET_DIR/release/sacro"
xz -6 -T2 -c "$work/sacro" >.dev/sacro.xz
ls -l "$work/sacro" .dev/sacro.xz
