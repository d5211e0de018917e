#!/usr/bin/env bash
# The GPU check of the CUDA backend, run on the GPU machine from the repository root
# (prepare it here first: node tools/gpu/gpu-check.mjs prepare):
#
#   bash tools/gpu/gpu-check.sh [BUNDLE] [OUT]
#
# 0. the addon's runtime (allocator, staging ring, copies, events, cuBLAS, graphs, errors);
# 1. every Backend operation of the CUDA backend against the reference backend on
#    fresh random inputs (arkvale selftest: f16 and bf16, the default kernel matrix's
#    head dims, page sizes and GQA groups, ragged batches, every digest variant,
#    outputs poisoned with NaN), the bundled model and the Qwen2 fixture against their
#    golden.json, and the bundled model's answers from the prefix cache against whole prompts;
# 2. arkvale serve on the GPU (two completions and a clean stop, with and without CUDA
#    graphs, the same text), pnpm bench on CUDA beside
#    the CPU and reference backends, the main job (a 3k-token passkey prompt under
#    ArkVale) with its speeds, and the two-phase passkey evaluation at 10k, 20k and
#    30k tokens for every policy, its answers compared with tools/baselines/passkey-cuda-h200.json.
# Results go to OUT (default $OUT, else /tmp/arkvale-gpu-check); exit code 1 on a failure.
# ARKVALE_EVAL_ARGS adds options to the evaluation; ARKVALE_EVAL_SECONDS caps its time.
set -uo pipefail
bundle="$(cd "${1:-.gpu/bundle}" && pwd)"
# The bundle travels gzipped (gpu-check.mjs prepare): unpack it once.
find "$bundle" -name "*.gz" -exec gunzip -f {} +
out="${2:-${OUT:-/tmp/arkvale-gpu-check}}"
mkdir -p "$out"
arkvale="$bundle/arkvale"
status=0
run() {
  echo "== $*"
  local start=$SECONDS
  "$@" || status=1
  echo "== $(( SECONDS - start )) s"
}
run nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
run "$arkvale" inspect gpu
# The launcher has unpacked Node and points the loaders at the bundle's addons.
run env ARKVALE_CUDA_ADDON="$bundle/build/Release/arkvale_cuda.node" "$bundle/node" "$bundle/addon-selftest.mjs"
run "$arkvale" selftest --model models/tiny-retrieval models/tiny-qwen2 --json "$out/selftest.json"
# The server on the GPU: two concurrent completions, then a clean stop (its pages all
# free); once with decode steps replayed as CUDA graphs, once without: the same text.
serve_smoke() { # GRAPHS (1 or 0)
  local port=$((18760 + $1)) pid ok=0 requests=()
  ARKVALE_CUDA_GRAPHS=$1 "$arkvale" serve --backend cuda --port $port --device-pages 2048 --policy arkvale --budget 64 --page-size 16 > "$out/serve-graphs$1.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do grep -q 'ready' "$out/serve-graphs$1.log" && break; sleep 0.2; done
  for prompt in "The old farmer painted" "Once upon a time in a small village"; do
    curl -sf localhost:$port/v1/completions -H 'content-type: application/json' \
      -d "{\"model\": \"tiny-retrieval\", \"prompt\": \"$prompt\", \"max_tokens\": 48, \"temperature\": 0}" > "$out/serve-graphs$1-${#prompt}.json" &
    requests+=($!)
  done
  for r in "${requests[@]}"; do wait "$r" || ok=1; done
  kill -TERM $pid; wait $pid
  cat "$out/serve-graphs$1.log"
  return $ok
}
same_text() { # the completions' texts with graphs and without
  local f ok=0
  for f in "$out"/serve-graphs1-*.json; do
    "$bundle/node" -e 'const [a, b] = process.argv.slice(1).map((f) => JSON.parse(require("fs").readFileSync(f, "utf8")).choices[0].text); console.log(JSON.stringify(a)); process.exit(a === b ? 0 : 1)' "$f" "${f/graphs1-/graphs0-}" || ok=1
  done
  return $ok
}
run serve_smoke 1
run serve_smoke 0
run same_text
run env ARKVALE_CPU_ADDON="$bundle/build/Release/arkvale_cpu.node" ARKVALE_CUDA_ADDON="$bundle/build/Release/arkvale_cuda.node" \
  "$bundle/node" "$bundle/bench.mjs" --backend cuda --out "$out/bench-cuda.json"
run "$arkvale" generate -f examples/passkey-3000.txt --backend cuda --policy arkvale --budget 512 --page-size 32 -n 8
# The JSON is rewritten after every row: a run cut short by ARKVALE_EVAL_SECONDS keeps its rows.
run timeout "${ARKVALE_EVAL_SECONDS:-3600}" "$arkvale" eval passkey --backend cuda --lengths 10240,20480,30720 --budgets 512,1024,2048 --page-size 32 \
  --json "$out/passkey-cuda.json" ${ARKVALE_EVAL_ARGS:-}
# The same prompts' answers against the last accepted run on an H200 (exit code 1 when
# any changed; a deliberate change of numerics replaces the baseline file).
run "$arkvale" eval compare tools/baselines/passkey-cuda-h200.json "$out/passkey-cuda.json" --json "$out/passkey-compare.json"
exit $status
