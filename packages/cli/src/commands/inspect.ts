import type { Command } from 'commander';
import { describeModel, openModelDir } from '@arkvale/model-llama';
import type { CliIo } from '../io.js';
import { formatBytes } from '../format.js';
import { resolveModelDir } from '../options.js';

export function inspectCommand(program: Command, io: CliIo): void {
  const inspect = program.command('inspect').description('describe a model');
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
        ['shape', `${d.numLayers} layers, hidden ${d.hiddenSize}, MLP ${d.intermediateSize}, ${d.numHeads} heads / ${d.numKvHeads} KV heads (GQA group ${d.numHeads / d.numKvHeads}), head dim ${d.headDim}, vocab ${d.vocabSize}`],
        ['positions', `${d.maxPositionEmbeddings}; RoPE ${d.rope}; ${d.tieWordEmbeddings ? 'tied' : 'untied'} embeddings`],
        ['weights', `${formatBytes(model.weightBytes)} on disk (${model.weightDtypes.join(', ')})`],
        ['KV per token', `${formatBytes(d.kvBytesPerToken.f16)} (f16/bf16), ${formatBytes(d.kvBytesPerToken.f32)} (f32)`],
        ...d.pageBytes.map((p): [string, string] => [`page of ${p.pageSize}`, `${formatBytes(p.f16)} (f16/bf16), ${formatBytes(p.f32)} (f32) per layer`]),
      ];
      const w = Math.max(...rows.map((r) => r[0].length));
      io.out(rows.map(([k, v]) => `${k.padEnd(w)}  ${v}`).join('\n') + '\n');
    });
}
