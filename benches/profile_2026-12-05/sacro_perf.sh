#!/usr/bin/env bash
# Where a Sacro training step goes (224² batch 8, 2 threads; the reference is pytorch_train_step.py): `perf`
# samples of steady steps (the first 3.5 s, set-up and the first step, skipped) with DWARF call stacks; each
# sample is counted by its innermost frame (GEMM micro-kernel, GEMM packing, memset, memcpy, the kernel)
# and by the innermost of Sacro's kernels on its stack. Needs linux-perf. Usage: sacro_perf.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-/tmp}
cargo build --release --quiet
RAYON_NUM_THREADS=2 perf record -q -D 3500 -F 500 --call-graph dwarf,32768 -o "$out/perf.data" \
  ./target/release/sacro bench memory --size 224 --batch 8 --steps 6 >/dev/null
perf script -i "$out/perf.data" -F comm,tid,ip,sym 2>/dev/null | python3 -c '
import re, sys, collections
samples, cur = [], None
for line in sys.stdin:
    if not line.strip():
        continue
    if not line[0].isspace():
        if cur is not None:
            samples.append(cur)
        cur = []
    else:
        parts = line.strip().split(None, 1)
        cur.append(parts[1] if len(parts) > 1 else "?")
if cur:
    samples.append(cur)
kernel = re.compile(r"sacro::(model|train)::[a-z0-9_]+")
def leaf(f):
    if "microkernel" in f: return "GEMM micro-kernel"
    if "gemm" in f or "pack_generic" in f: return "GEMM packing"
    if "memset" in f: return "memset"
    if "memmove" in f or "memcpy" in f: return "memcpy"
    if "schedule" in f or "_raw_" in f or "syscall" in f or "futex" in f or "page" in f or "sched_yield" in f: return "kernel (scheduler, page faults)"
    if "zeros" in f or "write<[f32; 16]>" in f: return "zeroing (cpu::zeros)"
    return None
leaves, owners = collections.Counter(), collections.Counter()
for st in samples:
    if not st:
        continue
    l = leaf(st[0])
    if l is None and any("microkernel" in f for f in st[1:3]):
        l = "GEMM micro-kernel (inlined frames)"
    if l is None and any("pack_generic" in f or "gemm_common" in f for f in st[1:3]):
        l = "GEMM packing"
    owner = next((m.group(0) for f in st for m in [kernel.search(f)] if m and not m.group(0).endswith("::cpu")), None)
    leaves[l or ((owner + " (its own code)") if owner else "other (no frame of Sacro on the stack)")] += 1
n = len(samples)
print(f"{n} samples of steady training steps (224² batch 8, 2 threads)")
for k, v in leaves.most_common(25):
    print(f"{100 * v / n:5.1f} %  {k}")
'
