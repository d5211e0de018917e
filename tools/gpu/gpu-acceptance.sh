#!/usr/bin/env bash
# Every acceptance number of the 7B decode benchmark (issue 9) from one run on one GPU,
# and the verdict on each line. On the GPU machine, from the repository root, after
# node tools/gpu/gpu-check.mjs prepare here (about 7 minutes on an H200):
#
#   bash tools/gpu/gpu-acceptance.sh [BUNDLE] [OUT]
#
# 1. gpu-decode-bench.sh at 30720 tokens (parts decode, throughput, peers): Full and
#    ArkVale at batch 4, pages of 32, as graphs and eager, a profiled run of each for
#    the stage split, the HBM floor, syncs per step and the prefill's rate against
#    cuBLAS; the largest batch of Full and of ArkVale @ 512 under a 40 GB KV limit;
#    PyTorch's SDPA (eager and as a graph) and transformers at the same point;
# 2. gpu-check.sh: the addon's runtime, arkvale selftest against the reference backend,
#    serving, and the passkey table compared with tools/baselines/passkey-cuda-h200.json;
# 3. acceptance-verdict.mjs: each line against its threshold, into OUT/acceptance.md.
# Exit code 1 when any part fails or any line does not hold.
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bundle="${1:-.gpu/bundle}"
if [ ! -x "$bundle/arkvale" ]; then
  echo "gpu-acceptance.sh: no bundle at $bundle (make it with node tools/gpu/gpu-check.mjs prepare, then carry it here)" >&2
  exit 2
fi
bundle="$(cd "$bundle" && pwd)"
# The bundle travels gzipped (gpu-check.mjs prepare): unpack it once.
find "$bundle" -name "*.gz" -exec gunzip -f {} +
out="${2:-${OUT:-/tmp/arkvale-acceptance}}"
mkdir -p "$out"
status=0
part() { # NAME COMMAND...: its output to OUT/NAME.log
  local name=$1 start=$SECONDS
  shift
  "$@" > "$out/$name.log" 2>&1 || status=1
  echo "== $name $(( SECONDS - start )) s"
}
ARKVALE_BENCH_PARTS="decode throughput peers" ARKVALE_CONTEXTS=30720 part bench bash "$here/gpu-decode-bench.sh" "$bundle" "$out/bench"
part check bash "$here/gpu-check.sh" "$bundle" "$out/check"
"$bundle/node" "$here/acceptance-verdict.mjs" "$out" || status=1
exit $status
