/** Emulates a library kernel for one spec, launching it over the grid its definition declares. */
import type { KernelDefinition } from '../spec/define-kernel.js';
import { evalGeom } from '../spec/geometry.js';
import { specialise } from '../output/specialise.js';
import { KernelProject } from '../translate/kernel-project.js';
import { EmulatedKernel, type EmuArg } from './emulate.js';

let sharedProject: KernelProject | undefined;

export interface EmulatedSpecialisation<S> {
  readonly kernel: EmulatedKernel;
  readonly spec: S;
  /** Runs over the definition's grid for these arguments (by kernel parameter name). */
  run(args: Readonly<Record<string, EmuArg>>): void;
  grid(args: Readonly<Record<string, EmuArg>>): [number, number, number];
}

export function emulateKernel<S extends object>(def: KernelDefinition<S>, spec: NoInfer<S>, project?: KernelProject): EmulatedSpecialisation<S> {
  const p = project ?? (sharedProject ??= new KernelProject());
  const kernel = new EmulatedKernel(specialise(p, def, spec).ir);
  const grid = (args: Readonly<Record<string, EmuArg>>) => def.grid(spec).map((g) => evalGeom(g, args)) as [number, number, number];
  return { kernel, spec, grid, run: (args) => kernel.launch(grid(args), args) };
}
