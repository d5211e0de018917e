#!/usr/bin/env bash
# Issue 21 on a GPU machine (prepare here first: node tools/gpu/gpu-check.mjs prepare):
#
#   bash tools/gpu/gpu-serving.sh [BUNDLE] [OUT] [steps|load|next|all|NAME,NAME...]
#
# steps (one device call):
#   1. the decode bench at 4 x 30k and 16 x 7.5k (ArkVale @ 2048) and 64 x 2k (@ 1024), the points
#      the server's steps are set against;
#   2. pnpm bench --server-steps: the server's decode-only steps at the same points, and batch
#      invariance through it at 4, 16 and 64;
#   3. the Qwen2 fixture and its golden outputs from transformers (tools/peers/make_qwen2_fixture.py),
#      to be copied back into models/tiny-qwen2;
#   4. the long workload at 40 GB of device KV (Full and ArkVale @ 512).
# load (another call): the shared-doc and multi-turn workloads (ArkVale @ 512, 40 GB), then the
#   hostile load at 30k tokens.
# fp8-throughput: issue 22's throughput line (ArkVale @ 512 in fp8 against Full in f16, 30k, 40 GB).
# long-context: issue 22's points (Llama-3-8B shape to 128k, batch 1 and 4; fp8 pages against f16).
# tensor-parallel: issue 25 on one GPU: the 7B shape at 4k tokens split over 1, 2 and 4 ranks sharing it (the same tokens).
# direct: the self-test, Quest against ArkVale, direct against checked replays at batch 4 and batch 1 (issue 22's host cost).
# h200: what needs an H200 (QUEST_BATCH=4 LONG_B4_PLANS=arkvale@4096,full): Quest at 4 x 30k, 128k at batch 4 with the peer.
# next: what is still unrun (arkvale selftest in f16 with the Qwen2 golden, the hostile load, 16 x 7.5k,
#   the server steps with invariance, multi-turn, shared-doc, Quest on the device against ArkVale).
# batch-one: the self-test, batch 1 at 30k (7B) and 128k (8B), and both under Nsight Compute.
# gemv: the self-test, then batch 1 at 30k (7B) and 128k (8B) with the decode products through gemv and through
#   cuBLAS, then one causal-prefill launch under Nsight Compute (issue 22).
# prefill-stages: the self-test with two-stage causal_prefill, a 128k prefill (8B) with one stage and with two,
#   one two-stage launch under Nsight Compute, then a whole 128k prefill kernel by kernel (issue 22).
# prefill-softmax: the self-test, then the 128k prefill with one stage and with two (after the softmax's trims).
# stream-gemm: the self-test, every decode product through every product kernel (products-bench.mjs), then batch 1
#   at 128k (8B) with stream_gemm and with gemv (issue 22). stream-gemm-steps: batch 1 and 4 at 30k (7B) with it and without.
# h200-b4: 128k at batch 4 on the 8B shape, then the SDPA peer at the same work (issue 22; run with
#   LONG_B4_PLANS=arkvale@4096 on an H200). Not with ARKVALE_GEMV=1: at 4 rows gemv reads o and down at 2.6-3x the
#   floor, cuBLAS padded to 64 rows at 1.16-1.26x (products-bench.mjs, ninth session).
# pdl: the self-test with kernels launched as programmatic dependents, then the decode step with and without (issue 22).
# estimate-chunks (estimate-chunks-h200 on an H200): the thirteenth session's tree (estimate-chunks ran in the fourteenth): the self-test,
#   4 x 128k, batch 1 at 128k (8B) and 30k (7B), then the per-layer kernels under Nsight Compute (issue 22).
# host-issue (host-issue-h100 on an H100): the self-test, overlapped steps against serial ones at batch 1 (30k 7B,
#   128k 8B) and 4 x 128k (8B) with the peer (an H200), and a CPU profile of batch-1 steps at 30k (fifteenth session).
# select-held: one 4 x 128k step (8B) kernel by kernel under Nsight Compute, then the step (the fourteenth session's
#   select_resident, whose timing ncu-b4-detail did not finish).
# ncu: issue 22's kernels one by one under Nsight Compute (batch 1 at 30k on 7B and 128k on 8B, batch 4 at 128k,
#   a whole 128k prefill); sum each CSV with tools/gpu/ncu-summary.mjs.
# Or a list of the steps' names, run in that order. Each step has its own time limit (within a
# device call's 600 s), so that the call returns what finished. JSON and logs go to OUT/results, packed after each step into OUT/results.tgz (a device
# call returns a few files only).
set -uo pipefail
bundle="$(cd "${1:-.gpu/bundle}" && pwd)"
# The bundle travels gzipped (gpu-check.mjs prepare): unpack it once.
find "$bundle" -name "*.gz" -exec gunzip -f {} +
dest="${2:-${OUT:-/tmp/arkvale-gpu-serving}}"
out="$dest/results"
mkdir -p "$out"
pack() { tar czf "$dest/results.tgz.part" -C "$dest" results && mv "$dest/results.tgz.part" "$dest/results.tgz"; }
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/card.txt"
# The launcher unpacks Node; the benches then run on the bundle's Node and addons.
"$bundle/arkvale" inspect gpu > "$out/inspect.txt" 2>&1
export ARKVALE_CPU_ADDON="$bundle/build/Release/arkvale_cpu.node" ARKVALE_CUDA_ADDON="$bundle/build/Release/arkvale_cuda.node"
node="$bundle/node"
group="${3:-all}"
case "$group" in
  all) group=qwen2-fixture,decode-b4,decode-b16,decode-b64,server-steps,shared-doc,multi-turn,long,hostile ;;
  steps) group=qwen2-fixture,decode-b4,decode-b16,decode-b64,server-steps,long ;;
  load) group=shared-doc,multi-turn,hostile ;;
  # What the third session of 2026-12-06 left unrun: the kernels and the Qwen2 golden on CUDA, then the lines after its fixes.
  next) group=selftest,hostile,decode-b16,server-steps,multi-turn,shared-doc,decode-quest ;;
  # Issue 22 on an H100 (on an H200 add long-peer-b4, with LONG_B4_PLANS=arkvale@4096,full).
  # Issue 23 (with the self-test first: its token-eviction and key-sum checks).
  policies) group=selftest,decode-policies,passkey-policies,passkey-baseline ;;
  fp8-throughput) group=throughput-full,throughput-fp8 ;;
  # The fifth session's first call: the self-test (direct replays against the golden tokens), Quest at 4 x 30k, the host cost.
  direct) group=selftest,decode-quest,decode-direct,decode-direct-b1 ;;
  # What the fifth session left for an H200 (run with QUEST_BATCH=4 LONG_B4_PLANS=arkvale@4096,full): Quest at 4 x 30k
  # (issue 23), then 128k at batch 4 with the SDPA peer (issue 22).
  h200) group=decode-quest,long-b4,long-peer-b4 ;;
  long-context) group=long-b1,long-b1-7b,long-peer-b1,decode-b4,fp8-speed,long-b4 ;;
  tensor-parallel) group=tp-1,tp-2,tp-4 ;;
  # Issue 22's batch-1 lines after the seventh session's argmax and merge (the self-test checks them first).
  batch-one) group=selftest,pdl-on-b1,pdl-on-b1-8b,ncu-b1,ncu-b1-8b ;;
  pdl) group=selftest-pdl,pdl-off-b1,pdl-on-b1,pdl-off-b1-8b,pdl-on-b1-8b,pdl-off-b4,pdl-on-b4 ;;
  ncu) group=ncu-attention,ncu-b1,ncu-b1-8b,ncu-prefill,ncu-b4-8b ;;
  # The eighth session's first call: the self-test (gemv, the 128-row causal prefill), gemv against cuBLAS at batch 1,
  # and the new prefill kernel under Nsight Compute.
  gemv) group=selftest,gemv-off-b1,gemv-on-b1,gemv-off-b1-8b,gemv-on-b1-8b,ncu-attention ;;
  # The eighth session's second call: causal_prefill with two K/V stages against one, and a 128k prefill kernel by kernel.
  prefill-stages) group=selftest-s2,prefill-s1,prefill-s2,ncu-attention-s2,ncu-prefill ;;
  # Its third: the same after the softmax's trims (the self-test, both stages at 128k).
  prefill-softmax) group=selftest-s2,prefill-s1,prefill-s2 ;;
  h200-b4) group=long-b4,long-peer-b4 ;;
  # The eleventh session's first call: the ballot count's select_resident in the whole step, then the per-layer kernels' limits.
  layer-kernels) group=ncu-b4-8b,long-b4,ncu-b4-detail ;;
  # The twelfth session: the per-layer kernels' stall reasons, then paged_decode's splits of 512 and 256 at 4 x 64k.
  budgeted-splits) group=ncu-b4-detail,ncu-b4-64k-s512,ncu-b4-64k-s256 ;;
  # Its tuned products: the products alone, then 4 x 128k with and without them (call 2: ARKVALE_TUNED_PRODUCTS=1 then
  # named long-b4-tuned, with its self-test; the default since), then batch 1 at 128k (8B) and 30k (7B) with and without.
  tuned-products) group=selftest,products-tuned,long-b4,long-b4-untuned ;;
  tuned-b1) group=gemv-off-b1-8b,gemv-off-b1-8b-untuned,gemv-off-b1,gemv-off-b1-untuned ;;
  # The thirteenth session's tree, never run: the self-test (estimate's box chunks against the reference), 4 x 128k
  # (tuned products by default), batch 1 at 128k (8B) and 30k (7B), then the per-layer kernels' stall reasons.
  # On an H200 (SELFTEST_MODELS=models/tiny-retrieval LONG_B4_PLANS=arkvale@4096) use estimate-chunks-h200.
  estimate-chunks) group=selftest,long-b4,gemv-off-b1-8b,gemv-off-b1,ncu-b4-detail ;;
  estimate-chunks-h200) group=selftest,long-b4,long-peer-b4,gemv-off-b1-8b,gemv-off-b1 ;;
  # The fourteenth session's tree kernel by kernel: select_resident with its candidates held in registers and
  # estimate_rows with box chunks (Nsight Compute's times of one 4 x 128k step, 8B), then the step itself.
  select-held) group=ncu-b4-8b,long-b4 ;;
  host-issue) group=selftest,overlap-b1,overlap-b1-8b,long-b4-overlap,long-peer-b4,cpu-prof-b1 ;;
  host-issue-h100) group=selftest,overlap-b1,overlap-b1-8b,cpu-prof-b1,long-b4-overlap ;;
  # The ninth session's first call: the self-test (stream_gemm against the reference and cuBLAS, row invariance), every
  # decode product through every kernel, then batch 1 at 128k (8B) with stream_gemm and with gemv.
  stream-gemm) group=selftest,products,stream-on-b1-8b,gemv-on-b1-8b ;;
  # Its second: batch 1 at 30k (7B) and batch 4 at 30k with stream_gemm against the default (cuBLAS padded to 64 rows).
  ncu-products) group=ncu-products-cublas,ncu-products-gemv,ncu-products-stream ;;
  stream-gemm-steps) group=stream-on-b1,gemv-off-b1,stream-on-b4,stream-off-b4 ;;
  # The tenth session's first call: the self-test (select_resident's groups searching together, paged_decode merging
  # its own splits), 128k at batch 4, the same step at 32k with paged_decode's splits of 512, 256 and 128 tokens, and
  # batch 1 at 128k (8B) and at 30k (7B).
  splits) group=selftest,long-b4,split-512-b4,split-256-b4,split-128-b4,gemv-off-b1-8b,gemv-off-b1 ;;
esac
# Each step: its time limit and command, run in the order the list gives.
declare -A limit cmd
add() { local name=$1; limit[$name]=$2; shift 2; cmd[$name]="$*"; }
add selftest 150 "$bundle/arkvale" selftest --dtype f16 --model ${SELFTEST_MODELS:-models/tiny-retrieval models/tiny-qwen2} --json "$out/selftest-f16.json"
add qwen2-fixture 60 python3 "$(dirname "$0")/../peers/make_qwen2_fixture.py" "$out/tiny-qwen2"
add decode-b4 60 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --page-size 32 --contexts 30720 --plans arkvale@2048 --steps 32 --warmup 32
# Issue 23: Quest selecting on the device against ArkVale, one run (all of Quest's KV stays on the device: 63 GB at 4 x 30k,
# which an H100 cannot hold beside the weights: QUEST_BATCH=3 there).
add decode-quest 120 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch "${QUEST_BATCH:-4}" --page-size 32 --contexts 30720 --plans arkvale@2048,quest@2048 --steps 32 --warmup 32
# Issue 22's host cost: the same ArkVale step with direct replays (the forward pass's JavaScript skipped) and with
# every replay checked call by call, at 4 x 30k and at batch 1 (7B), one run.
add decode-direct 150 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --page-size 32 --contexts 30720 --plans arkvale@2048,arkvale@2048:checked --steps 64 --warmup 32
add decode-direct-b1 120 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 1 --page-size 32 --contexts 30720 --plans full,arkvale@2048,arkvale@2048:checked --steps 64 --warmup 32
add decode-b16 50 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 16 --page-size 32 --contexts 7680 --plans arkvale@2048 --steps 32 --warmup 32
add decode-b64 50 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 64 --page-size 32 --contexts 2048 --plans arkvale@1024 --steps 32 --warmup 32 --prefill-rows 8192
add server-steps 200 "$node" "$bundle/bench.mjs" --server-steps --shape llama2-7b --backend cuda --plans arkvale@2048 --points "${SERVER_POINTS:-4x30720,16x7680,64x2048@1024}" --invariance 4,16,64 --invariance-context 1024
add shared-doc 200 "$node" "$bundle/bench.mjs" --serving --shape llama2-7b --backend cuda --workloads shared-doc --plans arkvale@512 --kv-gb 40
add multi-turn 250 "$node" "$bundle/bench.mjs" --serving --shape llama2-7b --backend cuda --workloads multi-turn --plans arkvale@512 --kv-gb 40
add long 100 "$node" "$bundle/bench.mjs" --serving --shape llama2-7b --backend cuda --workloads long --plans full,arkvale@512 --requests 4 --kv-gb 40
# Issue 22 (long context, fp8 pages). Batch 1 at the Llama-3-8B shape to 128k (Full's 16 GB fit an H100), and at the 7B shape at 30k.
add long-b1 240 "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 1 --page-size 32 --contexts 32768,65536,131072 --plans full,arkvale@2048,arkvale@4096 --steps 32 --warmup 32
add long-b1-7b 60 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 1 --page-size 32 --contexts 30720 --plans full,arkvale@2048 --steps 32 --warmup 32
add long-peer-b1 150 python3 "$(dirname "$0")/../peers/gpu_decode_peer.py" --shape llama3-8b --batch 1 --contexts 32768,65536,131072 --steps 32 --warmup 32
# Batch 4 at 128k: ArkVale alone on an H100 (Full's 64 GB of KV beside 16 GB of weights need an H200: LONG_B4_PLANS=arkvale@4096,full there).
add long-b4 240 "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 131072 --plans "${LONG_B4_PLANS:-arkvale@4096}" --steps 32 --warmup 32
# The same 128k batch-4 step with a profiled run after it (device time per stage): ArkVale alone fits an H100.
add long-b4-profile 300 "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 131072 --plans arkvale@4096 --steps 32 --warmup 32 --profile 1
add long-peer-b4 150 python3 "$(dirname "$0")/../peers/gpu_decode_peer.py" --shape llama3-8b --batch 4 --contexts 131072 --steps 32 --warmup 32
# FP8 pages against f16 ones, the same step (7B, 4 x 30k, ArkVale @ 2048), one after the other in one call.
add fp8-speed 120 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 4 --page-size 32 --contexts 30720 --plans arkvale@2048 --kv-dtype fp8 --steps 32 --warmup 32
# FP8 accuracy: the two-phase passkey table (bundled model, 10k-30k) for Full and ArkVale with f16 pages, then fp8 pages, then compared.
passkey="$bundle/arkvale eval passkey --backend cuda --lengths 10240,20480,30720 --budgets 512,1024,2048 --policies arkvale --page-size 32 --depths ${PASSKEY_DEPTHS:-20}"
add passkey-f16 200 "$passkey" --json "$out/passkey-f16-table.json"
add passkey-fp8 200 "$passkey" --kv-dtype fp8 --json "$out/passkey-fp8-table.json"
add passkey-compare 20 "$bundle/arkvale" eval compare "$out/passkey-f16-table.json" "$out/passkey-fp8-table.json"
# Issue 23: every policy at 4 x 30k in one run (all decide on the device; Quest keeps every page resident, which an
# H100 cannot hold at batch 4: POLICY_BATCH=3 there), and the passkey table for every policy against the H200 baseline.
add decode-policies 240 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch "${POLICY_BATCH:-4}" --page-size 32 --contexts 30720 --plans arkvale@2048,streaming-llm@2048,tova@2048,h2o@2048,quest@2048 --steps 32 --warmup 32 --profile "${POLICY_PROFILE:-0}"
add passkey-policies 300 "$bundle/arkvale" eval passkey --backend cuda --lengths 10240,20480,30720 --budgets 512,1024,2048 --page-size 32 --json "$out/passkey-cuda.json"
add passkey-baseline 20 "$bundle/arkvale" eval compare "$(dirname "$0")/../baselines/passkey-cuda-h200.json" "$out/passkey-cuda.json"
# FP8 throughput (issue 22): ArkVale @ 512 with fp8 pages against Full with f16 pages at 30k under 40 GB of device KV,
# each the largest batch its pools hold, one after the other in one call.
add throughput-full 280 "$node" "$bundle/throughput-bench.mjs" --backend cuda --context 30720 --kv-gb 40 --plans full --warmup 32 --steps 128
add throughput-fp8 280 "$node" "$bundle/throughput-bench.mjs" --backend cuda --context 30720 --kv-gb 40 --plans arkvale@512 --kv-dtype fp8 --warmup 32 --steps 128
add hostile 90 "$node" "$bundle/hostile-load.mjs" --shape llama2-7b --backend cuda --requests 200 --context 30720
# Issue 25 on one GPU: the 7B shape split over 2 and 4 ranks sharing the GPU (all-reduces through the host, no graphs),
# each against one rank in the same run: the first tokens of each point should agree (decode-bench's firstTokens).
tp="$bundle/decode-bench.mjs --backend cuda --batch 1 --page-size 32 --contexts 4096 --plans full,arkvale@2048 --steps 8 --warmup 0"
add tp-1 90 "$node" "$tp" --tensor-parallel 1
add tp-2 150 "$node" "$tp" --tensor-parallel 2
add tp-4 150 "$node" "$tp" --tensor-parallel 4
# Issue 22, where a step's time goes: Nsight Compute times every kernel of two decode steps (the decode bench's
# --profiler-steps, graph replays included) or of a whole 128k prefill; tools/gpu/ncu-summary.mjs sums the CSV per kernel.
ncu_bin="${NCU:-$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu 2>/dev/null | head -1)}"
ncu_time="$ncu_bin --clock-control none --cache-control none --csv --page raw --metrics gpu__time_duration.sum,dram__bytes_read.sum,dram__bytes_write.sum"
ncu_decode="$ncu_time --profile-from-start off"
add ncu-b1 150 $ncu_decode --log-file "$out/ncu-b1.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 1 --page-size 32 --contexts 30720 --plans arkvale@2048 --steps 16 --warmup 32 --profiler-steps 2
add ncu-b1-8b 200 $ncu_decode --log-file "$out/ncu-b1-8b.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 1 --page-size 32 --contexts 131072 --plans arkvale@4096 --steps 16 --warmup 32 --profiler-steps 2
add ncu-b4-8b 300 $ncu_decode --log-file "$out/ncu-b4-8b.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 131072 --plans arkvale@4096 --steps 16 --warmup 32 --profiler-steps 1
# The 4 x 64k step (8B) timed kernel by kernel with paged_decode's splits of 512 tokens (the default) and of 256: whether
# the budgeted layers' 256 blocks (a third of an H100's slots at 4 blocks an SM) gain from twice as many, and what the
# full layers' longer merges cost.
ncu_b4_64k="$ncu_decode --kernel-name 'regex:paged_decode|estimate_rows|select_resident' $node $bundle/decode-bench.mjs --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 65536 --plans arkvale@4096 --steps 16 --warmup 32 --profiler-steps 1"
add ncu-b4-64k-s512 150 env ARKVALE_DECODE_SPLIT_TOKENS=512 ${ncu_b4_64k/--profile-from-start/--log-file $out/ncu-b4-64k-s512.csv --profile-from-start}
add ncu-b4-64k-s256 150 env ARKVALE_DECODE_SPLIT_TOKENS=256 ${ncu_b4_64k/--profile-from-start/--log-file $out/ncu-b4-64k-s256.csv --profile-from-start}
add ncu-prefill 200 $ncu_time --log-file "$out/ncu-prefill.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 1 --page-size 32 --contexts 131072 --plans arkvale@4096 --steps 3
# One causal-prefill launch at 16k tokens (8B shape) with the stall reasons and pipe use, to say what limits it.
add ncu-attention 150 $ncu_bin --clock-control none --kernel-name regex:causal_prefill --launch-skip 8 --launch-count 1 --section SpeedOfLight --section WarpStateStats --section ComputeWorkloadAnalysis --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --csv --page details --log-file "$out/ncu-attention.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 1 --page-size 32 --contexts 16384 --plans full --steps 3
# The per-layer kernels of the 4 x 64k step (8B) with stall reasons, memory and occupancy: the first nine launches of
# estimate_rows, select_resident and paged_decode in one profiled step (two full layers, then budgeted ones). Not at
# 128k: replaying a kernel saves and restores the device memory it can reach, and at 4 x 128k on an H100 (72 GB in
# use) the first call ran past 300 s (eleventh session).
add ncu-b4-detail 300 $ncu_bin --clock-control none --profile-from-start off --kernel-name "'regex:estimate_rows|select_resident|paged_decode_f16'" --launch-count 9 --section SpeedOfLight --section WarpStateStats --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats --section SchedulerStats --csv --page details --log-file "$out/ncu-b4-detail.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 65536 --plans arkvale@4096 --steps 16 --warmup 32 --profiler-steps 1
# Issue 22: the generated kernels launched as programmatic dependents (ARKVALE_DEPENDENT_LAUNCH=1) against plain launches,
# the same step one after the other: batch 1 at 30k (7B, Full and ArkVale @ 2048) and at 128k (8B, ArkVale @ 4096), batch 4 at 30k.
pdl_b1="$bundle/decode-bench.mjs --backend cuda --batch 1 --page-size 32 --contexts 30720 --plans full,arkvale@2048 --steps 32 --warmup 32"
pdl_b1_8b="$bundle/decode-bench.mjs --backend cuda --shape llama3-8b --batch 1 --page-size 32 --contexts 131072 --plans arkvale@4096 --steps 32 --warmup 32"
pdl_b4="$bundle/decode-bench.mjs --backend cuda --batch 4 --page-size 32 --contexts 30720 --plans arkvale@2048 --steps 32 --warmup 32"
add selftest-pdl 150 env ARKVALE_DEPENDENT_LAUNCH=1 "$bundle/arkvale" selftest --dtype f16 --model ${SELFTEST_MODELS:-models/tiny-retrieval} --json "$out/selftest-pdl.json"
add pdl-off-b1 90 env ARKVALE_DEPENDENT_LAUNCH=0 "$node" "$pdl_b1"
add pdl-on-b1 90 env ARKVALE_DEPENDENT_LAUNCH=1 "$node" "$pdl_b1"
add pdl-off-b1-8b 120 env ARKVALE_DEPENDENT_LAUNCH=0 "$node" "$pdl_b1_8b"
add pdl-on-b1-8b 120 env ARKVALE_DEPENDENT_LAUNCH=1 "$node" "$pdl_b1_8b"
add pdl-off-b4 90 env ARKVALE_DEPENDENT_LAUNCH=0 "$node" "$pdl_b4"
add pdl-on-b4 90 env ARKVALE_DEPENDENT_LAUNCH=1 "$node" "$pdl_b4"
# Issue 22's batch-1 line: the decode products of up to 4 rows through gemv (ARKVALE_GEMV=1) against cuBLAS (=0),
# the same step one after the other, at 30k (7B, Full and ArkVale @ 2048) and at 128k (8B, ArkVale @ 4096).
add gemv-off-b1 90 env ARKVALE_GEMV=0 "$node" "$pdl_b1"
# Overlapped decode steps (the engine issues a step before reading the last one's tokens) against steps run one by
# one (:serial), one run each: batch 1 at 30k (7B) and 128k (8B), 4 x 128k (8B).
add overlap-b1 100 "$node" "$bundle/decode-bench.mjs" --backend cuda --batch 1 --page-size 32 --contexts 30720 --plans arkvale@2048,arkvale@2048:serial --steps 64 --warmup 32
add overlap-b1-8b 150 "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 1 --page-size 32 --contexts 131072 --plans arkvale@4096,arkvale@4096:serial --steps 64 --warmup 32
add long-b4-overlap 300 "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 131072 --plans arkvale@4096,arkvale@4096:serial --steps 32 --warmup 32
# Where a batch-1 step's host time goes: a CPU profile (sampled every 100 us) of 256 replayed ArkVale steps at 30k (7B).
add cpu-prof-b1 90 "$node" --cpu-prof --cpu-prof-dir "$out/cpu-prof" --cpu-prof-interval 100 "$bundle/decode-bench.mjs" --backend cuda --batch 1 --page-size 32 --contexts 30720 --plans arkvale@2048 --steps 256 --warmup 32
add gemv-on-b1 90 env ARKVALE_GEMV=1 "$node" "$pdl_b1"
add gemv-off-b1-8b 120 env ARKVALE_GEMV=0 "$node" "$pdl_b1_8b"
add gemv-on-b1-8b 120 env ARKVALE_GEMV=1 "$node" "$pdl_b1_8b"
# paged_decode's split size (ARKVALE_DECODE_SPLIT_TOKENS) at the 8B shape, batch 4, 32k: the budgeted layers' 256 blocks
# (8 splits of 512 tokens x 8 KV heads x 4 rows) fill a third of an H100's block slots.
split_b4="$bundle/decode-bench.mjs --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 32768 --plans arkvale@4096 --steps 32 --warmup 32"
add split-512-b4 90 env ARKVALE_DECODE_SPLIT_TOKENS=512 "$node" "$split_b4"
add split-256-b4 90 env ARKVALE_DECODE_SPLIT_TOKENS=256 "$node" "$split_b4"
add split-128-b4 90 env ARKVALE_DECODE_SPLIT_TOKENS=128 "$node" "$split_b4"
# Issue 22's prefill line: causal_prefill with one K/V stage (two barriers a tile) against two (one), at 128k (8B);
# the self-test and one 16k launch under Nsight Compute with two.
add selftest-s2 150 env ARKVALE_PREFILL_STAGES=2 "$bundle/arkvale" selftest --dtype f16 --model ${SELFTEST_MODELS:-models/tiny-retrieval} --json "$out/selftest-s2.json"
add prefill-s1 120 env ARKVALE_GEMV=1 ARKVALE_PREFILL_STAGES=1 "$node" "$pdl_b1_8b"
add prefill-s2 120 env ARKVALE_GEMV=1 ARKVALE_PREFILL_STAGES=2 "$node" "$pdl_b1_8b"
add ncu-attention-s2 150 env ARKVALE_PREFILL_STAGES=2 ${cmd[ncu-attention]/ncu-attention.csv/ncu-attention-s2.csv}
# Issue 22: cuBLAS's decode products with the algorithm timed fastest at each shape's first call (the default since the
# twelfth session; ARKVALE_TUNED_PRODUCTS=0 turns it off): each 7B and 8B product at 1 and 4 rows padded to 64 with
# and without, then the steps of the acceptance lines without it (the default steps above have it).
add products-tuned 120 "$node" "$bundle/products-bench.mjs" --shapes llama3-8b,llama2-7b --rows 1,4 --kernels cublas-padded,cublas-tuned --out "$out/products-tuned.json"
add long-b4-untuned 240 env ARKVALE_TUNED_PRODUCTS=0 ${cmd[long-b4]}
add gemv-off-b1-8b-untuned 120 env ARKVALE_TUNED_PRODUCTS=0 ${cmd[gemv-off-b1-8b]}
add gemv-off-b1-untuned 90 env ARKVALE_TUNED_PRODUCTS=0 ${cmd[gemv-off-b1]}
# Issue 22: the decode products through stream_gemm (ARKVALE_STREAM_GEMM=1): each product alone through every kernel,
# then the decode steps above with it.
add products 200 "$node" "$bundle/products-bench.mjs" --kernels "${PRODUCTS_KERNELS:-cublas,cublas-padded,gemv,stream}" --out "$out/products-bench.json"
# One launch of each kernel's qkv product (8B, one row) under Nsight Compute: what bounds it.
ncu_products="$ncu_bin --clock-control none --kernel-name 'regex:gemm|gemv|sm90|cutlass' --launch-count 1 --section SpeedOfLight --section MemoryWorkloadAnalysis --section MemoryWorkloadAnalysis_Tables --section WarpStateStats --section Occupancy --section LaunchStats --section SchedulerStats --csv --page details"
for k in cublas gemv stream; do
  add "ncu-products-$k" 60 $ncu_products --log-file "$out/ncu-products-$k.csv" "$node" "$bundle/products-bench.mjs" --shapes llama3-8b --rows 1 --kernels "$k" --reps 2
done
# Two estimate_rows launches of a decode step at 4 x 64k (8B) under Nsight Compute: the digest read's rate.
add ncu-estimate 120 $ncu_bin --clock-control none --kernel-name regex:estimate_rows --launch-skip 40 --launch-count 2 --section SpeedOfLight --csv --page details --log-file "$out/ncu-estimate.csv" "$node" "$bundle/decode-bench.mjs" --backend cuda --shape llama3-8b --batch 4 --page-size 32 --contexts 65536 --plans arkvale@4096 --steps 3
add stream-on-b1 90 env ARKVALE_STREAM_GEMM=1 "$node" "$pdl_b1"
add stream-on-b1-8b 120 env ARKVALE_STREAM_GEMM=1 "$node" "$pdl_b1_8b"
add stream-on-b4 90 env ARKVALE_STREAM_GEMM=1 "$node" "$pdl_b4"
add stream-off-b4 90 env ARKVALE_STREAM_GEMM=0 "$node" "$pdl_b4"
IFS=, read -ra names <<< "$group"
for name in "${names[@]}"; do
  [ -n "${cmd[$name]:-}" ] || { echo "unknown step $name"; continue; }
  start=$SECONDS
  eval "timeout ${limit[$name]} ${cmd[$name]}" > "$out/$name.json" 2> "$out/$name.log"
  echo "== $name: rc $? in $((SECONDS - start)) s"
  grep -vE '^\s*$' "$out/$name.log" | tail -6
  pack
done
