/**
 * GPU check jobs: launches recorded for the harness (harness.cu) and run here in the
 * emulator on the same inputs, whose results are what the GPU must reproduce.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { emulateKernel } from '../emulator/emulate-kernel.js';
import type { EmuArg } from '../emulator/emulate.js';
import { EmuBuffer, type ElemType } from '../emulator/memory.js';
import { specialise } from '../output/specialise.js';
import type { KernelDefinition } from '../spec/define-kernel.js';
import { evalGeom } from '../spec/geometry.js';
import type { KernelProject } from '../translate/kernel-project.js';

export interface ExpectedOutput {
  readonly label: string;
  readonly file: string;
  readonly t: ElemType;
  /** Largest error allowed, relative to max(|expected|, 1). */
  readonly tolerance: number;
  readonly values: readonly number[];
}

export interface LaunchOptions {
  /** Run on the GPU only (timing launches on zero-filled data). */
  readonly emulate?: boolean;
  /** Pointer parameters to place in mapped pinned host memory. */
  readonly mapped?: readonly string[];
  /** Zero-filled device buffers of this many bytes, by parameter name. */
  readonly zeroed?: Readonly<Record<string, number>>;
  /** Re-launch this many times and report the mean time. */
  readonly time?: number;
}

export class GpuJobs {
  private readonly lines: string[] = [];
  private readonly ids = new Map<object, number>();
  private readonly files = new Map<string, Uint8Array>();
  private readonly outputs: { readonly label: string; readonly file: string; readonly tolerance: number; readonly buffer: EmuBuffer }[] = [];
  constructor(private readonly project: KernelProject) {}

  private buffer(b: EmuBuffer, mapped: boolean): number {
    let id = this.ids.get(b);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(b, id);
      const a = b.mem.a;
      this.files.set(`in${id}.bin`, new Uint8Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength)));
      this.lines.push(`buf ${id} in${id}.bin ${a.byteLength} ${mapped ? 'mapped' : 'device'}`);
    }
    return id;
  }

  private zeroed(bytes: number): number {
    const id = this.ids.size;
    this.ids.set({}, id);
    this.lines.push(`buf ${id} - ${bytes} device`);
    return id;
  }

  launch<S extends object>(def: KernelDefinition<S>, spec: NoInfer<S>, args: Readonly<Record<string, EmuArg>>, opts: LaunchOptions = {}): void {
    const entry = specialise(this.project, def, spec).entry;
    const view = new DataView(new ArrayBuffer(entry.paramBytes));
    const patches: string[] = [];
    for (const p of entry.params) {
      const v = args[p.name];
      const zero = opts.zeroed?.[p.name];
      if (p.kind === 'pointer')
        patches.push(`ptr ${p.offset} ${zero !== undefined ? this.zeroed(zero) : this.buffer(v as EmuBuffer, opts.mapped?.includes(p.name) ?? false)}`);
      else if (p.kind === 'f32') view.setFloat32(p.offset, v as number, true);
      else if (p.kind === 'u32') view.setUint32(p.offset, v as number, true);
      else if (p.kind === 'i64') view.setBigInt64(p.offset, BigInt(v as number), true);
      else view.setInt32(p.offset, v as number, true);
    }
    const grid = entry.grid.map((g) => evalGeom(g, args));
    this.lines.push(`job ${entry.name} ${grid.join(' ')} ${Buffer.from(view.buffer).toString('hex')}`, ...patches, 'launch');
    if (opts.time) this.lines.push(`time ${opts.time}`);
    if (opts.emulate ?? true) emulateKernel(def, spec, this.project).run(args);
  }

  /** Asks for `b` back; its emulated contents (at the end of all jobs) are the expectation. */
  output(b: EmuBuffer, label: string, tolerance: number): void {
    const id = this.ids.get(b);
    if (id === undefined) throw new Error(`${label}: buffer not used by any job`);
    const file = `out${id}.bin`;
    this.lines.push(`out ${id} ${file}`);
    this.outputs.push({ label, file, tolerance, buffer: b });
  }

  /** Writes jobs.txt and the input files; returns the expectations. */
  write(dir: string): ExpectedOutput[] {
    mkdirSync(dir, { recursive: true });
    for (const [name, bytes] of this.files) writeFileSync(path.join(dir, name), bytes);
    writeFileSync(path.join(dir, 'jobs.txt'), `${this.lines.join('\n')}\n`);
    return this.outputs.map((o) => ({ label: o.label, file: o.file, tolerance: o.tolerance, t: o.buffer.mem.t as ElemType, values: o.buffer.toArray() }));
  }
}

/** The first disagreement between GPU bytes and an expectation, or undefined. */
export function compareOutput(e: ExpectedOutput, bytes: Uint8Array): string | undefined {
  const b = new EmuBuffer(e.t, e.values.length);
  if (bytes.byteLength !== b.mem.a.byteLength) return `${e.label}: ${bytes.byteLength} bytes back, expected ${b.mem.a.byteLength}`;
  new Uint8Array(b.mem.a.buffer).set(bytes);
  const got = b.toArray();
  for (let i = 0; i < got.length; i++) {
    const err = Math.abs(got[i] - e.values[i]) / Math.max(Math.abs(e.values[i]), 1);
    if (!(err <= e.tolerance) && !(Number.isNaN(got[i]) && Number.isNaN(e.values[i]))) {
      return `${e.label}: element ${i} is ${got[i]} on the GPU, ${e.values[i]} in the emulator`;
    }
  }
  return undefined;
}
