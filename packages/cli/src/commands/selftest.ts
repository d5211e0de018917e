import { existsSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { ArkvaleError, invalidArgument, ReferenceBackend } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { CudaBackend, cudaStatus } from '@arkvale/cuda-binding';
import { LlamaEngine } from '@arkvale/model-llama';
import type { CliIo } from '../io.js';
import { table } from '../format.js';
import { GPU_DTYPES, resolveModelDir, type GpuDtype } from '../options.js';
import { decodingChecks, denseChecks, gemvChecks, memoryChecks, randomChecks, streamGemmChecks } from '../selftest/dense-checks.js';
import { KV_SHAPES, kvChecks } from '../selftest/kv-checks.js';
import { ncclChecks } from '../selftest/nccl-checks.js';
import { prefixCacheChecks } from '../selftest/prefix-checks.js';
import { tokenCellChecks } from '../selftest/token-checks.js';
import { deviceStepChecks, goldenChecks, goldenMargins, overlapChecks, readGolden, type GoldenCase, type GoldenMargins } from '../selftest/model-checks.js';
import { result, Twin, type CheckResult } from '../selftest/twin.js';
import { seededUniform } from '@arkvale/core';

interface SelftestFlags {
  model?: string[];
  dtype?: GpuDtype;
  golden?: string;
  seed?: number;
  json?: string;
}

/** Runs checks on a backend inside one tidy scope, and checks that scope left no tensor behind. */
function scoped(backend: CudaBackend, label: string, run: () => CheckResult[]): CheckResult[] {
  const before = backend.liveTensors;
  const out = backend.tidy(run);
  return [...out, result('no tensors left behind', label, Math.abs(backend.liveTensors - before), 0)];
}

function opChecks(dtype: GpuDtype, seed: number, note: (text: string) => void): CheckResult[] {
  const gpu = new CudaBackend({ dtype, poison: true });
  const t = new Twin(gpu, new ReferenceBackend(), dtype, seededUniform(seed));
  // The decode products through each product kernel alone, whatever the environment's switches
  // say (gemv, when on, takes products of up to 4 rows first).
  const only = { gemv: false, streamGemm: false };
  const gemv = new CudaBackend({ dtype, poison: true, ...only, gemv: true });
  const tg = new Twin(gemv, t.ref, dtype, seededUniform(seed + 2));
  const stream = new CudaBackend({ dtype, poison: true, ...only, streamGemm: true });
  const tst = new Twin(stream, t.ref, dtype, seededUniform(seed + 3));
  return [
    ...scoped(gpu, `memory ops, ${dtype}`, () => memoryChecks(t)),
    ...scoped(gpu, `dense ops, ${dtype}`, () => denseChecks(t)),
    ...scoped(gemv, `gemv matmul, ${dtype}`, () => gemvChecks(tg, gemv)),
    ...scoped(stream, `stream_gemm matmul, ${dtype}`, () => streamGemmChecks(tst, stream)),
    ...scoped(gpu, `decoding, ${dtype}`, () => decodingChecks(t)),
    ...scoped(gpu, `random weights, ${dtype}`, () => randomChecks(t, gpu)),
    ...KV_SHAPES.flatMap((s) => scoped(gpu, `KV ops hd ${s.headDim} ps ${s.pageSize} g ${s.group}, ${dtype}`, () => kvChecks(t, s))),
    ...scoped(gpu, `token cells (H2O, TOVA), ${dtype}`, () => tokenCellChecks(t)),
    ...scoped(gpu, `NCCL, ${dtype}`, () => ncclChecks(t, gpu, note)),
  ].map((r) => ({ ...r, detail: `${r.detail} [${dtype}]` }));
}

async function modelChecks(dir: string, cases: readonly GoldenCase[], margins: readonly GoldenMargins[], dtype: GpuDtype): Promise<CheckResult[]> {
  const backend = new CudaBackend({ dtype });
  const engine = await LlamaEngine.load(dir, backend);
  const allocated = () => (backend.trimBuffers(), backend.addon.allocatorStats().allocatedBytes);
  const before = { tensors: backend.liveTensors, bytes: allocated() };
  const label = `${basename(dir)}, ${dtype}`;
  const out = [
    ...goldenChecks(engine, cases, margins, label),
    ...deviceStepChecks(engine, cases, () => backend.addon.syncCount(), label),
    ...overlapChecks(engine, cases, label),
  ];
  const after = { tensors: backend.liveTensors, bytes: allocated() };
  return [
    ...out,
    result('generation leaves no tensors behind', `golden cases, ${label}`, Math.abs(after.tensors - before.tensors), 0),
    result('generation frees its device memory', `golden cases, ${label} (bytes still allocated)`, Math.abs(after.bytes - before.bytes), 0),
  ];
}

/** One row per check: how many cases, how many failed, the worst error against its tolerance. */
function summaryTable(results: readonly CheckResult[]): string {
  const byCheck = new Map<string, CheckResult[]>();
  for (const r of results) byCheck.set(r.check, [...(byCheck.get(r.check) ?? []), r]);
  const rows = [...byCheck].map(([check, rs]) => {
    const worst = rs.reduce((a, b) => (b.error / (b.tolerance || 1) > a.error / (a.tolerance || 1) ? b : a));
    const bad = rs.filter((r) => !r.ok).length;
    return [check, String(rs.length), String(bad), worst.error.toExponential(2), worst.tolerance.toExponential(0)];
  });
  return table(['check', 'cases', 'failed', 'worst error', 'tolerance'], rows);
}

export function selftestCommand(program: Command, io: CliIo): void {
  program
    .command('selftest')
    .description('check the CUDA backend against the reference backend on fresh random inputs, and the model against golden.json')
    .option('-m, --model <dir...>', 'models for the golden check, each against its golden.json (default: $ARKVALE_MODEL or ./models/tiny-retrieval)')
    .option('--golden <file>', "expected outputs of a single model (default: each model folder's golden.json; a model without one is skipped)")
    .option('--dtype <type>', `only this dtype: ${GPU_DTYPES.join(' | ')} (default: both)`)
    .option('--seed <n>', 'seed of the random inputs (default: fresh each run, printed)', (v) => Number(v))
    .option('--json <file>', 'also write every check as JSON')
    .action(async (flags: SelftestFlags) => {
      const status = cudaStatus();
      if (!status.available) throw new ArkvaleError('NO_DEVICE', `selftest needs a GPU: ${status.reason}`);
      io.err(`${status.summary}\n`);
      const seed = flags.seed ?? Math.floor(Math.random() * 2 ** 31);
      const dtypes = flags.dtype ? [flags.dtype] : [...GPU_DTYPES];
      const results: CheckResult[] = [];
      for (const dtype of dtypes) {
        io.err(`operations against the reference backend, ${dtype}, seed ${seed}...\n`);
        results.push(...opChecks(dtype, seed, io.err));
      }
      const dirs = (flags.model ?? [undefined]).map((m) => resolveModelDir(m));
      if (flags.golden !== undefined && dirs.length > 1) throw invalidArgument('--golden names the expected outputs of one model; give one --model with it');
      for (const dir of dirs) {
        const golden = flags.golden ?? join(dir, 'golden.json');
        if (flags.golden === undefined && !existsSync(golden)) {
          io.err(`no ${golden}: the model check is skipped\n`);
          continue;
        }
        const cases = readGolden(golden);
        // How clear each greedy choice is, in float32 on the CPU backend (which reproduces golden.json).
        const cpu = await LlamaEngine.load(dir, new CpuBackend());
        const margins = cases.map((c) => goldenMargins(cpu, c));
        for (const dtype of dtypes) {
          io.err(`${dir} against ${golden}, ${dtype}...\n`);
          results.push(...(await modelChecks(dir, cases, margins, dtype)));
          // A trained model (its folder has the filler its documents are made of): questions from the prefix cache answer as prefilled whole.
          if (existsSync(join(dir, 'filler.txt'))) {
            io.err(`${dir}: the prefix cache against whole prompts, ${dtype}...\n`);
            results.push(...(await prefixCacheChecks(dir, new CudaBackend({ dtype }), `${basename(dir)}, ${dtype}`)));
          }
        }
      }
      const failed = results.filter((r) => !r.ok);
      io.out(summaryTable(results));
      const modelRows = results.filter((r) => r.check.startsWith('golden'));
      if (modelRows.length > 0) {
        io.out('\nthe model against golden.json:\n');
        io.out(
          table(
            ['check', 'case', 'error', 'tolerance', 'result'],
            modelRows.map((r) => [r.check, r.detail, r.error.toExponential(2), r.tolerance.toExponential(0), r.ok ? 'ok' : 'FAIL']),
          ),
        );
      }
      if (failed.length > 0) {
        io.out('\nfailures:\n');
        io.out(
          table(
            ['check', 'case', 'error', 'tolerance'],
            failed.map((r) => [r.check, r.detail, r.error.toExponential(2), r.tolerance.toExponential(0)]),
          ),
        );
      }
      io.out(`${results.length - failed.length} passed, ${failed.length} failed (seed ${seed}, ${status.device?.name ?? 'GPU'})\n`);
      if (flags.json) writeFileSync(flags.json, JSON.stringify({ device: status.device, seed, results }, null, 2) + '\n');
      if (failed.length > 0) throw new ArkvaleError('INTERNAL', `${failed.length} self-test check(s) failed`);
    });
}
