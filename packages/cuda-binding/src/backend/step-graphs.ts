import { STREAM, type CudaAddon, type GemmParams, type PinnedBlock } from '../native.js';

/**
 * CUDA graphs of decode steps (docs/DEVICE-STEP.md): a step is issued once with every addon
 * call recorded (and carried out as usual), then captured from that record into a graph;
 * a later step under the same key runs the same JavaScript, but its addon calls are only
 * checked against the record (and its uploads written into the graph's pinned inputs),
 * and the step goes to the device as a few graph launches, each piece of 128 calls as
 * soon as they are checked (one launch at the end would leave the device idle while
 * the host runs the step's JavaScript). The host then pays for the step's JavaScript
 * and ~12 launches instead of ~700 launches and cuBLAS calls.
 *
 * A graph's buffers are its own: the step's allocations are handed the recorded
 * addresses again, and the buffer pool gets them back only when the graph is dropped.
 * Within the recorded step a freed buffer is reused as the pool would (so the graph
 * holds the step's working set, not every allocation); a result read after the step
 * (the logits, a readLater) is held until then, so nothing reuses it.
 * A step whose calls differ from the record (another launch, other arguments, a
 * synchronisation) falls back at the first difference: the recorded calls before it
 * are issued for real, in order, and the rest of the step runs as usual, so a wrong key
 * costs time, never a wrong result. A recorded step that cannot be replayed (it waits on
 * the host, works on another stream, or keeps a buffer past its end) marks its key as
 * never to be captured.
 *
 * A step comes in parts (StepParts): a prelude (the host's bookkeeping and the step's
 * inputs: its calls come first and repeat under a key), a body (the forward pass), and
 * what a body leaves the host to do when it is skipped. Once a replay has been checked
 * call by call and every upload of its body was what the record predicts (the same
 * bytes, or what the upload's `refresh` computes now), the key replays **directly**: the
 * prelude runs as before, the body's uploads are refreshed into the graph's pinned
 * inputs, and the rest of the graph is launched without running the body's JavaScript
 * (issue 22: a replayed step's host cost then no longer grows with the model). A
 * prelude whose calls differ from the record still falls back, and the body then runs.
 */

/** One recorded addon call of a step. */
type Op =
  | { readonly kind: 'launch'; readonly name: string; readonly grid: readonly [number, number, number]; readonly params: Uint8Array }
  | { readonly kind: 'gemm'; readonly params: GemmParams }
  | { readonly kind: 'copy'; readonly dst: bigint; readonly src: bigint; readonly bytes: number }
  | { readonly kind: 'memset'; readonly dst: bigint; readonly byte: number; readonly bytes: number }
  /**
   * A host -> device upload, from a pinned input of each instance (GraphInstance.inputs).
   * In the body: `template`, the bytes it had when recorded, or `refresh`, which gives
   * its bytes at a later step (a direct replay writes them into the input).
   */
  | {
      readonly kind: 'upload';
      readonly dst: bigint;
      readonly bytes: number;
      readonly template?: Uint8Array;
      readonly refresh?: () => ArrayBufferView;
    }
  | { readonly kind: 'alloc'; readonly size: number; readonly ptr: bigint };

/** Pinned memory a graph's uploads read from; a step writes its inputs here before the launch. */
interface PinnedChunk {
  readonly block: PinnedBlock;
  readonly view: Uint8Array;
  used: number;
}

/** Where one upload of an instance reads from: pinned memory at host address `host`, seen as `view`. */
interface PinnedInput {
  readonly host: bigint;
  readonly view: Uint8Array;
}

/**
 * A record captured as graphs: its pieces, the pinned inputs its uploads read (by op
 * index), and an event after its last launch. A step rewrites the inputs before its
 * launch, so it needs an instance whose last launch is done; a graph has a second
 * instance, over the same buffers, for a step issued while the first still runs
 * (StepGraphs.idleInstance).
 */
class GraphInstance {
  readonly ids: number[] = [];
  readonly inputs: PinnedInput[] = [];
  /** An event after the instance's last launch; -1 before the first. */
  done = -1;
}

class StepGraph {
  readonly ops: Op[] = [];
  /** Buffers the graph owns (its step's allocations), with their sizes. */
  readonly owned = new Map<bigint, number>();
  /** While recording: owned buffers the step has freed, by size, for its later allocations (as the pool would reuse them). */
  readonly spare = new Map<number, bigint[]>();
  /** Pinned memory of every instance's inputs. */
  readonly chunks: PinnedChunk[] = [];
  /** Owned buffers some tensor still holds. */
  live = 0;
  /**
   * The step in pieces: each instance's graph `ids[i]` holds ops [ends[i - 1], ends[i]).
   * A replay launches each piece as soon as its calls are checked, so the device starts
   * while the host still runs the rest of the step's JavaScript.
   */
  readonly ends: number[] = [];
  /** The first is recorded; the second captured when a step finds the first still running. */
  readonly instances: GraphInstance[] = [new GraphInstance()];
  /** Capturing a second instance failed once: steps wait for the first instead (no pinned inputs made again each step). */
  noSecond = false;
  dropped = false;
  /** Calls of the step's prelude (StepParts): the record's first `preludeEnd` ops. */
  preludeEnd = -1;
  /** The body's result as recorded (a direct replay copies it from the graph's buffers). */
  result: unknown = undefined;
  /** Replays launch the body without running it (a checked replay found the record predicts it). */
  direct = false;

  constructor(readonly key: string) {}
}

/**
 * A step in three parts. `prelude` runs for every step: the host's bookkeeping and the
 * step's inputs, whose calls come first and are the same under a key. `body` is the rest
 * (the forward pass); a direct replay skips it and calls `skipped` instead, which does
 * what the body would have left the host to do (read its decisions back, free the
 * prelude's tensors). A step recorded or replayed call by call runs prelude then body.
 */
export interface StepParts<P, T> {
  prelude(): P;
  body(prelude: P): T;
  /** Absent: this step's body must run (it would change what the host knows). */
  skipped?(prelude: P): void;
}

/** How a direct replay gives the body's result: the recorded one's twin, read from the graph's buffers. */
export interface RecordedResult<T> {
  /** Whether two results are the same buffers and shapes (a checked replay's and the record's). */
  same(a: T, b: T): boolean;
  /** The recorded result copied to memory of its own (the next replay overwrites the graph's). */
  copy(recorded: T): T;
}

/** What the graphs did, for benchmarks and tests. */
export interface StepGraphStats {
  /** Steps issued and recorded (then captured, when they could be). */
  recorded: number;
  /** Steps that ran as graph launches (the record's pieces). */
  replayed: number;
  /** Of those, replays that skipped the body's JavaScript (StepParts). */
  direct: number;
  /** Replays whose calls differed from the record: finished without the graph. */
  fallbacks: number;
  /** Recorded steps that could not become graphs (their keys run without one from then on). */
  unreplayable: number;
  /** Graphs that exist now. */
  graphs: number;
  /** Second instances captured, for steps issued while the first still ran (StepGraphs.idleInstance). */
  instances: number;
  /** Where the last fallback happened: the call that differed from the record. */
  lastFallback?: string;
}

type Mode = 'eager' | 'record' | 'replay' | 'fallback';

const PINNED_CHUNK_BYTES = 256 << 10;
const ALIGN = 256;
/** Graphs kept at once: keys change when a page starts, so older graphs are rarely used again. */
const MAX_GRAPHS = 3;
/** The most calls in one graph piece. */
const PIECE_OPS = 128;
/**
 * Calls in a step's first piece; each later piece holds twice the calls of the one
 * before, up to PIECE_OPS. The device idles from the token readback until the host has
 * checked the first piece, and then whenever it finishes a piece before the host has
 * checked the next. At the 7B shape a graphed ArkVale step's JavaScript took 3.6 ms for
 * ~570 calls on an H200's host (about 6 us a call) and its device time about 15 us a
 * call, so a piece twice the last is checked while the last runs; a first piece of 16
 * followed at once by 128 left the device waiting about 0.5 ms (the estimate from those
 * rates) for the second.
 */
const FIRST_PIECE_OPS = 16;
const MAX_UNREPLAYABLE_KEYS = 4096;

export class StepGraphs {
  /** The addon every backend call goes through: the real one, but recorded or checked during a step. */
  readonly addon: CudaAddon;
  private mode: Mode = 'eager';
  private graph: StepGraph | null = null;
  /** The instance the step records or replays. */
  private instance: GraphInstance | null = null;
  private cursor = 0;
  /** The replay's next piece to launch. */
  private piece = 0;
  /** Event waits of a replayed step: issued before the next piece's launch. */
  private waits: number[] = [];
  /** Work to issue after the step (reads of its results). */
  private deferred: (() => void)[] = [];
  private readonly graphs = new Map<string, StepGraph>();
  private readonly unreplayableKeys = new Set<string>();
  private readonly retired: StepGraph[] = [];
  private readonly owner = new Map<bigint, StepGraph>();
  private readonly freeChunks: PinnedChunk[] = [];
  private readonly counts = { recorded: 0, replayed: 0, direct: 0, fallbacks: 0, unreplayable: 0, instances: 0 };
  /** During a checked replay: whether everything so far says the body can be skipped next time. */
  private predicted = false;
  private lastFallback = '';
  /** Where a dropped graph's buffers go back to (the buffer pool's release). */
  private giveBack: (ptr: bigint, size: number) => void = (ptr) => this.real.free(ptr);

  /** Off: replays are always checked call by call (the host's cost before direct replays, for benchmarks). */
  directReplay = true;

  constructor(
    private readonly real: CudaAddon,
    /** Off: every step is issued call by call (the timings "without the graph"). */
    public enabled = true,
    /** The most calls in a graph piece (tests make it small). */
    private readonly pieceOps = PIECE_OPS,
    /** Calls in the first piece (later ones double). */
    private readonly firstPieceOps = Math.min(FIRST_PIECE_OPS, pieceOps),
  ) {
    this.addon = this.wrap();
  }

  get stats(): StepGraphStats {
    return { ...this.counts, graphs: this.graphs.size, ...(this.lastFallback ? { lastFallback: this.lastFallback } : {}) };
  }

  /** Whether a step is being recorded or replayed (reads of its results wait for its end). */
  get inStep(): boolean {
    return this.mode !== 'eager';
  }

  /** @internal Set by the buffer pool. */
  returnBuffersTo(release: (ptr: bigint, size: number) => void): void {
    this.giveBack = release;
  }

  /**
   * Runs one step under `key`: recorded the first time, replayed as a graph after that
   * (directly, its body skipped, once a checked replay showed the record predicts it).
   * `detach` runs after the step has been issued, with the step's result: it must copy
   * a result held in the graph's buffers to a buffer of its own (the next replay
   * overwrites them); `recorded` does the same for a direct replay (without it, replays
   * are always checked).
   */
  run<P, T>(key: string, parts: StepParts<P, T>, detach: (result: T) => T, recorded?: RecordedResult<T>): T {
    const whole = () => parts.body(parts.prelude());
    if (!this.enabled || this.mode !== 'eager') return whole();
    this.collect();
    if (this.unreplayableKeys.has(key)) return whole();
    const recordedUnder = this.graphs.get(key);
    if (recordedUnder) this.begin('replay', recordedUnder, this.idleInstance(recordedUnder));
    else {
      const fresh = new StepGraph(key);
      this.begin('record', fresh, fresh.instances[0]);
    }
    const g = this.graph!;
    const instance = this.instance!;
    let result: T;
    let direct = false;
    try {
      const p = parts.prelude();
      this.endPrelude(g);
      direct = recorded !== undefined && parts.skipped !== undefined && g.direct && this.now() === 'replay' && this.launchRest(g, instance);
      if (direct) {
        parts.skipped!(p);
        result = g.result as T;
      } else result = parts.body(p);
    } catch (e) {
      // What the step issued before failing is carried out, as it would have been without a graph.
      if (this.now() === 'replay' && !direct) this.fallBack('the step threw');
      this.end();
      for (const issue of this.drainDeferred()) issue();
      this.drop(g);
      throw e;
    }
    if (this.now() === 'replay' && this.cursor !== g.ops.length) this.fallBack('the step ended');
    const mode = this.now();
    if (mode === 'replay') {
      this.counts.replayed++;
      if (direct) this.counts.direct++;
      // A checked replay whose every body upload the record predicted, with the record's result: the next skips the body.
      else if (this.directReplay && this.predicted && recorded?.same(result, g.result as T)) g.direct = true;
    }
    this.end();
    const out = direct ? recorded!.copy(result) : detach(result);
    // Done with its inputs before the step's reads, which copy out of its buffers and not its inputs: a host that
    // waits for a read (a token policy's victims, before its next step) then finds the instance idle.
    this.markDone(instance);
    for (const issue of this.drainDeferred()) issue();
    if (mode === 'record') {
      g.result = result;
      this.finishRecord(g);
    }
    // A replay that fell back, or whose buffers a tensor still holds, is not replayed again.
    else if (mode !== 'replay' || g.live > 0) this.drop(g);
    return out;
  }

  /**
   * An instance of `g` whose last launch is done, for a step that rewrites its inputs:
   * the first, else the second, captured from the record the first time a step finds
   * the first still running (an engine's overlapped steps issue a step before reading
   * the last one's tokens). Both share the graph's buffers, which the stream's order
   * protects. With both still running (or no second to be had), the host waits.
   */
  private idleInstance(g: StepGraph): GraphInstance {
    const idle = (i: GraphInstance) => i.done < 0 || this.real.eventDone(i.done);
    const [first, second] = g.instances;
    if (idle(first)) return first;
    if (second ? idle(second) : !g.noSecond && this.captureSecond(g)) return g.instances[1];
    this.real.synchronize(STREAM.compute);
    return first;
  }

  /** Captures the record again over pinned inputs of its own (holding the first's bytes: the body's unchanged uploads). */
  private captureSecond(g: StepGraph): boolean {
    const [first] = g.instances;
    const second = new GraphInstance();
    first.inputs.forEach((input, i) => {
      const region = this.pinnedRegion(g, input.view.byteLength);
      region.view.set(input.view);
      second.inputs[i] = region;
    });
    if (!this.capture(g, second)) {
      for (const id of second.ids) this.real.destroyGraph(id);
      g.noSecond = true;
      return false;
    }
    g.instances.push(second);
    this.counts.instances++;
    return true;
  }

  /** The prelude's calls end here: where the record's body starts, or (replaying) where it must. */
  private endPrelude(g: StepGraph): void {
    if (this.mode === 'record') g.preludeEnd = g.ops.length;
    else if (this.mode === 'replay' && this.cursor !== g.preludeEnd) this.predicted = false;
  }

  /**
   * A direct replay's body: its uploads refreshed into the graph's inputs, and every
   * piece not yet launched. False, with nothing issued, when an upload cannot be
   * refreshed (the body then runs, checked, as before).
   */
  private launchRest(g: StepGraph, instance: GraphInstance): boolean {
    if (this.cursor !== g.preludeEnd) return false;
    const fresh: [Uint8Array, Uint8Array][] = [];
    for (let i = this.cursor; i < g.ops.length; i++) {
      const op = g.ops[i];
      if (op.kind !== 'upload' || !op.refresh) continue;
      let bytes: Uint8Array;
      try {
        bytes = asBytes(op.refresh());
      } catch {
        return false;
      }
      if (bytes.byteLength !== op.bytes) return false;
      fresh.push([instance.inputs[i].view, bytes]);
    }
    for (const [view, bytes] of fresh) view.set(bytes);
    for (const e of this.waits) this.real.waitEvent(STREAM.compute, e);
    this.waits = [];
    while (this.piece < instance.ids.length) this.real.launchGraph(instance.ids[this.piece++], STREAM.compute);
    this.cursor = g.ops.length;
    return true;
  }

  /** Issues `issue` now, or after the step when one is running (a read of what the step computes). */
  afterStep(issue: () => void): void {
    if (this.mode === 'eager') issue();
    else this.deferred.push(issue);
  }

  /** @internal The buffer pool's allocation during a step: the graph's own buffer, in record order. */
  alloc(size: number, fresh: () => bigint): bigint {
    const g = this.graph;
    if (this.mode === 'replay') {
      const op = g!.ops[this.cursor];
      if (op?.kind === 'alloc' && op.size === size) {
        g!.live++;
        this.advance();
        return op.ptr;
      }
      this.fallBack(`alloc of ${size} bytes`);
    }
    if (this.mode !== 'record') return fresh();
    // Buffers freed earlier in the step are reused, as eagerly issued steps do: the
    // step's working set stays small and in L2, and the graph holds only that much.
    let ptr = g!.spare.get(size)?.pop();
    if (ptr === undefined) {
      ptr = fresh();
      g!.owned.set(ptr, size);
      this.owner.set(ptr, g!);
    }
    g!.ops.push({ kind: 'alloc', size, ptr });
    g!.live++;
    return ptr;
  }

  /** Whether `ptr` is a buffer of a graph. */
  owns(ptr: bigint): boolean {
    return this.owner.has(ptr);
  }

  /** @internal Whether `ptr` belongs to a graph; if so the graph takes it back (true). */
  release(ptr: bigint): boolean {
    const g = this.owner.get(ptr);
    if (!g) return false;
    g.live--;
    if (this.mode === 'record' && g === this.graph) {
      const size = g.owned.get(ptr)!;
      let list = g.spare.get(size);
      if (!list) g.spare.set(size, (list = []));
      list.push(ptr);
    }
    return true;
  }

  /** Destroys every graph and returns the buffers no tensor holds any more (waits for the device if a graph still runs). */
  clear(): void {
    for (const g of [...this.graphs.values()]) this.drop(g);
    if (this.retired.some((g) => g.instances.some((i) => i.done >= 0 && !this.real.eventDone(i.done)))) this.real.synchronize(STREAM.compute);
    this.collect();
  }

  /** The mode now (a method, so that TypeScript does not narrow it across calls that change it). */
  private now(): Mode {
    return this.mode;
  }

  private begin(mode: Mode, g: StepGraph, instance: GraphInstance): void {
    this.mode = mode;
    this.graph = g;
    this.instance = instance;
    this.cursor = 0;
    this.piece = 0;
    this.waits = [];
    this.predicted = mode === 'replay' && !g.direct;
  }

  /** Past one checked call; a piece whose calls are all checked goes to the device. */
  private advance(): void {
    const g = this.graph!;
    if (++this.cursor !== g.ends[this.piece]) return;
    for (const e of this.waits) this.real.waitEvent(STREAM.compute, e);
    this.waits = [];
    this.real.launchGraph(this.instance!.ids[this.piece++], STREAM.compute);
  }

  private end(): void {
    this.mode = 'eager';
    this.graph = null;
    this.instance = null;
  }

  private drainDeferred(): (() => void)[] {
    const d = this.deferred;
    this.deferred = [];
    return d;
  }

  private markDone(instance: GraphInstance): void {
    if (instance.done >= 0) this.real.releaseEvent(instance.done);
    instance.done = this.real.recordEvent(STREAM.compute);
  }

  /** A recorded step becomes a graph unless it left a buffer held or stopped being recordable. */
  private finishRecord(g: StepGraph): void {
    g.spare.clear();
    this.counts.recorded++;
    if (g.live > 0 || !this.capture(g, g.instances[0])) {
      this.markUnreplayable(g.key);
      this.drop(g);
      return;
    }
    this.graphs.set(g.key, g);
    if (this.graphs.size > MAX_GRAPHS) this.drop(this.graphs.values().next().value!);
  }

  /**
   * Captures the record into `instance`'s graphs (nothing runs: the recorded step already
   * did): pieces of `firstPieceOps` calls, then twice as many each up to `pieceOps`, or
   * the pieces of the record's first capture.
   */
  private capture(g: StepGraph, instance: GraphInstance): boolean {
    const first = g.ends.length === 0;
    for (let start = 0, piece = 0, size = this.firstPieceOps; start < g.ops.length; piece++, size = Math.min(2 * size, this.pieceOps)) {
      const end = first ? Math.min(g.ops.length, start + size) : g.ends[piece];
      let failed = false;
      this.real.beginCapture(STREAM.compute);
      try {
        for (let i = start; i < end; i++) this.issue(g.ops[i], instance.inputs[i]);
      } catch {
        failed = true;
      }
      try {
        const id = this.real.endCapture(STREAM.compute);
        if (failed) this.real.destroyGraph(id);
        else {
          instance.ids.push(id);
          if (first) g.ends.push(end);
        }
      } catch {
        failed = true;
      }
      if (failed) return false;
      start = end;
    }
    return true;
  }

  private markUnreplayable(key: string): void {
    // Keys change as sequences grow: a long-running server would otherwise collect them forever.
    if (this.unreplayableKeys.size >= MAX_UNREPLAYABLE_KEYS) this.unreplayableKeys.clear();
    this.unreplayableKeys.add(key);
    this.counts.unreplayable++;
  }

  /** The record before the first difference (past the pieces launched) is issued for real; the step goes on call by call. */
  private fallBack(why: string): void {
    const g = this.graph!;
    this.counts.fallbacks++;
    this.predicted = false;
    g.direct = false;
    const expected = g.ops[this.cursor];
    this.lastFallback = `call ${this.cursor} of ${g.ops.length}: ${why}, the record has ${expected ? describe(expected) : 'nothing more'}`;
    for (const e of this.waits) this.real.waitEvent(STREAM.compute, e);
    for (let i = this.piece > 0 ? g.ends[this.piece - 1] : 0; i < this.cursor; i++) this.issue(g.ops[i], this.instance!.inputs[i]);
    this.mode = 'fallback';
  }

  /** A recorded step can no longer become a graph: it still runs, call by call. */
  private stopRecording(): void {
    if (this.mode !== 'record') return;
    this.markUnreplayable(this.graph!.key);
    this.counts.recorded++;
    // Its buffers stay the graph's (tensors hold them); the graph is dropped at the step's end.
    this.mode = 'fallback';
  }

  /** Issues a recorded call for real; an upload reads the instance's `input`. */
  private issue(op: Op, input: PinnedInput | undefined): void {
    const s = STREAM.compute;
    switch (op.kind) {
      case 'launch':
        return this.real.launch(op.name, op.grid, op.params, s);
      case 'gemm':
        return this.real.gemm(op.params);
      case 'copy':
        return this.real.copy(op.dst, op.src, op.bytes, s, 'a step graph copy');
      case 'memset':
        return this.real.memset(op.dst, op.byte, op.bytes, s, 'a step graph memset');
      case 'upload':
        return this.real.copy(op.dst, input!.host, op.bytes, s, 'a step graph upload');
      case 'alloc':
        return;
    }
  }

  /** Whether the next recorded call is `op`'s twin (replay), advancing past it; falls back otherwise. */
  private matches(same: (op: Op) => boolean, why: () => string): boolean {
    const op = this.graph!.ops[this.cursor];
    if (op !== undefined && same(op)) {
      this.advance();
      return true;
    }
    this.fallBack(why());
    return false;
  }

  /** A call on the compute stream: recorded, checked against the record, or passed on. */
  private onCompute(stream: number, op: () => Op, same: (op: Op) => boolean, call: () => void): void {
    if (this.mode === 'replay' && stream === STREAM.compute && this.matches(same, () => describe(op()))) return;
    if (this.mode === 'replay') this.fallBack(`${describe(op())} on stream ${stream}`);
    if (this.mode === 'record' && stream !== STREAM.compute) this.stopRecording();
    call();
    if (this.mode === 'record') this.graph!.ops.push(op());
  }

  /** A call a graph cannot hold (a wait on the host, another stream's work): it ends recording or replay. */
  private unrecordable(what: string): void {
    if (this.mode === 'record') this.stopRecording();
    else if (this.mode === 'replay') this.fallBack(what);
  }

  private pinnedRegion(g: StepGraph, bytes: number): { host: bigint; view: Uint8Array } {
    let chunk = g.chunks[g.chunks.length - 1];
    if (!chunk || chunk.used + bytes > chunk.view.byteLength) {
      const at = this.freeChunks.findIndex((c) => c.view.byteLength >= bytes);
      if (at >= 0) chunk = this.freeChunks.splice(at, 1)[0];
      else {
        const size = Math.max(PINNED_CHUNK_BYTES, Math.ceil(bytes / ALIGN) * ALIGN);
        const block = this.real.hostAlloc(size, 'step graph inputs');
        chunk = { block, view: new Uint8Array(this.real.hostView(block.host, size)), used: 0 };
      }
      chunk.used = 0;
      g.chunks.push(chunk);
    }
    const offset = chunk.used;
    chunk.used = Math.ceil((offset + bytes) / ALIGN) * ALIGN;
    return { host: chunk.block.host + BigInt(offset), view: chunk.view.subarray(offset, offset + bytes) };
  }

  private drop(g: StepGraph): void {
    if (g.dropped) return;
    g.dropped = true;
    if (this.graphs.get(g.key) === g) this.graphs.delete(g.key);
    this.retired.push(g);
  }

  /** Frees dropped graphs once no tensor holds their buffers and the device is done with them. */
  private collect(): void {
    for (let i = this.retired.length - 1; i >= 0; i--) {
      const g = this.retired[i];
      if (g.live > 0 || g.instances.some((x) => x.done >= 0 && !this.real.eventDone(x.done))) continue;
      this.retired.splice(i, 1);
      for (const x of g.instances) {
        for (const id of x.ids) this.real.destroyGraph(id);
        if (x.done >= 0) this.real.releaseEvent(x.done);
      }
      for (const [ptr, size] of g.owned) {
        this.owner.delete(ptr);
        this.giveBack(ptr, size);
      }
      this.freeChunks.push(...g.chunks);
    }
  }

  private wrap(): CudaAddon {
    const real = this.real;
    const wrapped = {} as Record<string, unknown>;
    // Own and inherited methods alike (a test's addon may be a class instance).
    for (let o: object | null = real; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
      for (const name of Object.getOwnPropertyNames(o)) {
        const f = (real as unknown as Record<string, unknown>)[name];
        if (name !== 'constructor' && !(name in wrapped) && typeof f === 'function') wrapped[name] = f.bind(real);
      }
    }
    const own: Partial<CudaAddon> = {
      launch: (name, grid, params, stream) =>
        this.onCompute(
          stream,
          () => ({ kind: 'launch', name, grid: [grid[0], grid[1], grid[2]], params }),
          (op) =>
            op.kind === 'launch' &&
            op.name === name &&
            op.grid[0] === grid[0] &&
            op.grid[1] === grid[1] &&
            op.grid[2] === grid[2] &&
            sameBytes(op.params, params),
          () => real.launch(name, grid, params, stream),
        ),
      gemm: (p) =>
        this.onCompute(
          p.stream,
          () => ({ kind: 'gemm', params: p }),
          (op) => op.kind === 'gemm' && sameGemm(op.params, p),
          () => real.gemm(p),
        ),
      copy: (dst, src, bytes, stream, what) =>
        this.onCompute(
          stream,
          () => ({ kind: 'copy', dst, src, bytes }),
          (op) => op.kind === 'copy' && op.dst === dst && op.src === src && op.bytes === bytes,
          () => real.copy(dst, src, bytes, stream, what),
        ),
      memset: (dst, byte, bytes, stream, what) =>
        this.onCompute(
          stream,
          () => ({ kind: 'memset', dst, byte, bytes }),
          (op) => op.kind === 'memset' && op.dst === dst && op.byte === byte && op.bytes === bytes,
          () => real.memset(dst, byte, bytes, stream, what),
        ),
      upload: (dst, src, stream, what) => this.upload(dst, src, stream, what),
      waitEvent: (stream, event) => {
        // A replayed step waits before its launch (earlier than needed, never later).
        if (this.mode === 'replay' && stream === STREAM.compute) {
          // A wait in the body would be lost when the body is skipped.
          if (this.cursor >= this.graph!.preludeEnd) this.predicted = false;
          this.waits.push(event);
        } else {
          if (stream !== STREAM.compute) this.unrecordable(`a wait on stream ${stream}`);
          real.waitEvent(stream, event);
        }
      },
      recordEvent: (stream) => (this.unrecordable('an event'), real.recordEvent(stream)),
      download: (src, dst, stream, what) => (this.unrecordable(`a download (${what})`), real.download(src, dst, stream, what)),
      synchronize: (stream) => (this.unrecordable('a synchronisation'), real.synchronize(stream)),
      copy2d: (dst, dstPitch, src, srcPitch, width, rows, stream, what) => (
        this.unrecordable(`a strided copy (${what})`), real.copy2d(dst, dstPitch, src, srcPitch, width, rows, stream, what)
      ),
      // A collective is not recorded: a graph replayed on one rank must not reorder what the other ranks wait on.
      ncclAllReduce: (...args) => (this.unrecordable('an NCCL all-reduce'), real.ncclAllReduce!(...args)),
      ncclAllGather: (...args) => (this.unrecordable('an NCCL all-gather'), real.ncclAllGather!(...args)),
      copyPages: (dst, dstSlots, src, srcSlots, pageBytes, stream, what) => (
        this.unrecordable(`page copies (${what})`), real.copyPages(dst, dstSlots, src, srcSlots, pageBytes, stream, what)
      ),
    };
    return Object.assign(wrapped, own) as unknown as CudaAddon;
  }

  /**
   * An upload whose values change from step to step: `values` gives them now, and a
   * direct replay calls it again for the step's values (outside a step, a plain upload).
   */
  uploadEachStep(dst: bigint, values: () => ArrayBufferView, what: string): void {
    this.upload(dst, values(), STREAM.compute, what, values);
  }

  private upload(dst: bigint, src: ArrayBufferView, stream: number, what: string, refresh?: () => ArrayBufferView): void {
    const bytes = asBytes(src);
    if (this.mode === 'replay' && stream === STREAM.compute) {
      const op = this.graph!.ops[this.cursor];
      if (op?.kind === 'upload' && op.dst === dst && op.bytes === bytes.byteLength) {
        if (this.predicted && this.cursor >= this.graph!.preludeEnd) this.predicted = predicts(op, bytes);
        this.instance!.inputs[this.cursor].view.set(bytes);
        this.advance();
        return;
      }
    }
    if (this.mode === 'replay') this.fallBack(`an upload of ${bytes.byteLength} bytes (${what})`);
    if (this.mode === 'record' && stream !== STREAM.compute) this.stopRecording();
    if (this.mode !== 'record') return this.real.upload(dst, src, stream, what);
    // Recorded uploads read from the graph's pinned inputs, which later steps rewrite.
    const g = this.graph!;
    const region = this.pinnedRegion(g, bytes.byteLength);
    region.view.set(bytes);
    this.real.copy(dst, region.host, bytes.byteLength, STREAM.compute, what);
    // The body's uploads: what a direct replay writes (refreshed), or what it must find unchanged.
    const inBody = g.preludeEnd >= 0;
    this.instance!.inputs[g.ops.length] = region;
    g.ops.push({ kind: 'upload', dst, bytes: bytes.byteLength, ...(inBody ? (refresh ? { refresh } : { template: bytes.slice() }) : {}) });
  }
}

/** Whether a checked replay's upload is what the record predicts: what its `refresh` gives now, or the recorded bytes. */
function predicts(op: Extract<Op, { kind: 'upload' }>, bytes: Uint8Array): boolean {
  if (op.refresh) {
    try {
      return sameBytes(asBytes(op.refresh()), bytes);
    } catch {
      return false;
    }
  }
  return op.template !== undefined && sameBytes(op.template, bytes);
}

function asBytes(v: ArrayBufferView): Uint8Array {
  return v instanceof Uint8Array ? v : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
}

function describe(op: Op): string {
  switch (op.kind) {
    case 'launch':
      return `launch ${op.name} [${op.grid.join(', ')}]`;
    case 'gemm':
      return `gemm ${op.params.what} (m=${op.params.m}, n=${op.params.n}, k=${op.params.k})`;
    case 'upload':
      return `an upload of ${op.bytes} bytes`;
    case 'alloc':
      return `alloc of ${op.size} bytes`;
    default:
      return `${op.kind} of ${op.bytes} bytes`;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== b.byteLength) return false;
  for (let i = 0; i < a.byteLength; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sameGemm(a: GemmParams, b: GemmParams): boolean {
  return (
    a.transA === b.transA &&
    a.transB === b.transB &&
    a.m === b.m &&
    a.n === b.n &&
    a.k === b.k &&
    a.a === b.a &&
    a.aType === b.aType &&
    a.lda === b.lda &&
    a.b === b.b &&
    a.bType === b.bType &&
    a.ldb === b.ldb &&
    a.c === b.c &&
    a.cType === b.cType &&
    a.ldc === b.ldc &&
    a.alpha === b.alpha &&
    a.beta === b.beta &&
    a.stream === b.stream
  );
}
