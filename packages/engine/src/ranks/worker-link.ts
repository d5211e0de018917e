import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { FromRank, RankInit, RankStart, ToRank } from './rank-protocol.js';

/** The engine's end of one rank worker, a thread or a process. */
export interface WorkerLink {
  post(m: ToRank): void;
  on(handler: (m: FromRank) => void): void;
  off(handler: (m: FromRank) => void): void;
  /** Called once if the worker fails or exits, with why. */
  onDeath(handler: (why: string) => void): void;
  terminate(): Promise<void>;
}

/** A script beside this file; from the TypeScript sources (tests), the built one. */
function script(name: string): URL {
  const ts = import.meta.url.endsWith('.ts');
  return new URL(ts ? `../../dist/ranks/${name}.js` : `./${name}.js`, import.meta.url);
}

/** Rank `init.rank` in a worker thread (rank-worker.ts), which never keeps the process alive. */
export function threadLink(init: RankInit): WorkerLink {
  const w = new Worker(script('rank-worker'), { workerData: init });
  w.unref();
  return {
    post: (m) => w.postMessage(m),
    on: (h) => w.on('message', h),
    off: (h) => w.off('message', h),
    onDeath: (h) => {
      w.once('error', (e) => h(`tensor-parallel rank ${init.rank}'s thread failed: ${e.message}`));
      w.once('exit', (code) => h(`tensor-parallel rank ${init.rank}'s thread exited (code ${code})`));
    },
    terminate: async () => void (await w.terminate()),
  };
}

/** Rank `init.rank` in a process of its own (rank-process.ts) on GPU `device` (CUDA_VISIBLE_DEVICES), messages by structured clone. */
export function processLink(init: RankInit, device: string): WorkerLink {
  const child: ChildProcess = fork(fileURLToPath(script('rank-process')), [], {
    env: { ...process.env, CUDA_VISIBLE_DEVICES: device },
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  child.unref();
  child.send({ op: 'start', init } satisfies RankStart);
  return {
    post: (m) => child.send(m),
    on: (h) => child.on('message', h),
    off: (h) => child.off('message', h),
    onDeath: (h) => {
      child.once('error', (e) => h(`tensor-parallel rank ${init.rank}'s process failed: ${e.message}`));
      child.once('exit', (code, signal) => h(`tensor-parallel rank ${init.rank}'s process exited (${signal ?? `code ${code}`})`));
    },
    terminate: async () => {
      if (child.exitCode === null) child.kill();
    },
  };
}
