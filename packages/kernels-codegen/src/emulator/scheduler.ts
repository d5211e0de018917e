/**
 * Runs one thread block: every thread is a generator; each runs until it yields
 * (barrier or warp collective) or finishes. A warp collective resolves when all live
 * lanes of the warp reach it; a barrier releases when every live thread of the block
 * has reached it. Anything else is a deadlock and is reported, as are divergent
 * barriers and collectives (undefined behaviour on a GPU).
 */
import { EmuFault, type BlockCtx, type Request, type Runtime, type ThreadCtx } from './runtime.js';
import { resolveWarp } from './warp-collectives.js';

export type Dim3 = readonly [number, number, number];

interface Thread {
  readonly ctx: ThreadCtx;
  readonly gen: Generator<Request, void, unknown>;
  state: 'run' | 'barrier' | 'warp' | 'done';
  req?: Request;
  resume?: unknown;
}

export function runBlock(R: Runtime, block: Dim3, grid: Dim3, blockIdx: Dim3, start: (ctx: ThreadCtx) => Generator<Request, void, unknown>): void {
  const label = `(${blockIdx.join(', ')})`;
  const blockCtx: BlockCtx = { epoch: 0, label };
  const threads: Thread[] = [];
  for (let z = 0; z < block[2]; z++) {
    for (let y = 0; y < block[1]; y++) {
      for (let x = 0; x < block[0]; x++) {
        const tid = threads.length;
        const ctx: ThreadCtx = {
          threadIdx_x: x,
          threadIdx_y: y,
          threadIdx_z: z,
          blockIdx_x: blockIdx[0],
          blockIdx_y: blockIdx[1],
          blockIdx_z: blockIdx[2],
          blockDim_x: block[0],
          blockDim_y: block[1],
          blockDim_z: block[2],
          gridDim_x: grid[0],
          gridDim_y: grid[1],
          gridDim_z: grid[2],
          tid,
          lane: tid & 31,
          warp: tid >> 5,
          block: blockCtx,
        };
        threads.push({ ctx, gen: start(ctx), state: 'run' });
      }
    }
  }
  const warps = Math.ceil(threads.length / 32);
  const fail = (msg: string): never => {
    throw new EmuFault(`block ${label}: ${msg}`);
  };
  for (;;) {
    for (const t of threads) {
      if (t.state !== 'run') continue;
      const r = t.gen.next(t.resume);
      t.resume = undefined;
      if (r.done) {
        t.state = 'done';
        t.req = undefined;
      } else {
        t.req = r.value;
        t.state = r.value.kind === 'barrier' ? 'barrier' : 'warp';
      }
    }
    let progressed = false;
    for (let w = 0; w < warps; w++) {
      const lanes = threads.slice(w * 32, w * 32 + 32).filter((t) => t.state !== 'done');
      if (lanes.length === 0 || !lanes.every((t) => t.state === 'warp')) continue;
      const results = resolveWarp(
        lanes.map((t) => ({ lane: t.ctx.lane, req: t.req! })),
        (m) => fail(`warp ${w}: ${m} at ${R.where(lanes[0].req!.loc)}`),
      );
      lanes.forEach((t, i) => {
        t.resume = results[i];
        t.state = 'run';
      });
      progressed = true;
    }
    if (progressed) continue;
    const live = threads.filter((t) => t.state !== 'done');
    if (live.length === 0) return;
    if (live.every((t) => t.state === 'barrier')) {
      const loc = live[0].req!.loc;
      const other = live.find((t) => t.req!.loc !== loc);
      if (other) fail(`threads wait at different barriers (${R.where(loc)} and ${R.where(other.req!.loc)}): syncthreads() in divergent code`);
      blockCtx.epoch++;
      for (const t of live) t.state = 'run';
      continue;
    }
    const atWarp = live.find((t) => t.state === 'warp')!;
    const lanes = threads.slice(atWarp.ctx.warp * 32, atWarp.ctx.warp * 32 + 32);
    const states = lanes.map((t) => t.state).join(',');
    fail(
      `deadlock: thread ${atWarp.ctx.tid} waits at a warp collective (${R.where(atWarp.req!.loc)}) that lanes of its warp never reach (lane states: ${states})`,
    );
  }
}
