/** Compiles a KernelIR to JavaScript once and launches it over a grid on the CPU. */
import { printKernelJs } from '../emit/js/kernel-js.js';
import type { KernelIR } from '../ir/nodes.js';
import { EmuBuffer, type EmuPtr } from './memory.js';
import { createRuntime, EmuFault, type Request, type ThreadCtx } from './runtime.js';
import { runBlock, type Dim3 } from './scheduler.js';

export type EmuArg = EmuBuffer | EmuPtr | number;

interface CompiledJs {
  kernel: (T: ThreadCtx, S: Record<string, EmuPtr>, ...args: unknown[]) => Generator<Request, void, unknown>;
  shared: () => Record<string, EmuPtr>;
}

export class EmulatedKernel {
  private readonly compiled: CompiledJs;
  private readonly runtime: ReturnType<typeof createRuntime>;
  /** The generated JavaScript, for debugging. */
  readonly source: string;

  constructor(readonly ir: KernelIR) {
    const js = printKernelJs(ir);
    this.source = js.body;
    this.runtime = createRuntime(ir.name, js.locs);
    this.compiled = new Function('$R', js.body)(this.runtime) as CompiledJs;
  }

  /**
   * Runs the kernel. `args` are by parameter name: EmuBuffers (or pointers) for
   * pointer parameters, numbers for scalars. Block sizes other than the kernel's
   * `__launch_bounds__` are refused, as a GPU would.
   */
  launch(grid: Dim3 | number, args: Readonly<Record<string, EmuArg>>, block: Dim3 | number = this.ir.blockThreads): void {
    const g: Dim3 = typeof grid === 'number' ? [grid, 1, 1] : grid;
    const b: Dim3 = typeof block === 'number' ? [block, 1, 1] : block;
    if (b[0] * b[1] * b[2] > this.ir.blockThreads)
      throw new EmuFault(`${this.ir.name}: block of ${b[0] * b[1] * b[2]} threads exceeds __launch_bounds__(${this.ir.blockThreads})`);
    if (g.some((d) => !Number.isInteger(d) || d < 0)) throw new EmuFault(`${this.ir.name}: bad grid [${g.join(', ')}]`);
    const values = this.ir.params.map((p) => {
      const v = args[p.name];
      if (v === undefined) throw new EmuFault(`${this.ir.name}: missing argument ${p.name}`);
      if (p.t.kind === 'pointer') {
        if (typeof v === 'number') throw new EmuFault(`${this.ir.name}: argument ${p.name} must be a buffer`);
        if (v.mem.t !== p.t.elem) throw new EmuFault(`${this.ir.name}: argument ${p.name} must hold ${p.t.elem}, got ${v.mem.t}`);
        return { mem: v.mem, o: v.o };
      }
      if (typeof v !== 'number') throw new EmuFault(`${this.ir.name}: argument ${p.name} must be a number`);
      return v;
    });
    const extra = Object.keys(args).filter((k) => !this.ir.params.some((p) => p.name === k));
    if (extra.length) throw new EmuFault(`${this.ir.name}: unknown argument(s) ${extra.join(', ')}`);
    for (let z = 0; z < g[2]; z++) {
      for (let y = 0; y < g[1]; y++) {
        for (let x = 0; x < g[0]; x++) {
          const shared = this.compiled.shared();
          runBlock(this.runtime, b, g, [x, y, z], (ctx) => this.compiled.kernel(ctx, shared, ...values));
        }
      }
    }
  }
}

export { EmuBuffer };
