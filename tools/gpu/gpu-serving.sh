#!/usr/bin/env bash
# Issue 21 on a GPU machine, in one call (prepare here first: node tools/gpu/gpu-check.mjs prepare):
#
#   bash tools/gpu/gpu-serving.sh [BUNDLE] [OUT]
#
# 1. the decode bench at batch 4 x 30k (ArkVale @ 2048), the point the server's steps are set against;
# 2. pnpm bench --server-steps: the server's decode-only steps at 4 x 30k and 64 x 2k (@ 1024), and
#    batch invariance through it at 4, 16 and 64;
# 3. the serving workloads at 40 GB of device KV: shared-doc and multi-turn (ArkVale @ 512), long
#    (Full and ArkVale @ 512);
# 4. the hostile load at 30k tokens;
# and, after step 2, the Qwen2 fixture and its golden outputs from transformers
# (tools/peers/make_qwen2_fixture.py), to be copied back into models/tiny-qwen2.
# Each step has its own time limit (about 590 s in all, within a device call's 600), so that the
# call returns what finished. JSON and logs go to OUT.
set -uo pipefail
bundle="$(cd "${1:-.gpu/bundle}" && pwd)"
# The bundle travels gzipped (gpu-check.mjs prepare): unpack it once.
find "$bundle" -name "*.gz" -exec gunzip -f {} +
out="${2:-${OUT:-/tmp/arkvale-gpu-serving}}"
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/card.txt"
# The launcher unpacks Node; the benches then run on the bundle's Node and addons.
"$bundle/arkvale" inspect gpu > "$out/inspect.txt" 2>&1
export ARKVALE_CPU_ADDON="$bundle/build/Release/arkvale_cpu.node" ARKVALE_CUDA_ADDON="$bundle/build/Release/arkvale_cuda.node"
node="$bundle/node"
step() { # NAME SECONDS COMMAND...
  local name=$1 limit=$2 start=$SECONDS
  shift 2
  timeout "$limit" "$@" > "$out/$name.json" 2> "$out/$name.log"
  echo "== $name: rc $? in $((SECONDS - start)) s"
  grep -vE '^\s*$' "$out/$name.log" | tail -6
}
step decode-b4 60 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --page-size 32 --contexts 30720 --plans arkvale@2048 --steps 32 --warmup 32
step server-steps 150 "$node" "$bundle/bench.mjs" --server-steps --shape llama2-7b --backend cuda --plans arkvale@2048 --points 4x30720,64x2048@1024 --invariance 4,16,64 --invariance-context 1024
# Quick, and needed for the Qwen2 golden test: before the long steps.
start=$SECONDS
timeout 60 python3 "$(dirname "$0")/../peers/make_qwen2_fixture.py" "$out/tiny-qwen2" > "$out/qwen2-fixture.log" 2>&1
echo "== qwen2-fixture: rc $? in $((SECONDS - start)) s"
tail -2 "$out/qwen2-fixture.log"
step doc-turns 150 "$node" "$bundle/bench.mjs" --serving --shape llama2-7b --backend cuda --workloads shared-doc,multi-turn --plans arkvale@512 --kv-gb 40
step long 100 "$node" "$bundle/bench.mjs" --serving --shape llama2-7b --backend cuda --workloads long --plans full,arkvale@512 --requests 4 --kv-gb 40
step hostile 70 "$node" "$bundle/hostile-load.mjs" --shape llama2-7b --backend cuda --requests 200 --context 30720
