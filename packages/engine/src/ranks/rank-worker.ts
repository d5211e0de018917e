import { parentPort, workerData } from 'node:worker_threads';
import { SharedMemoryCommunicator } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import type { RankInit, ToRank } from './rank-protocol.js';
import { serveRank } from './rank-runtime.js';

/* A tensor-parallel rank in a worker thread (RankWorkers): its own CPU backend, collectives in shared memory. */

const port = parentPort!;
const init = workerData as RankInit;
const backend = new CpuBackend();
const comm = new SharedMemoryCommunicator(init.shared!, init.rank, init.size, backend);
serveRank(init, {
  backend,
  comm,
  post: (m) => port.postMessage(m),
  onMessage: (handle) => port.on('message', (m: ToRank) => handle(m)),
  breakGroup: () => comm.breakGroup(),
  close: () => port.close(),
}).catch((e: unknown) => port.postMessage({ type: 'fatal', message: e instanceof Error ? e.message : String(e) }));
