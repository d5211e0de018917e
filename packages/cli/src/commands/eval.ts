import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { ArkvaleError, invalidArgument, type PolicyName } from '@arkvale/core';
import type { CliIo } from '../io.js';
import { table } from '../format.js';
import type { CacheFlags } from '../options.js';
import { seededUniform } from '@arkvale/core';
import { openModelDir } from '@arkvale/model-llama';
import { cachePlan, describeBackend, parseFloatOption, parseIntOption, parseList, parsePolicy, resolveModelDir } from '../options.js';
import { evaluatePasskey, PASSKEY_PROTOCOLS, policyLabel, type PasskeyProtocol, type PasskeyRow } from '../passkey/evaluate.js';
import { comparePasskeyRuns, parsePasskeyRun, type PasskeyComparison, type PasskeyRun } from '../passkey/compare.js';
import { buildPasskeyPrompt, readFiller } from '../passkey/prompt.js';
import { addCacheOptions, addModelOptions, loadEngine, type ModelFlags } from './shared.js';

interface EvalFlags extends Omit<CacheFlags, 'policy' | 'budget'>, ModelFlags {
  protocol: PasskeyProtocol;
  lengths: number[];
  budgets: number[];
  policies: PolicyName[];
  depths: number;
  seed: number;
  batch: number;
  maxTokens: number;
  filler?: string;
  json?: string;
}

const pct = (x: number) => `${(100 * x).toFixed(0)}%`;

/**
 * Rows of policy @ budget, a column per length: accuracy (agreement with Full), like
 * the paper's Table 1, then recalls per step for the policies that recall.
 */
export function passkeyTable(rows: readonly PasskeyRow[]): string {
  const lengths = [...new Set(rows.map((r) => r.length))];
  const keys = [...new Set(rows.map((r) => policyLabel(r.policy, r.budget)))];
  const recalling = rows.some((r) => r.recallsPerStep > 0);
  const body = keys.map((key) => {
    const at = (l: number) => rows.find((x) => x.length === l && policyLabel(x.policy, x.budget) === key);
    const cells = lengths.map((l) => {
      const r = at(l);
      return r ? `${pct(r.accuracy)} (${pct(r.agreement)})` : '-';
    });
    const recalls = lengths.map((l) => {
      const r = at(l);
      return r && r.recallsPerStep > 0 ? r.recallsPerStep.toFixed(2) : '-';
    });
    return [key, ...cells, ...(recalling ? recalls : [])];
  });
  const header = ['policy @ budget', ...lengths.map((l) => `${l} tokens`), ...(recalling ? lengths.map((l) => `recalls/step @ ${l}`) : [])];
  return table(header, body);
}

/** The line above the table: what was measured and how. */
export function passkeyHeading(protocol: PasskeyProtocol, depths: number): string {
  const how =
    protocol === 'two-phase'
      ? 'two-phase: context prefilled, question fed token by token as decode steps'
      : 'single-pass: context and question prefilled together';
  return `passkey retrieval (${how}), ${depths} depths per length: accuracy (agreement with Full); recalls per sequence per decode step, all layers\n`;
}

function parseProtocol(value: string): PasskeyProtocol {
  if (!(PASSKEY_PROTOCOLS as readonly string[]).includes(value)) {
    throw invalidArgument(`unknown protocol "${value}"; expected one of: ${PASSKEY_PROTOCOLS.join(', ')}`);
  }
  return value as PasskeyProtocol;
}

export function evalCommand(program: Command, io: CliIo, setExitCode: (code: number) => void): void {
  const evalCmd = program.command('eval').description('accuracy evaluations');
  const cmd = evalCmd
    .command('passkey')
    .description("the paper's passkey retrieval: pass key at evenly spaced depths, exact match, agreement with Full")
    .option('--protocol <name>', 'two-phase (prefill the context, feed the question as decode steps) | single-pass (prefill both)', parseProtocol, 'two-phase')
    .option('--lengths <list>', 'prompt lengths in tokens', parseList(parseIntOption('length', 64)), [1024])
    .option('--budgets <list>', 'KV budgets in tokens', parseList(parseIntOption('budget', 1)), [256])
    .option('--policies <list>', 'policies compared with Full', parseList(parsePolicy), ['arkvale', 'streaming-llm', 'h2o', 'tova', 'quest'])
    .option('--depths <n>', 'depths per length, from 0% in equal steps', parseIntOption('depths', 1), 20)
    .option('--seed <n>', 'seed of pass keys and filler', parseIntOption('seed'), 0)
    .option('--batch <n>', 'prompts per batch', parseIntOption('batch', 1), 4)
    .option('-n, --max-tokens <n>', 'answer tokens generated', parseIntOption('max tokens', 1), 8)
    .option('--filler <file>', "filler sentences, one per line (default: the model folder's filler.txt)")
    .option('--json <file>', 'also write every result as JSON to this file');
  passkeyPromptCommand(evalCmd, io);
  compareCommand(evalCmd, io, setExitCode);
  addCacheOptions(addModelOptions(cmd)).action(async (flags: EvalFlags) => {
    const engine = await loadEngine(flags, io, flags.kvDtype);
    const filler = readFiller(flags.filler ?? join(engine.model.dir, 'filler.txt'));
    const { policy: _p, budgetTokens: _b, ...plan } = cachePlan({ ...flags, policy: 'full', budget: 1 });
    const started = performance.now();
    const saved: PasskeyRow[] = [];
    // The JSON file is rewritten after every row, so an interrupted run keeps what it measured.
    const save = () => {
      if (!flags.json) return;
      const run = {
        model: engine.model.dir,
        backend: describeBackend(engine.backend, flags.tensorParallel),
        protocol: flags.protocol,
        pageSize: flags.pageSize,
        kvDtype: flags.kvDtype ?? 'auto',
        depths: flags.depths,
        seed: flags.seed,
      };
      try {
        writeFileSync(flags.json, JSON.stringify({ ...run, rows: saved }, null, 2) + '\n');
      } catch (e) {
        throw new ArkvaleError('INVALID_ARGUMENT', `cannot write ${flags.json}: ${(e as Error).message}`);
      }
    };
    save();
    const rows = evaluatePasskey(engine, {
      protocol: flags.protocol,
      lengths: flags.lengths,
      budgets: flags.budgets,
      policies: flags.policies,
      depthCount: flags.depths,
      seed: flags.seed,
      batch: flags.batch,
      maxTokens: flags.maxTokens,
      plan,
      filler,
      onProgress: (done, total, label) => {
        const elapsed = ((performance.now() - started) / 1000).toFixed(0);
        io.err(`${io.interactive ? '\r\x1b[K' : ''}[${done}/${total}] ${label} (${elapsed} s)${io.interactive ? '' : '\n'}`);
      },
      onRow: (row) => {
        saved.push(row);
        save();
      },
    });
    if (io.interactive) io.err('\n');
    io.out(passkeyHeading(flags.protocol, flags.depths));
    io.out(`backend: ${describeBackend(engine.backend, flags.tensorParallel)}, pages of ${flags.pageSize}${flags.kvDtype === 'fp8' ? ' (fp8)' : ''}\n`);
    io.out(passkeyTable(rows));
    if (flags.json) io.err(`wrote ${flags.json}\n`);
  });
}

export function passkeyPromptCommand(evalCmd: Command, io: CliIo): void {
  evalCmd
    .command('passkey-prompt')
    .description('print one passkey prompt (the pass key goes to stderr), e.g. to keep as an example')
    .option('-m, --model <dir>', 'model folder whose tokenizer measures the length')
    .option('--length <tokens>', 'prompt length in tokens', parseIntOption('length', 64), 3000)
    .option('--depth <fraction>', 'where the key sits in the filler, 0..1', parseFloatOption('depth'), 0.5)
    .option('--seed <n>', 'seed of the pass key and filler', parseIntOption('seed'), 0)
    .option('--filler <file>', "filler sentences (default: the model folder's filler.txt)")
    .action((flags: { model?: string; length: number; depth: number; seed: number; filler?: string }) => {
      const model = openModelDir(resolveModelDir(flags.model));
      const filler = readFiller(flags.filler ?? join(model.dir, 'filler.txt'));
      const p = buildPasskeyPrompt(model.tokenizer, filler, flags.length, flags.depth, seededUniform(flags.seed));
      io.out(p.text);
      io.err(`pass key ${p.passkey}, ${p.ids.length} tokens, depth ${flags.depth}\n`);
    });
}

/** Row by row: accuracy before and after, and how many answers stayed the same. */
export function comparisonTable(c: PasskeyComparison): string {
  return table(
    ['policy @ budget', 'tokens', 'accuracy', 'same answers'],
    c.rows.map((r) => [r.label, String(r.length), `${pct(r.accuracyBefore)} -> ${pct(r.accuracyAfter)}`, `${r.same} of ${r.prompts}`]),
  );
}

function readRun(file: string) {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw invalidArgument(`cannot read ${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  return parsePasskeyRun(text, file);
}

export function compareCommand(evalCmd: Command, io: CliIo, setExitCode: (code: number) => void): void {
  evalCmd
    .command('compare')
    .argument('<before>', 'JSON of one run (eval passkey --json)')
    .argument('<after>', 'JSON of another run of the same prompts')
    .description('which passkey answers changed between two runs (exit code 1 when any did, as diff)')
    .option('--list <n>', 'changed answers to list', parseIntOption('list'), 20)
    .option('--json <file>', 'also write the comparison as JSON (the counts per row and every changed answer)')
    .action((beforeFile: string, afterFile: string, flags: { list: number; json?: string }) => {
      const [before, after] = [readRun(beforeFile), readRun(afterFile)];
      const c = comparePasskeyRuns(before, after);
      if (c.rows.length === 0) throw invalidArgument(`${beforeFile} and ${afterFile} have no row in common (policy @ budget at a length)`);
      const what = (run: PasskeyRun) => `${run.backend ?? 'backend not recorded'}${run.kvDtype === 'fp8' ? ', fp8 KV pages' : ''}`;
      io.out(`before: ${beforeFile} (${what(before)})\nafter:  ${afterFile} (${what(after)})\n`);
      io.out(comparisonTable(c));
      io.out(`${c.same} of ${c.prompts} answers the same\n`);
      const changes = c.rows.flatMap((r) => r.changes.map((ch) => ({ ...ch, row: `${r.label} at ${r.length} tokens` })));
      for (const ch of changes.slice(0, flags.list))
        io.out(`  ${ch.row}, depth ${ch.depth} (key ${ch.passkey}): ${JSON.stringify(ch.before)} -> ${JSON.stringify(ch.after)}\n`);
      if (changes.length > flags.list) io.out(`  ... and ${changes.length - flags.list} more (--list)\n`);
      const only = (file: string, keys: readonly string[]) => {
        if (keys.length) io.err(`${keys.length} row(s) only in ${file}: ${keys.slice(0, 3).join(', ')}${keys.length > 3 ? ', ...' : ''}\n`);
      };
      only(beforeFile, c.onlyBefore);
      only(afterFile, c.onlyAfter);
      if (flags.json) writeFileSync(flags.json, `${JSON.stringify({ before: beforeFile, after: afterFile, ...c }, null, 1)}\n`);
      setExitCode(changes.length > 0 ? 1 : 0);
    });
}
