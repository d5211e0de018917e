/** One kernel definition + one spec -> IR, CUDA sources and its manifest entry. */
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { printKernelHeader, printKernelUnit } from '../emit/cuda/kernel-source.js';
import type { KernelIR } from '../ir/nodes.js';
import { describeGeom, geomArgs } from '../spec/geometry.js';
import { kernelFunctionName, kernelSourcePath, type KernelDefinition } from '../spec/define-kernel.js';
import { MAX_PARAM_BYTES, paramLayout } from '../spec/params.js';
import type { SpecObject } from '../translate/context.js';
import type { KernelProject } from '../translate/kernel-project.js';
import { translateKernel } from '../translate/translate-kernel.js';
import type { ManifestKernel } from './manifest.js';
import { placeSharedMemory, SHARED_LIMITS } from './shared-placement.js';

/** sm_90 limits the generator enforces (static shared memory, threads per block; shared memory a block: shared-placement.ts). */
export const SM90 = { staticSharedBytes: SHARED_LIMITS.staticBytes, threadsPerBlock: 1024 } as const;

export interface Specialisation {
  readonly ir: KernelIR;
  readonly entry: ManifestKernel;
  readonly header: string;
  readonly source: string;
}

/** Where the kernel's unit file groups it: one nvcc process per (family, unit key). */
export function unitName(def: KernelDefinition, spec: object): string {
  const key = def.unitKey?.(spec);
  return key ? `${def.family}_${key}` : def.family;
}

export function specialise(project: KernelProject, def: KernelDefinition, spec: object): Specialisation {
  const problem = def.validate?.(spec);
  const name = def.name(spec);
  if (problem) throw new Error(`${name}: ${problem}`);
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new Error(`${def.family}: specialisation name ${JSON.stringify(name)} is not a C identifier`);
  const file = project.file(kernelSourcePath(def));
  const blockThreads = def.blockThreads(spec);
  if (blockThreads % 32 !== 0 || blockThreads < 32 || blockThreads > SM90.threadsPerBlock) {
    throw new Error(`${name}: ${blockThreads} threads per block; use a multiple of 32 up to ${SM90.threadsPerBlock}`);
  }
  const ir = placeSharedMemory(
    translateKernel(project.envs, {
      file,
      functionName: kernelFunctionName(def),
      name,
      spec: spec as SpecObject,
      typeArgs: def.types?.(spec) ?? {},
      blockThreads,
    }),
  );
  const { slots, bytes } = paramLayout(ir.params);
  if (bytes > MAX_PARAM_BYTES) throw new Error(`${name}: ${bytes} bytes of parameters exceed ${MAX_PARAM_BYTES}`);
  const grid = def.grid(spec);
  for (const g of grid) {
    for (const a of geomArgs(g)) {
      const p = ir.params.find((q) => q.name === a);
      if (p?.t.kind !== 'scalar' || (p.t.name !== 'i32' && p.t.name !== 'u32')) {
        throw new Error(`${name}: the launch grid uses \`${a}\`, which is not an i32/u32 parameter of the kernel`);
      }
    }
  }
  const gridText = grid.map(describeGeom) as unknown as readonly [string, string, string];
  const kernelSource = sourceLabel(file.getFilePath());
  const entry: ManifestKernel = {
    family: def.family,
    name,
    summary: def.summary,
    spec: spec as SpecObject,
    kernelSource,
    files: { header: `${name}.cuh`, source: `${name}.cu`, unit: `${unitName(def, spec)}.cu` },
    block: [blockThreads, 1, 1],
    grid,
    gridText,
    staticSharedBytes: ir.staticSharedBytes,
    dynamicSharedBytes: ir.dynamicSharedBytes,
    params: slots,
    paramBytes: bytes,
  };
  const header = printKernelHeader(ir, kernelSource, [
    `spec: ${JSON.stringify(spec)}`,
    `launch: grid (${gridText.join(', ')}), block (${blockThreads}, 1, 1), ${sharedText(ir)}`,
  ]);
  return { ir, entry, header, source: printKernelUnit(name) };
}

function sharedText(ir: KernelIR): string {
  return ir.dynamicSharedBytes > 0 ? `dynamic shared memory ${ir.dynamicSharedBytes} bytes` : `static shared memory ${ir.staticSharedBytes} bytes`;
}

/** A machine-independent label: the path inside the package that holds the file. */
function sourceLabel(file: string): string {
  for (let dir = path.dirname(file); dir !== path.dirname(dir); dir = path.dirname(dir)) {
    if (existsSync(path.join(dir, 'package.json'))) return path.relative(dir, file).split(path.sep).join('/');
  }
  return path.basename(file);
}
