#!/usr/bin/env bash
# 16 readers committing 50 cases each at once (threads, one connection each): the PostgreSQL store on a
# throwaway loopback server (tests/pg, here with fsync on) beside the SQLite store (one file,
# WAL, synchronous=FULL) under the same load, in one run: commits per second, p50/p95/max latency.
# Usage: benches/study_commits.sh   (dev profile, as the tests; writes nothing)
set -euo pipefail
cd "$(dirname "$0")/.."
echo "# $(date -u +%F) $(nproc) cores, $(uname -m); PostgreSQL $(psql --version | awk '{print $3}')"
SACRO_PG_FSYNC=on cargo test --locked --test server_study bench_sixteen_readers_committing -- --ignored --nocapture 2>/dev/null \
  | grep -E '^(store|PostgreSQL|SQLite)'
