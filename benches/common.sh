# Sourced by the benchmark scripts (run from the repository root): the thread count (THREADS, default all
# cores), Sacro's glibc allocator settings (`MALLOC_TUNABLES` in src/main.rs, which the sacro binary sets
# for itself; test binaries and PyTorch get them from here), and a header line naming the date, CPU,
# cores, threads and commit.
threads=${THREADS:-$(nproc)}
tunables=glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=68719476736:glibc.malloc.top_pad=1073741824:glibc.malloc.arena_max=1
header() {
  echo "# $(date -u +%F) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores, $threads threads, $(git rev-parse --short HEAD)"
}
