#!/usr/bin/env bash
# The Llama-2-7B-shape decode benchmark and its PyTorch peers, in one call on the GPU
# machine (prepare the bundle here first: node tools/scripts/gpu-check.mjs prepare):
#
#   bash tools/scripts/gpu-decode-bench.sh [BUNDLE] [OUT]
#
# decode-bench.mjs (the engine: prefill and decode per plan, the HBM floor, host
# synchronisations per step, the card's copy and cuBLAS rates), then
# gpu_decode_peer.py (flash SDPA eager and as a CUDA graph, transformers'
# LlamaForCausalLM) at the same shape, batch and contexts. JSON to OUT.
set -uo pipefail
bundle="$(cd "${1:-.gpu/bundle}" && pwd)"
out="${2:-${OUT:-/tmp/arkvale-decode-bench}}"
mkdir -p "$out"
contexts="${ARKVALE_CONTEXTS:-10240,20480,30720}"
"$bundle/arkvale" inspect gpu > "$out/inspect.txt" 2>&1 # also unpacks the bundle's Node
export ARKVALE_CPU_ADDON="$bundle/build/Release/arkvale_cpu.node" ARKVALE_CUDA_ADDON="$bundle/build/Release/arkvale_cuda.node"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
status=0
start=$SECONDS
timeout 330 "$bundle/node" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --contexts "$contexts" --plans full,arkvale@2048 \
  --page-size 32 --steps 12 --out "$out/decode.json" > /dev/null || status=1
echo "== decode-bench $(( SECONDS - start )) s"
start=$SECONDS
timeout 200 python3 tools/scripts/gpu_decode_peer.py --batch 4 --contexts "$contexts" --steps 12 --transformers --out "$out/peer.json" || status=1
echo "== peers $(( SECONDS - start )) s"
exit $status
