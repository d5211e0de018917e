import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { STREAM, type CudaAddon, type GemmParams } from '../native.js';
import { BufferPool } from './buffer-pool.js';
import { PendingReads } from './pending-reads.js';
import { type RecordedResult, type StepParts, StepGraphs } from './step-graphs.js';
import { CudaTensor, DeviceBuffer } from './tensor.js';

/**
 * A device that really computes, in order: memory by address (device and pinned
 * alike), two i32 kernels, a "gemm" that adds, and graphs that hold the calls made
 * while capturing and run them at each launch. Calls made outside a graph are counted.
 */
class InterpretingGpu {
  private readonly blocks = new Map<bigint, Uint8Array>();
  private next = 0x1_0000n;
  private capturing: (() => void)[] | null = null;
  private readonly graphs = new Map<number, (() => void)[]>();
  events = 0;
  /** Events up to this one have completed; -1: every event completes at once (a device that has always caught up). */
  doneThrough = -1;
  syncs = 0;
  private graphIds = 0;
  /** Kernel launches, gemms and copies the device ran outside graphs. */
  direct = 0;
  graphLaunches = 0;

  readonly addon = {
    alloc: (bytes: number) => this.block(bytes),
    free: (ptr: bigint) => {
      if (!this.blocks.delete(ptr)) throw new Error(`free of unknown ${ptr}`);
    },
    hostAlloc: (bytes: number) => {
      const p = this.block(bytes);
      return { host: p, device: p };
    },
    hostView: (host: bigint) => {
      // Blocks are their own ArrayBuffers: a view from a block's start is the block.
      const [base, mem] = this.find(host);
      if (base !== host) throw new Error('hostView from inside a block');
      return mem.buffer;
    },
    hostFree: (host: bigint) => this.addon.free(host),
    upload: (dst: bigint, src: ArrayBufferView) => {
      const data = new Uint8Array(src.buffer, src.byteOffset, src.byteLength).slice();
      this.run(() => this.bytes(dst, data.byteLength).set(data));
    },
    download: (src: bigint, dst: ArrayBufferView) => {
      new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength).set(this.bytes(src, dst.byteLength));
    },
    copy: (dst: bigint, src: bigint, bytes: number) => this.run(() => this.bytes(dst, bytes).set(this.bytes(src, bytes).slice())),
    memset: (dst: bigint, byte: number, bytes: number) => this.run(() => this.bytes(dst, bytes).fill(byte)),
    launch: (name: string, _grid: readonly number[], params: Uint8Array) => {
      const v = new DataView(params.buffer, params.byteOffset, params.byteLength);
      const out = v.getBigUint64(0, true);
      const input = v.getBigUint64(8, true);
      const n = v.getUint32(16, true);
      const c = v.getInt32(20, true);
      this.run(() => {
        const x = this.i32(input, n);
        const y = this.i32(out, n);
        for (let i = 0; i < n; i++) y[i] = name === 'add' ? x[i] + c : x[i] * c;
      });
    },
    gemm: (p: GemmParams) =>
      this.run(() => {
        const a = this.i32(p.a, p.m);
        const b = this.i32(p.b, p.m);
        const c = this.i32(p.c, p.m);
        for (let i = 0; i < p.m; i++) c[i] = a[i] + b[i];
      }),
    recordEvent: () => ++this.events,
    waitEvent: () => {},
    eventDone: (e: number) => this.doneThrough < 0 || e <= this.doneThrough,
    releaseEvent: () => {},
    synchronize: () => {
      this.syncs++;
      if (this.doneThrough >= 0) this.doneThrough = this.events;
    },
    copyPages: () => {},
    beginCapture: () => {
      this.capturing = [];
    },
    endCapture: () => {
      const id = ++this.graphIds;
      this.graphs.set(id, this.capturing!);
      this.capturing = null;
      return id;
    },
    launchGraph: (id: number) => {
      this.graphLaunches++;
      for (const work of this.graphs.get(id)!) work();
    },
    destroyGraph: (id: number) => {
      if (!this.graphs.delete(id)) throw new Error(`destroyGraph of unknown ${id}`);
    },
  };

  get liveBlocks(): number {
    return this.blocks.size;
  }

  get liveGraphs(): number {
    return this.graphs.size;
  }

  read(ptr: bigint, n: number): number[] {
    return [...this.i32(ptr, n)];
  }

  private run(work: () => void): void {
    if (this.capturing) this.capturing.push(work);
    else {
      this.direct++;
      work();
    }
  }

  private block(bytes: number): bigint {
    const p = this.next;
    this.next += BigInt(Math.ceil(bytes / 256) * 256 + 256);
    this.blocks.set(p, new Uint8Array(bytes));
    return p;
  }

  private find(ptr: bigint): [bigint, Uint8Array] {
    for (const [base, mem] of this.blocks) if (ptr >= base && ptr < base + BigInt(mem.byteLength)) return [base, mem];
    throw new Error(`address ${ptr} outside every block`);
  }

  private bytes(ptr: bigint, n: number): Uint8Array {
    const [base, mem] = this.find(ptr);
    return mem.subarray(Number(ptr - base), Number(ptr - base) + n);
  }

  private i32(ptr: bigint, n: number): Int32Array {
    const b = this.bytes(ptr, n * 4);
    return new Int32Array(b.buffer, b.byteOffset, n);
  }
}

function params(out: bigint, input: bigint, n: number, c: number): Uint8Array {
  const p = new Uint8Array(24);
  const v = new DataView(p.buffer);
  v.setBigUint64(0, out, true);
  v.setBigUint64(8, input, true);
  v.setUint32(16, n, true);
  v.setInt32(20, c, true);
  return p;
}

/** The addon, pool and graphs as CudaDevice wires them, over the interpreting device. */
function setup(pieceOps?: number, firstPieceOps?: number) {
  const gpu = new InterpretingGpu();
  const graphs = new StepGraphs(gpu.addon as unknown as CudaAddon, true, pieceOps, firstPieceOps);
  const pool = new BufferPool(graphs.addon, graphs);
  return { gpu, graphs, pool, addon: graphs.addon };
}

type Setup = ReturnType<typeof setup>;

/** What a step computes: ((x + c) * 3) + x, with an extra "+ 1" pass when `extra`. */
function expected(x: readonly number[], c: number, extra: boolean): number[] {
  return x.map((v) => (v + c) * 3 + v + (extra ? 1 : 0));
}

/** A step of the shape a decode step has: uploads, launches, a gemm, buffers freed within it, one result returned. */
function step({ addon, pool }: Setup, x: readonly number[], c: number, extra: boolean): bigint {
  const n = x.length;
  const input = pool.alloc(n * 4, 'x');
  addon.upload(input, Int32Array.from(x), STREAM.compute, 'x');
  const shifted = pool.alloc(n * 4, 'x + c');
  addon.launch('add', [1, 1, 1], params(shifted, input, n, c), STREAM.compute);
  const tripled = pool.alloc(n * 4, '3 (x + c)');
  addon.launch('mul', [1, 1, 1], params(tripled, shifted, n, 3), STREAM.compute);
  pool.release(shifted, n * 4);
  let out = pool.alloc(n * 4, 'sum');
  addon.gemm({
    transA: false,
    transB: false,
    m: n,
    n: 1,
    k: 1,
    a: tripled,
    aType: 'f32',
    lda: n,
    b: input,
    bType: 'f32',
    ldb: n,
    c: out,
    cType: 'f32',
    ldc: n,
    alpha: 1,
    beta: 0,
    stream: STREAM.compute,
    what: 'sum',
  });
  if (extra) {
    const more = pool.alloc(n * 4, 'sum + 1');
    addon.launch('add', [1, 1, 1], params(more, out, n, 1), STREAM.compute);
    pool.release(out, n * 4);
    out = more;
  }
  pool.release(input, n * 4);
  pool.release(tripled, n * 4);
  return out;
}

/** A step that is all body (no prelude, never skipped: run without `recorded`, its replays are always checked). */
function whole<T>(body: () => T): StepParts<undefined, T> {
  return { prelude: () => undefined, body, skipped: () => {} };
}

/** The graphs' run with CudaBackend's detach: the result copied out of the graph's buffers. */
function runStep(s: Setup, key: string, x: readonly number[], c: number, extra: boolean): number[] {
  const n = x.length;
  const out = s.graphs.run(
    key,
    whole(() => step(s, x, c, extra)),
    (ptr) => {
      if (!s.graphs.owns(ptr)) return ptr;
      const own = s.pool.alloc(n * 4, 'result');
      s.addon.copy(own, ptr, n * 4, STREAM.compute, 'result');
      s.pool.release(ptr, n * 4);
      return own;
    },
  );
  const values = s.gpu.read(out, n);
  s.pool.release(out, n * 4);
  return values;
}

/** The host state a parted step reads: `k`, added to every element, and how often its body ran or was skipped. */
interface Host {
  k: number;
  bodies: number;
  skips: number;
}

/**
 * A step in parts (StepParts), as a decode step has them: the prelude uploads x (the
 * step's input); the body computes (x + c) * 3 + k, k uploaded each step from `host`:
 * with `refresh` through uploadEachStep (a direct replay reads host.k again), else as
 * a plain upload (a changed k is then a body the record does not predict).
 */
function partedStep(s: Setup, x: readonly number[], c: number, host: Host, refresh: boolean): StepParts<bigint, bigint> {
  const n = x.length;
  const ks = () => Int32Array.from(x, () => host.k);
  return {
    prelude: () => {
      const input = s.pool.alloc(n * 4, 'x');
      s.addon.upload(input, Int32Array.from(x), STREAM.compute, 'x');
      return input;
    },
    body: (input) => {
      host.bodies++;
      const shifted = s.pool.alloc(n * 4, 'x + c');
      s.addon.launch('add', [1, 1, 1], params(shifted, input, n, c), STREAM.compute);
      const tripled = s.pool.alloc(n * 4, '3 (x + c)');
      s.addon.launch('mul', [1, 1, 1], params(tripled, shifted, n, 3), STREAM.compute);
      s.pool.release(shifted, n * 4);
      const k = s.pool.alloc(n * 4, 'k');
      if (refresh) s.graphs.uploadEachStep(k, ks, 'k');
      else s.addon.upload(k, ks(), STREAM.compute, 'k');
      const out = s.pool.alloc(n * 4, 'out');
      s.addon.gemm({ ...SUM, m: n, a: tripled, b: k, c: out, lda: n, ldb: n, ldc: n });
      s.pool.release(tripled, n * 4);
      s.pool.release(k, n * 4);
      s.pool.release(input, n * 4);
      return out;
    },
    skipped: (input) => {
      host.skips++;
      s.pool.release(input, n * 4);
    },
  };
}

const SUM: GemmParams = {
  transA: false,
  transB: false,
  m: 0,
  n: 1,
  k: 1,
  a: 0n,
  aType: 'f32',
  lda: 0,
  b: 0n,
  bType: 'f32',
  ldb: 0,
  c: 0n,
  cType: 'f32',
  ldc: 0,
  alpha: 1,
  beta: 0,
  stream: STREAM.compute,
  what: 'sum',
};

/** Runs a parted step as CudaBackend does (detach, and the recorded result for direct replays); its values. */
function runParted(s: Setup, key: string, x: readonly number[], c: number, host: Host, refresh: boolean): number[] {
  const n = x.length;
  const own = (ptr: bigint) => {
    const copy = s.pool.alloc(n * 4, 'result');
    s.addon.copy(copy, ptr, n * 4, STREAM.compute, 'result');
    return copy;
  };
  const recorded: RecordedResult<bigint> = { same: (a, b) => a === b, copy: own };
  const out = s.graphs.run(
    key,
    partedStep(s, x, c, host, refresh),
    (ptr) => {
      if (!s.graphs.owns(ptr)) return ptr;
      const copy = own(ptr);
      s.pool.release(ptr, n * 4);
      return copy;
    },
    recorded,
  );
  const values = s.gpu.read(out, n);
  s.pool.release(out, n * 4);
  return values;
}

const partedExpected = (x: readonly number[], c: number, k: number) => x.map((v) => (v + c) * 3 + k);

describe('StepGraphs', () => {
  it('records a step, then replays it as a graph launch on new data, with the same results', () => {
    const s = setup();
    expect(runStep(s, 'k', [1, 2, 3, 4], 5, false)).toEqual(expected([1, 2, 3, 4], 5, false));
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 0, graphs: 1 });
    for (let i = 0; i < 3; i++) {
      const direct = s.gpu.direct;
      const x = [10 * i, -i, 7, i * i];
      expect(runStep(s, 'k', x, 5, false)).toEqual(expected(x, 5, false));
      // The launches, gemm and upload ran inside the graph; only the result's copy ran outside it.
      expect(s.gpu.direct - direct).toBe(1);
    }
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 3, fallbacks: 0 });
    expect(s.gpu.graphLaunches).toBe(3);
  });

  it('runs a step issued while the last one under its key still runs on a second instance of its graph, without waiting for the device', () => {
    const s = setup();
    // The device finishes work only when told (the host issues a step before the last one's tokens are read).
    s.gpu.doneThrough = 0;
    const steps: number[] = [];
    const check = (i: number) => {
      const x = [i, 2 * i, -i];
      expect(runStep(s, 'k', x, 5, false)).toEqual(expected(x, 5, false));
      steps.push(s.gpu.events);
    };
    check(1);
    // Step 1 still runs: step 2 replays a second instance, captured from the record, instead of waiting.
    check(2);
    expect(s.gpu.syncs).toBe(0);
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 1, instances: 1, graphs: 1 });
    // Step 1 is done (its tokens were read): step 3 replays the first instance, step 4 the second once step 2 is done.
    s.gpu.doneThrough = steps[0];
    check(3);
    s.gpu.doneThrough = steps[1];
    check(4);
    expect(s.gpu.syncs).toBe(0);
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 3, fallbacks: 0, instances: 1, graphs: 1 });
    // Both still running: the host waits for the device, then replays.
    check(5);
    expect(s.gpu.syncs).toBe(1);
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 4, instances: 1 });
  });

  it('waits for the device when a second instance cannot be captured, and does not try again', () => {
    const s = setup();
    s.gpu.doneThrough = 0;
    const endCapture = s.gpu.addon.endCapture;
    let captures = 0;
    s.gpu.addon.endCapture = () => {
      // The record's own capture succeeds; every later one fails (the stream leaves capture mode, as cudaStreamEndCapture's does).
      const id = endCapture();
      if (++captures === 1) return id;
      s.gpu.addon.destroyGraph(id);
      throw new Error('capture failed');
    };
    for (let i = 0; i < 4; i++) {
      const x = [i, -i];
      expect(runStep(s, 'k', x, 2, false)).toEqual(expected(x, 2, false));
    }
    expect(captures).toBe(2);
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 3, instances: 0, fallbacks: 0 });
    expect(s.gpu.syncs).toBe(3);
  });

  it("gives a second instance the record's inputs, so that a direct replay on it reads the body's unchanged uploads", () => {
    const s = setup();
    // k is uploaded plainly (the key names it): a direct replay writes only the prelude's x, and finds k already there.
    const host: Host = { k: 5, bodies: 0, skips: 0 };
    s.gpu.doneThrough = 0;
    for (let i = 0; i < 5; i++) {
      // The device keeps up for the record and the checked replay, then lags: the later steps alternate instances.
      if (i < 2) s.gpu.doneThrough = s.gpu.events;
      const x = [i, 1 - i];
      expect(runParted(s, 'a k 5', x, 1, host, false), `step ${i}`).toEqual(partedExpected(x, 1, 5));
    }
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 4, direct: 3, instances: 1, fallbacks: 0 });
    expect(host.skips).toBe(3);
    expect(s.gpu.syncs).toBe(1);
  });

  it('finishes a step that differs from its record without the graph, and records it again', () => {
    const s = setup();
    runStep(s, 'k', [1, 2], 1, false);
    expect(runStep(s, 'k', [3, 4], 2, true)).toEqual(expected([3, 4], 2, true));
    expect(s.graphs.stats).toMatchObject({ fallbacks: 1, replayed: 0, graphs: 0 });
    expect(s.graphs.stats.lastFallback).toMatch(/alloc of 256 bytes, the record has nothing more|launch add/);
    // Another scalar is another step too: the launch's parameters differ.
    runStep(s, 'k', [1, 2], 1, false);
    expect(runStep(s, 'k', [5, 6], 1, false)).toEqual(expected([5, 6], 1, false));
    expect(s.graphs.stats.replayed).toBe(1);
  });

  it('never graphs a step that synchronises, and still computes it', () => {
    const s = setup();
    for (let i = 0; i < 3; i++) {
      const out = s.graphs.run(
        'sync',
        whole(() => {
          const r = step(s, [i, 1], 2, false);
          s.addon.synchronize(STREAM.compute);
          return r;
        }),
        (ptr) => ptr,
      );
      expect(s.gpu.read(out, 2)).toEqual(expected([i, 1], 2, false));
      s.pool.release(out, 8);
    }
    expect(s.graphs.stats).toMatchObject({ recorded: 1, unreplayable: 1, replayed: 0, graphs: 0 });
  });

  it('carries out what a replayed step issued before it threw, and drops the graph', () => {
    const s = setup(2);
    runStep(s, 'k', [1, 2], 1, false);
    let shifted = 0n;
    expect(() =>
      s.graphs.run(
        'k',
        whole(() => {
          // The first calls of the step (upload, add) match the record, then the step fails.
          const n = 2;
          const input = s.pool.alloc(n * 4, 'x');
          s.addon.upload(input, Int32Array.from([7, 8]), STREAM.compute, 'x');
          shifted = s.pool.alloc(n * 4, 'x + c');
          s.addon.launch('add', [1, 1, 1], params(shifted, input, n, 1), STREAM.compute);
          throw new Error('out of pages');
        }),
        (x) => x,
      ),
    ).toThrow('out of pages');
    // The add ran (it was issued before the failure), and the graph is gone.
    expect(s.gpu.read(shifted, 2)).toEqual([8, 9]);
    expect(s.graphs.stats.graphs).toBe(0);
    expect(runStep(s, 'k', [3, 4], 1, false)).toEqual(expected([3, 4], 1, false));
  });

  it('defers a read made during a step until the step is issued', () => {
    const s = setup();
    const reads = new PendingReads(s.addon, 1 << 16, s.graphs);
    for (let i = 0; i < 3; i++) {
      let read!: ReturnType<PendingReads['read']>;
      runStep(s, 'r', [i], 0, false);
      s.graphs.run(
        'r2',
        whole(() => {
          const ptr = step(s, [i, i], 1, false);
          const t = new CudaTensor(new DeviceBuffer(ptr, 8, (p, b) => s.pool.release(p, b)), 0, [2], 'i32');
          read = reads.read(t);
          expect(() => read.get()).toThrow(/before the end of the step/);
          t.buffer.drop();
          return 0n;
        }),
        (x) => x,
      );
      expect([...read.get()]).toEqual(expected([i, i], 1, false));
    }
    expect(s.graphs.stats.replayed).toBe(4);
  });

  it.each([
    // One call per piece: the step's calls (allocations, an upload, launches, a gemm), each launched as it is checked.
    [1, undefined, 10],
    // Pieces of 4: 4 + 4 + 2, all launched by the step's end.
    [4, undefined, 3],
    // A first piece of 1, then doubling up to 4: 1 + 2 + 4 + 3.
    [4, 1, 4],
    // A first piece of 2, then doubling (the cap of 128 not reached): 2 + 4 + 4, the last the rest.
    [128, 2, 3],
  ])('launches a step in pieces as their calls are checked (pieces up to %i, the first of %s)', (pieceOps, firstPieceOps, launches) => {
    const s = setup(pieceOps, firstPieceOps);
    runStep(s, 'k', [1, 2], 1, true);
    let launchedMidStep = 0;
    const x = [4, 5];
    const out = s.graphs.run(
      'k',
      whole(() => {
        const r = step(s, x, 1, true);
        launchedMidStep = s.gpu.graphLaunches;
        return r;
      }),
      (ptr) => ptr,
    );
    expect(launchedMidStep).toBe(launches);
    expect(s.gpu.read(out, 2)).toEqual(expected(x, 1, true));
  });

  it('replays a step directly, its body skipped, once a checked replay showed the record predicts it', () => {
    const s = setup(4, 2);
    const host: Host = { k: 0, bodies: 0, skips: 0 };
    for (let i = 0; i < 6; i++) {
      host.k = 10 * i;
      const x = [i, 2 * i, -i];
      expect(runParted(s, 'k', x, 5, host, true)).toEqual(partedExpected(x, 5, host.k));
    }
    // Recorded, checked (and found predicted), then four direct replays: the body ran twice.
    expect(s.graphs.stats).toMatchObject({ recorded: 1, replayed: 5, direct: 4, fallbacks: 0 });
    expect(host).toMatchObject({ bodies: 2, skips: 4 });
  });

  it('keeps checking replays whose body uploads what the record cannot predict, and replays directly when it can', () => {
    const s = setup();
    const host: Host = { k: 1, bodies: 0, skips: 0 };
    for (let i = 0; i < 4; i++) {
      host.k = i;
      expect(runParted(s, 'k', [i, 1], 2, host, false)).toEqual(partedExpected([i, 1], 2, i));
    }
    expect(s.graphs.stats).toMatchObject({ replayed: 3, direct: 0 });
    // The same body with k unchanged: its upload is the record's bytes, so replays go direct.
    for (let i = 0; i < 3; i++) expect(runParted(s, 'same k', [i, 7], 2, host, false)).toEqual(partedExpected([i, 7], 2, host.k));
    expect(s.graphs.stats.direct).toBe(1);
  });

  it("falls back and runs the body when a direct replay's prelude differs from the record", () => {
    const s = setup(2);
    const host: Host = { k: 3, bodies: 0, skips: 0 };
    for (let i = 0; i < 3; i++) runParted(s, 'k', [1, 2], 1, host, true);
    expect(s.graphs.stats.direct).toBe(1);
    // Three inputs under the same key: the prelude's allocation differs, and the body runs.
    expect(runParted(s, 'k', [4, 5, 6], 1, host, true)).toEqual(partedExpected([4, 5, 6], 1, 3));
    expect(s.graphs.stats).toMatchObject({ direct: 1, fallbacks: 1 });
    expect(host.bodies).toBe(3);
  });

  it('never skips the body without a way to give the recorded result, or with direct replays off', () => {
    const s = setup();
    const host: Host = { k: 0, bodies: 0, skips: 0 };
    for (let i = 0; i < 4; i++) runStep(s, 'plain', [i], 1, false);
    s.graphs.directReplay = false;
    for (let i = 0; i < 4; i++) expect(runParted(s, 'off', [i], 1, host, true)).toEqual(partedExpected([i], 1, 0));
    expect(s.graphs.stats).toMatchObject({ replayed: 6, direct: 0 });
  });

  it('property: any run of steps under any keys computes what eager steps do, and gives every buffer back', () => {
    const stepArb = fc.record({
      key: fc.constantFrom('a', 'b', 'c'),
      x: fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 1, maxLength: 2 }),
      // Mostly the same work under a key, sometimes not.
      c: fc.constantFrom(1, 1, 1, 2),
      extra: fc.constantFrom(false, false, false, true),
    });
    const seen = { replayed: 0, fallbacks: 0 };
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 1, maxLength: 40 }),
        fc.constantFrom(2, 3, 5, 128),
        fc.constantFrom(1, 2, undefined),
        (steps, pieceOps, firstPieceOps) => {
          const s = setup(pieceOps, firstPieceOps);
          for (const t of steps) {
            // Keys that usually but not always mean equal work (the launch scalar c and the extra pass are not in them).
            const key = `${t.key} ${t.x.length}`;
            expect(runStep(s, key, t.x, t.c, t.extra)).toEqual(expected(t.x, t.c, t.extra));
          }
          const st = s.graphs.stats;
          expect(st.recorded + st.replayed + st.fallbacks).toBeGreaterThanOrEqual(steps.length);
          seen.replayed += st.replayed;
          seen.fallbacks += st.fallbacks;
          s.graphs.clear();
          s.pool.trim();
          expect(s.gpu.liveBlocks - pinnedBlocks(s)).toBe(0);
          expect(s.gpu.liveGraphs).toBe(0);
        },
      ),
      { numRuns: 300 },
    );
    // The runs did replay graphs and did fall back (a property that never replays would prove nothing).
    expect(seen.replayed).toBeGreaterThan(100);
    expect(seen.fallbacks).toBeGreaterThan(100);
  });

  it('property: parted steps, direct or checked, compute what eager steps do and give every buffer back', () => {
    const stepArb = fc.record({
      key: fc.constantFrom('a', 'a', 'b'),
      x: fc.array(fc.integer({ min: -1000, max: 1000 }), { minLength: 2, maxLength: 2 }),
      c: fc.constantFrom(1, 1, 1, 1, 2),
      // k changes at some steps: refreshed, or (plain) a body the record predicts only under a key that names k.
      k: fc.constantFrom(0, 0, 1, 5),
      refresh: fc.constantFrom(true, true, true, false),
      // Whether the device has finished everything before the step (else the step may need a second instance).
      caughtUp: fc.boolean(),
    });
    const seen = { direct: 0, instances: 0 };
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 40 }), fc.constantFrom(2, 5, 128), fc.boolean(), (steps, pieceOps, lags) => {
        const s = setup(pieceOps);
        if (lags) s.gpu.doneThrough = 0;
        const host: Host = { k: 0, bodies: 0, skips: 0 };
        for (const t of steps) {
          host.k = t.k;
          if (lags && t.caughtUp) s.gpu.doneThrough = s.gpu.events;
          // A key names what the body's calls depend on, other than refreshed values: c, and k where it is uploaded plainly.
          const key = `${t.key} ${t.x.length} c ${t.c}${t.refresh ? '' : ` k ${t.k}`}`;
          expect(runParted(s, key, t.x, t.c, host, t.refresh)).toEqual(partedExpected(t.x, t.c, t.k));
        }
        seen.direct += s.graphs.stats.direct;
        seen.instances += s.graphs.stats.instances;
        s.graphs.clear();
        s.pool.trim();
        expect(s.gpu.liveBlocks - pinnedBlocks(s)).toBe(0);
        expect(s.gpu.liveGraphs).toBe(0);
      }),
      { numRuns: 300 },
    );
    expect(seen.direct).toBeGreaterThan(100);
    expect(seen.instances).toBeGreaterThan(20);
  });
});

/** Pinned input chunks stay with the graphs for reuse. */
function pinnedBlocks(s: Setup): number {
  return (s.graphs as unknown as { freeChunks: unknown[] }).freeChunks.length;
}
