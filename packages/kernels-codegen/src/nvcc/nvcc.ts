/** Runs nvcc jobs in parallel (up to the core count) and reads ptxas's resource report. */
import { spawn, spawnSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

export const NVCC = process.env.NVCC ?? 'nvcc';

/** The flags CI compiles every kernel with: sm_90, every warning an error (device and host). */
export const NVCC_FLAGS = ['-arch=sm_90', '-c', '-Werror', 'all-warnings', '-Xcompiler', '-Wall,-Werror', '-Xptxas', '-v'];

/** `nvcc --version`'s last line, or undefined when nvcc cannot run. */
export function nvccVersion(): string | undefined {
  const r = spawnSync(NVCC, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return undefined;
  return r.stdout.trim().split('\n').at(-1);
}

export interface CompileResult {
  readonly unit: string;
  readonly ok: boolean;
  readonly seconds: number;
  /** nvcc's and ptxas's messages (ptxas -v goes to stderr). */
  readonly log: string;
}

function compileOne(unit: string, output: string, includes: readonly string[]): Promise<CompileResult> {
  const started = performance.now();
  return new Promise((resolve) => {
    const child = spawn(NVCC, [...NVCC_FLAGS, ...includes.map((i) => `-I${i}`), '-o', output, unit], { stdio: ['ignore', 'pipe', 'pipe'] });
    let log = '';
    child.stdout.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr.on('data', (d: Buffer) => (log += d.toString()));
    const done = (ok: boolean) => resolve({ unit, ok, seconds: (performance.now() - started) / 1000, log });
    child.on('error', (e) => {
      log += String(e);
      done(false);
    });
    child.on('close', (code) => done(code === 0));
  });
}

/** Compiles every unit, `parallel` at a time (default: the machine's cores). */
export async function compileAll(
  jobs: readonly { unit: string; output: string; includes?: readonly string[] }[],
  parallel = availableParallelism(),
): Promise<CompileResult[]> {
  const results: CompileResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      results.push(await compileOne(job.unit, job.output, job.includes ?? []));
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, parallel) }, worker));
  return results;
}

export interface PtxasUsage {
  readonly registers: number;
  readonly sharedBytes: number;
  readonly spillBytes: number;
}

/** ptxas -v's per-kernel report: registers, static shared memory, spill stores. */
export function parsePtxas(log: string): Map<string, PtxasUsage> {
  const out = new Map<string, PtxasUsage>();
  const sections = log.split(/ptxas info\s+: Compiling entry function '/).slice(1);
  for (const s of sections) {
    const name = s.slice(0, s.indexOf("'"));
    const registers = Number(/Used (\d+) registers/.exec(s)?.[1] ?? NaN);
    const sharedBytes = Number(/(\d+) bytes smem/.exec(s)?.[1] ?? 0);
    const spillBytes = Number(/(\d+) bytes spill stores/.exec(s)?.[1] ?? 0);
    out.set(name, { registers, sharedBytes, spillBytes });
  }
  return out;
}
