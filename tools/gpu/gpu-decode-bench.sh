#!/usr/bin/env bash
# The Llama-2-7B-shape decode benchmark and its PyTorch peers, in one call on the GPU
# machine (prepare the bundle here first: node tools/gpu/gpu-check.mjs prepare):
#
#   bash tools/gpu/gpu-decode-bench.sh [BUNDLE] [OUT]
#
# decode-bench.mjs (tools/bench/, run from the bundle; the engine: prefill and decode
# per plan, the HBM floor, host synchronisations per step, the card's copy and cuBLAS
# rates) for Full and ArkVale, both again on independent random weights, the other
# policies at the longest context, then tools/peers/gpu_decode_peer.py (flash SDPA eager
# and as a CUDA graph, transformers' LlamaForCausalLM) at the same shape, batch and
# contexts. JSON to OUT, and the chart OUT/decode.svg (tools/bench/decode-chart.mjs).
# ARKVALE_BENCH_PARTS picks parts (default "decode host policies peers"; also "matrix":
# batch 1 and 8, budgets 1024 and 4096, pages of 16, at the longest context; and
# "throughput": throughput-bench.mjs, the largest batch under a 40 GB KV limit at the
# longest context, Full against ArkVale @ 512).
set -uo pipefail
tools="$(cd "$(dirname "$0")/.." && pwd)" # tools/ of this checkout: the peers and the chart run from here
bundle="$(cd "${1:-.gpu/bundle}" && pwd)"
# The bundle travels gzipped (gpu-check.mjs prepare): unpack it once.
find "$bundle" -name "*.gz" -exec gunzip -f {} +
out="${2:-${OUT:-/tmp/arkvale-decode-bench}}"
mkdir -p "$out"
contexts="${ARKVALE_CONTEXTS:-10240,20480,30720}"
"$bundle/arkvale" inspect gpu > "$out/inspect.txt" 2>&1 # also unpacks the bundle's Node
export ARKVALE_CPU_ADDON="$bundle/build/Release/arkvale_cpu.node" ARKVALE_CUDA_ADDON="$bundle/build/Release/arkvale_cuda.node"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
status=0
# Untimed steps before the timed ones, the same for the engine and the peers: V8 compiles
# a step's JavaScript to its final form over a few dozen steps (tools/bench/host-overhead.mjs
# shows the host's share of a step settling after about 40).
warmup="${ARKVALE_BENCH_WARMUP:-32}"
# Timed steps per point: one page of steps, so that the mean includes the steps where a page starts or fills (run without the graph).
steps="${ARKVALE_BENCH_STEPS:-32}"
parts=" ${ARKVALE_BENCH_PARTS:-decode host policies peers} "
want() { [[ "$parts" == *" $1 "* ]]; }
bench() { # NAME SECONDS ARGS...: one decode-bench run to OUT/NAME.json
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  timeout "$limit" "$bundle/node" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --page-size 32 --steps "$steps" --warmup "$warmup" "$@" --out "$out/$name.json" > /dev/null || status=1
  echo "== $name $(( SECONDS - start )) s"
}
# Full and ArkVale (embeddings with a shared component: see decode-bench.mjs), replayed as
# CUDA graphs and (":eager") issued launch by launch, with a profiled run of each point
# for the per-stage split. Every row is written as it is measured, so a part cut short
# by its time limit keeps its rows.
want decode && bench decode 300 --contexts "$contexts" --plans full,arkvale@512,arkvale@2048,full:eager,arkvale@2048:eager --profile 1
# The same ArkVale step selecting on the host (estimates read, policy.decide): what the device path saves.
want host && bench decode-host 70 --contexts "${contexts##*,}" --plans arkvale@2048:host
# The other policies on the same pages and kernels, at the longest context. H2O last: its
# prefill statistic (every query's attention summed per key) is O(T^2) work per layer, a
# second tensor-core pass over the prefill's lse (prefill_key_sums); its row's prefill
# "of cuBLAS" is issue 23's 0.35 line (the CUDA-core pass before it gave 0.05, 76.5 s).
want policies && bench decode-policies 200 --contexts "${contexts##*,}" --plans streaming-llm@2048,tova@2048,quest@2048,h2o@2048
if want matrix; then
  long="${contexts##*,}"
  bench matrix-batch1 60 --contexts "$long" --plans full,arkvale@2048 --batch 1
  bench matrix-batch8 70 --contexts "$long" --plans arkvale@2048,full --batch 8
  bench matrix-budgets 60 --contexts "$long" --plans arkvale@4096,arkvale@1024
  bench matrix-pages16 40 --contexts "$long" --plans arkvale@2048 --page-size 16
fi
if want throughput; then
  start=$SECONDS
  # Four pages of timed steps: a rate, not one step's luck (each page has its eager and
  # recorded steps, and a GC pause lands in some pages; decode is a small part of this part's time).
  timeout 420 "$bundle/node" "$bundle/throughput-bench.mjs" --backend cuda --context "${contexts##*,}" --kv-gb 40 --plans full,arkvale@512 --warmup "$warmup" --steps $((4 * steps)) \
    --out "$out/throughput.json" > /dev/null || status=1
  echo "== throughput $(( SECONDS - start )) s"
fi
if [ -n "${ARKVALE_BENCH_IID:-}" ]; then
  # Independent random weights: no attention locality, so ArkVale recalls most of its top-k every step.
  bench decode-iid 100 --contexts "${contexts%%,*},${contexts##*,}" --plans full,arkvale@2048 --shared-embedding 0
fi
if [ -n "${ARKVALE_BENCH_CPU_PROFILE:-}" ]; then
  # Where the host's time goes in an ArkVale step (a V8 CPU profile, for chrome://inspect or speedscope).
  start=$SECONDS
  timeout 60 "$bundle/node" --cpu-prof --cpu-prof-dir "$out/cpu-profile" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --page-size 32 --steps 40 \
    --contexts "${contexts%%,*}" --plans arkvale@2048 --out "$out/decode-profiled.json" > /dev/null || status=1
  echo "== cpu profile $(( SECONDS - start )) s"
fi
want peers || exit $status
start=$SECONDS
timeout 120 python3 "$tools/peers/gpu_decode_peer.py" --batch 4 --contexts "$contexts" --steps "$steps" --warmup "$warmup" --transformers --out "$out/peer.json" || status=1
echo "== peers $(( SECONDS - start )) s"
# The chart of the run: latency against context per system, and the profiled stages as stacked bars.
[ -f "$out/decode.json" ] && { "$bundle/node" "$tools/bench/decode-chart.mjs" "$out" || status=1; }
exit $status
