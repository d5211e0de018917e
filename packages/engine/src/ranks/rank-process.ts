import type { Backend, Communicator } from '@arkvale/core';
import { loadBackend } from '../load-backend.js';
import type { FromRank, RankStart, ToRank } from './rank-protocol.js';
import { serveRank } from './rank-runtime.js';

/*
 * A tensor-parallel rank in a process of its own, on one GPU (the addon holds one GPU
 * per process): the parent sets CUDA_VISIBLE_DEVICES to this rank's GPU, sends the
 * init, and this process joins the NCCL communicator once its GPU is up. Not yet run on
 * a machine with several GPUs (docs/DESIGN.md, "Tensor parallelism").
 */

const send = (m: FromRank) => process.send!(m);

process.once('message', (first: RankStart) => {
  const { init } = first;
  start(init).catch((e: unknown) => send({ type: 'fatal', message: `tensor-parallel rank ${init.rank}: ${e instanceof Error ? e.message : String(e)}` }));
});

async function start(init: RankStart['init']): Promise<void> {
  const backend = await loadBackend({ backend: 'cuda', dtype: init.dtype, onWarning: () => {} });
  send({ type: 'joining' });
  const comm = (backend as Backend & { communicator(id: Uint8Array, size: number, rank: number): Communicator }).communicator(
    init.ncclId!,
    init.size,
    init.rank,
  );
  await serveRank(init, {
    backend,
    comm,
    post: send,
    onMessage: (handle) => process.on('message', (m: ToRank) => handle(m)),
    // The engine hears of the failure and stops sending passes; NCCL's own timeouts end a collective under way.
    breakGroup: () => {},
    close: () => process.disconnect(),
  });
}
