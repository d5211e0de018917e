import type { Command } from 'commander';
import { cudaStatus, cudaVersion, loadAddon, ncclStatus, type CudaStatus, type NcclStatus } from '@arkvale/cuda-binding';
import { describeModel, openModelDir } from '@arkvale/model-llama';
import type { CliIo } from '../io.js';
import { formatBytes } from '../format.js';
import { resolveModelDir } from '../options.js';

export function inspectCommand(program: Command, io: CliIo): void {
  const inspect = program.command('inspect').description('describe a model or the GPU');
  inspect
    .command('model')
    .description('architecture, dtype, parameters, KV bytes per token and per page')
    .option('-m, --model <dir>', 'Hugging Face LLaMA folder (default: $ARKVALE_MODEL or ./models/tiny-retrieval)')
    .option('--json', 'print JSON')
    .action((flags: { model?: string; json?: boolean }) => {
      const model = openModelDir(resolveModelDir(flags.model));
      const d = describeModel(model.config);
      if (flags.json) {
        io.out(JSON.stringify({ dir: model.dir, ...d, weightBytes: model.weightBytes, weightDtypes: model.weightDtypes }) + '\n');
        return;
      }
      const rows: [string, string][] = [
        ['model', model.dir],
        ['architecture', `${d.architecture} (${d.modelType}), ${d.dtype}`],
        ['parameters', `${(d.parameterCount / 1e6).toFixed(1)}M (${d.parameterCount})`],
        [
          'shape',
          `${d.numLayers} layers, hidden ${d.hiddenSize}, MLP ${d.intermediateSize}, ${d.numHeads} heads / ${d.numKvHeads} KV heads (GQA group ${d.numHeads / d.numKvHeads}), head dim ${d.headDim}, vocab ${d.vocabSize}`,
        ],
        ['positions', `${d.maxPositionEmbeddings}; RoPE ${d.rope}; ${d.tieWordEmbeddings ? 'tied' : 'untied'} embeddings`],
        ['weights', `${formatBytes(model.weightBytes)} on disk (${model.weightDtypes.join(', ')})`],
        [
          'KV per token',
          `${formatBytes(d.kvBytesPerToken.f16)} (f16/bf16), ${formatBytes(d.kvBytesPerToken.f32)} (f32), ${formatBytes(d.kvBytesPerToken.fp8)} (fp8)`,
        ],
        ...d.pageBytes.map((p): [string, string] => [
          `page of ${p.pageSize}`,
          `${formatBytes(p.f16)} (f16/bf16), ${formatBytes(p.f32)} (f32), ${formatBytes(p.fp8)} (fp8) per layer`,
        ]),
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      io.out(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
    });
  inspect
    .command('gpu')
    .description(
      'the CUDA device, driver, runtime, cuBLAS, NCCL (for tensor parallelism) and the kernels built; without a GPU, why not (exit code 0 either way)',
    )
    .option('--json', 'print everything as JSON')
    .action((flags: { json?: boolean }) => {
      const status = cudaStatus();
      // NCCL loads without a GPU: say whether the machine has it whenever the addon loads.
      const { addon } = loadAddon();
      const nccl = addon ? ncclStatus(addon) : undefined;
      io.out(flags.json ? JSON.stringify({ ...status, nccl }, null, 2) + '\n' : formatGpuStatus(status, nccl));
    });
}

/** `major * 10000 + minor * 100 + patch` (cuBLAS, NCCL) -> "13.0.0". */
const libraryVersion = (v: number) => `${Math.floor(v / 10000)}.${Math.floor(v / 100) % 100}.${v % 100}`;

function formatGpuStatus(s: CudaStatus, nccl: NcclStatus | undefined): string {
  const rows: [string, string][] = [['CUDA', s.available ? s.summary.replace(/^CUDA /, '') : `unavailable: ${s.reason}`]];
  for (const d of s.devices) {
    rows.push([
      `device ${d.index}`,
      `${d.name}, compute capability ${d.major}.${d.minor}, ${d.multiprocessors} SMs, ${formatBytes(d.totalBytes)} total, ` +
        `${formatBytes(d.freeBytes)} free, L2 ${formatBytes(d.l2Bytes)}, PCI ${d.pciBusId}`,
    ]);
  }
  const driver = s.driverVersion > 0 ? `CUDA ${cudaVersion(s.driverVersion)}` : 'not found';
  rows.push(['driver', s.driverRelease ? `${s.driverRelease} (${driver})` : driver]);
  if (s.runtimeVersion > 0) rows.push(['runtime', `CUDA ${cudaVersion(s.runtimeVersion)} (linked into the addon)`]);
  const blas = s.cublas;
  rows.push([
    'cuBLAS',
    !blas ? 'not probed (no usable device)' : blas.loaded ? `${blas.library} (${libraryVersion(blas.version ?? 0)})` : `not found: ${blas.reason}`,
  ]);
  rows.push(['NCCL', !nccl ? 'not probed (no addon)' : nccl.loaded ? `${nccl.library} (${libraryVersion(nccl.version ?? 0)})` : `not found: ${nccl.reason}`]);
  const a = s.addon;
  rows.push(['addon', a.loaded ? `built for ${a.archs.join(', ')}${a.nvcc ? ` by nvcc ${a.nvcc}` : ''} (${a.path})` : (a.reason ?? 'not loaded')]);
  if (a.loaded) rows.push(['kernels', `${s.kernels.total} specialisations in ${s.kernels.families.length} families`]);
  for (const f of s.kernels.families) rows.push([`  ${f.family}`, String(f.count)]);
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n';
}
