import type { Command } from 'commander';
import { LlamaEngine, type ModelForward } from '@arkvale/model-llama';
import type { CliIo } from '../io.js';
import { formatBytes } from '../format.js';
import type { KvDtype } from '@arkvale/core';
import { checkKvDtype, loadBackend } from '@arkvale/engine';
import { BACKENDS, GPU_DTYPES, parseFraction, parseIntOption, parseKvDtype, resolveModelDir, type GpuDtype } from '../options.js';

/** --model and --backend, shared by every command that runs the model. */
export function addModelOptions(cmd: Command): Command {
  return cmd
    .option('-m, --model <dir>', 'Hugging Face LLaMA folder (default: $ARKVALE_MODEL or ./models/tiny-retrieval)')
    .option('-b, --backend <name>', `compute backend: ${BACKENDS.join(', ')} (auto: CUDA when usable, else the CPU)`, 'auto')
    .option('--dtype <type>', `CUDA weights, activations and KV pages: ${GPU_DTYPES.join(' | ')} (default f16)`)
    .option(
      '--gpu-memory-utilization <fraction>',
      'share of GPU memory the engine may use (weights, KV pool, activations)',
      parseFraction('gpu memory utilization'),
      0.9,
    )
    .option(
      '--tensor-parallel <n>',
      "split the model's heads, MLP and vocabulary over n ranks, each with its KV heads' pages (generate and eval hold them all on the one backend; serve runs one per CPU thread, or per GPU with NCCL)",
      parseIntOption('tensor parallel', 1),
      1,
    );
}

/** What addModelOptions parses. */
export interface ModelFlags {
  model?: string;
  backend: string;
  dtype?: GpuDtype;
  gpuMemoryUtilization: number;
  tensorParallel: number;
}

/** --policy and its knobs, shared by generate and eval. */
export function addCacheOptions(cmd: Command): Command {
  return cmd
    .option('--page-size <n>', 'tokens per KV page (a power of two)', parseIntOption('page size', 1), 16)
    .option(
      '--kv-dtype <type>',
      "how KV pages store K and V: auto (the backend's dtype) | fp8 (e4m3 with a scale byte per token and KV head, about half the bytes of f16 pages; on CUDA for power-of-two head dims)",
      parseKvDtype,
      'auto',
    )
    .option('--sinks <pages>', 'always-resident leading pages', parseIntOption('sinks'))
    .option('--window <pages>', 'always-resident trailing pages', parseIntOption('window', 1))
    .option('--full-layers <n>', 'leading layers that keep every page', parseIntOption('full layers'))
    .option('--top-k <pages>', 'pages ArkVale selects per step', parseIntOption('top-k', 1))
    .option('--digest <variant>', 'cuboid-mean | cuboid-max | cuboid-center | sphere')
    .option('--selection <scope>', 'layer | kv-head');
}

/** Loads the model with a progress line on stderr; a `kvDtype` the backend cannot store is refused first. */
export async function loadEngine(opts: ModelFlags, io: CliIo, kvDtype?: KvDtype): Promise<LlamaEngine<ModelForward>> {
  const dir = resolveModelDir(opts.model);
  const backend = await loadBackend({ backend: opts.backend, dtype: opts.dtype, onWarning: io.err });
  checkKvDtype(backend, kvDtype);
  let last = -1;
  const ranks = opts.tensorParallel ?? 1;
  const options = {
    gpuMemoryUtilization: opts.gpuMemoryUtilization,
    onProgress: (loaded: number, total: number) => {
      const pct = total > 0 ? Math.floor((100 * loaded) / total) : 100;
      if (io.interactive && pct !== last) {
        io.err(`\rloading ${dir}${ranks > 1 ? ` over ${ranks} tensor-parallel ranks` : ''}: ${pct}% of ${formatBytes(total)}`);
        last = pct;
      }
    },
  };
  const engine = ranks > 1 ? await LlamaEngine.loadTensorParallel(dir, Array(ranks).fill(backend), options) : await LlamaEngine.load(dir, backend, options);
  if (io.interactive) io.err('\r\x1b[K');
  return engine;
}
