#!/usr/bin/env node
// What a decode step costs the host, with no GPU: the CUDA backend's JavaScript over an
// addon whose calls do nothing (launches, allocations, copies and events return at
// once; reads return zeros). Run it under `node --cpu-prof` to see where the host's
// share of a step goes; the real addon adds each call's N-API and CUDA driver cost.
//
//   node tools/scripts/host-overhead.mjs [--shape llama2-7b] [--context 30720] [--batch 4]
//     [--plan arkvale@2048] [--select-on device|host] [--graphs 1|0] [--steps 50] [--profile FILE]
//
// --profile writes a V8 CPU profile of the decode steps alone (after five warm-up steps).
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { KvCache, poolPagesFor, resolveCacheOptions } from '../../packages/core/dist/index.js';
import { CudaBackend } from '../../packages/cuda-binding/dist/index.js';
import { kvGeometry, LlamaForward, randomLlamaWeights, shapeConfig } from '../../packages/model-llama/dist/index.js';

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

/** Every addon function the backend calls, doing nothing; pinned blocks are real host memory so that hostView works. */
function idleAddon() {
  let next = 1n << 32n;
  let events = 0;
  const pinned = new Map();
  const counts = new Map();
  const count = (name) => counts.set(name, (counts.get(name) ?? 0) + 1);
  const addr = (bytes) => {
    const p = next;
    next += BigInt(Math.ceil(bytes / 256) * 256 + 256);
    return p;
  };
  const addon = {
    probe: () => ({ available: true, devices: [{ index: 0, name: 'no device (host overhead)', multiprocessors: 132, computeCapability: '9.0', totalBytes: 141e9 }] }),
    init() {},
    memInfo: () => ({ freeBytes: 140e9, totalBytes: 141e9 }),
    alloc: (bytes) => (count('alloc'), addr(bytes)),
    free: () => count('free'),
    allocatorStats: () => ({ reservedBytes: 0, allocatedBytes: 0, slabs: 0, mallocs: 0 }),
    releaseCached() {},
    hostAlloc(bytes) {
      const host = addr(bytes);
      // Real memory only for small blocks (read-back rings): the host page pool is never viewed.
      if (bytes <= 64 << 20) pinned.set(host, new ArrayBuffer(bytes));
      return { host, device: host };
    },
    hostFree: (host) => pinned.delete(host),
    hostView(host, bytes) {
      for (const [base, buf] of pinned) if (host >= base && host + BigInt(bytes) <= base + BigInt(buf.byteLength)) return buf.slice(Number(host - base), Number(host - base) + bytes);
      throw new Error('hostView outside a block');
    },
    upload: () => count('upload'),
    download: (_src, dst) => (count('download'), new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).fill(0)),
    copy: () => count('copy'),
    copyPages: () => count('copyPages'),
    memset: () => count('memset'),
    recordEvent: () => (count('recordEvent'), ++events),
    waitEvent: () => count('waitEvent'),
    eventDone: () => true,
    releaseEvent() {},
    synchronize: () => count('synchronize'),
    elapsedMs: () => 0,
    syncCount: () => (counts.get('download') ?? 0) + (counts.get('synchronize') ?? 0),
    kernels: () => [],
    launch: () => count('launch'),
    blasStatus: () => ({ loaded: true, version: 130000 }),
    gemm: () => count('gemm'),
    beginCapture() {},
    endCapture: () => 0,
    launchGraph: () => count('launchGraph'),
    destroyGraph() {},
    buildInfo: () => ({ archs: [] }),
  };
  return { addon, counts };
}

const shape = option('shape', 'llama2-7b');
const context = Number(option('context', '30720'));
const batch = Number(option('batch', '4'));
const steps = Number(option('steps', '50'));
const [policy, budget] = option('plan', 'arkvale@2048').split('@');
const pageSize = Number(option('page-size', '32'));
const { addon, counts } = idleAddon();
const backend = new CudaBackend({ addon, dtype: 'f16', graphs: option('graphs', '1') !== '0' });
const config = shapeConfig(shape);
const weights = randomLlamaWeights(config, backend, 7);
const forward = new LlamaForward(config, weights, backend, context + steps + 1);
const geometry = kvGeometry(config, pageSize, 2);
const plan = { policy, budgetTokens: budget ? Number(budget) : undefined, pageSize, ...(option('select-on') ? { selectOn: option('select-on') } : {}) };
const pools = poolPagesFor(geometry, resolveCacheOptions(geometry, { ...plan, devicePages: 1 }), context + steps, batch);
const cache = new KvCache({ geometry, options: { ...plan, ...pools }, backend });
const ids = Array.from({ length: batch }, () => cache.admit(context));
const prompt = Array.from({ length: context }, (_, i) => i % config.vocabSize);
backend.tidy(() => forward.prefill(cache, ids.map((id) => ({ id, tokens: prompt }))));
let tokens = ids.map(() => 1);
const times = [];
counts.clear();
const profileFile = option('profile');
const session = profileFile ? new Session() : null;
for (let s = 0; s < steps; s++) {
  if (session && s === 5) {
    session.connect();
    await session.post('Profiler.enable');
    await session.post('Profiler.start');
  }
  const t0 = performance.now();
  tokens = Array.from(backend.readSync(backend.tidy(() => backend.argmax(forward.decode(cache, ids, tokens)))));
  times.push(performance.now() - t0);
}
if (session) {
  const { profile } = await session.post('Profiler.stop');
  writeFileSync(profileFile, JSON.stringify(profile));
}
if (option("print-times")) process.stderr.write(times.map((t) => t.toFixed(1)).join(" ") + "\n");
const sorted = times.slice(5).sort((a, b) => a - b);
const perStep = Object.fromEntries([...counts].map(([k, v]) => [k, +(v / steps).toFixed(1)]));
process.stdout.write(`${JSON.stringify({ shape, context, batch, plan, hostMsPerStep: +sorted[Math.floor(sorted.length / 2)].toFixed(3), p10: +sorted[Math.floor(sorted.length / 10)].toFixed(3), p90: +sorted[Math.floor((sorted.length * 9) / 10)].toFixed(3), addonCallsPerStep: perStep, graphs: backend.graphStats })}\n`);
cache.close();
