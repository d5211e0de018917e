import { readFileSync } from 'node:fs';
import type { Command } from 'commander';
import { generateBatch } from '@arkvale/engine';
import { ArkvaleError, invalidArgument } from '@arkvale/core';
import type { CliIo } from '../io.js';
import { formatKv, formatTimings } from '../format.js';
import type { CacheFlags } from '../options.js';
import { cachePlan, collect, describeBackend, parseFloatOption, parseIntOption } from '../options.js';
import { addCacheOptions, addModelOptions, loadEngine, type ModelFlags } from './shared.js';

interface GenerateFlags extends CacheFlags, ModelFlags {
  file?: string;
  then?: string;
  maxTokens: number;
  temperature: number;
  sampleTopK: number;
  topP: number;
  seed: number;
  stop: string[];
  ignoreEos?: boolean;
  chat?: boolean;
  json?: boolean;
}

async function readPrompt(arg: string | undefined, flags: GenerateFlags, io: CliIo): Promise<string> {
  if (arg !== undefined && flags.file) throw invalidArgument('give the prompt as an argument or with --file, not both');
  if (arg !== undefined) return arg;
  if (flags.file) {
    try {
      return readFileSync(flags.file, 'utf8');
    } catch (e) {
      throw new ArkvaleError('MODEL_FILE', `cannot read prompt file ${flags.file}: ${(e as Error).message}`);
    }
  }
  const piped = await io.readStdin();
  if (piped === null) throw invalidArgument('no prompt: pass it as an argument, with --file FILE, or on standard input');
  return piped;
}

export function generateCommand(program: Command, io: CliIo): void {
  const cmd = program
    .command('generate')
    .description('generate text from a prompt with a KV policy, streaming tokens, then speed and KV statistics')
    .argument('[prompt]', 'the prompt text (else --file, else standard input)')
    .option('-f, --file <path>', 'read the prompt from a file')
    .option('--then <text>', 'after prefilling the prompt, feed this text token by token as decode steps, then generate (two-phase, as eval passkey does)')
    .option('-p, --policy <name>', 'full | streaming-llm | h2o | tova | quest | arkvale', 'arkvale')
    .option('--budget <tokens>', 'resident KV tokens per sequence and layer', parseIntOption('budget', 1), 512)
    .option('-n, --max-tokens <n>', 'tokens to generate at most', parseIntOption('max tokens', 1), 64)
    .option('-t, --temperature <t>', 'sampling temperature (0 = greedy)', parseFloatOption('temperature'), 0)
    .option('--sample-top-k <k>', 'sample among the k most likely tokens (0 = all)', parseIntOption('sample top-k'), 0)
    .option('--top-p <p>', 'nucleus sampling mass', parseFloatOption('top-p'), 1)
    .option('--seed <n>', 'sampling seed', parseIntOption('seed'), 0)
    .option('--stop <text>', 'stop before this text (repeatable)', collect, [])
    .option('--ignore-eos', 'keep generating past end-of-sequence')
    .option('--chat', "wrap the prompt as a user message with the model's chat template")
    .option('--json', 'print one JSON object (text, token ids, statistics) instead of streaming');
  addCacheOptions(addModelOptions(cmd)).action(async (prompt: string | undefined, flags: GenerateFlags) => {
    const text = await readPrompt(prompt, flags, io);
    const plan = cachePlan(flags);
    const engine = await loadEngine(flags, io, plan.kvDtype);
    const tokenizer = engine.model.tokenizer;
    const promptIds = flags.chat ? engine.model.encodeChat([{ role: 'user', content: text }], { addGenerationPrompt: true }) : tokenizer.encode(text);
    const suffixIds = flags.then === undefined ? undefined : tokenizer.encode(flags.then, { addSpecialTokens: false });
    const result = generateBatch(
      engine,
      [
        {
          promptIds,
          suffixIds,
          maxTokens: flags.maxTokens,
          temperature: flags.temperature,
          topK: flags.sampleTopK,
          topP: flags.topP,
          seed: flags.seed,
          stop: flags.stop,
          ignoreEos: flags.ignoreEos,
          onText: flags.json ? undefined : io.out,
        },
      ],
      plan,
    );
    const out = result.outputs[0];
    if (flags.json) {
      io.out(
        JSON.stringify({
          text: out.text,
          tokenIds: out.tokenIds,
          promptTokens: out.promptTokens,
          suffixTokens: suffixIds?.length ?? 0,
          finishReason: out.finishReason,
          policy: plan.policy,
          budgetTokens: plan.budgetTokens,
          pageSize: plan.pageSize,
          kvDtype: plan.kvDtype ?? 'auto',
          backend: describeBackend(engine.backend, flags.tensorParallel),
          timings: result.timings,
          kv: result.kv,
        }) + '\n',
      );
      return;
    }
    io.out('\n');
    io.err(
      [
        `--- ${plan.policy}, budget ${plan.budgetTokens} tokens, pages of ${plan.pageSize}${plan.kvDtype === 'fp8' ? ' (fp8)' : ''}, ${describeBackend(engine.backend, flags.tensorParallel)} backend; finished: ${out.finishReason}`,
        ...formatTimings(result.timings),
        ...formatKv(result.kv),
      ].join('\n') + '\n',
    );
  });
}
