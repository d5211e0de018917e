/**
 * Launch-grid expressions over a kernel's runtime arguments (`ceilDiv(arg('n'), 256)`):
 * plain data, so the manifest can record them and the launch surface and the emulator
 * evaluate the same thing.
 */
export type Geom = number | { readonly arg: string } | { readonly op: 'add' | 'mul' | 'ceilDiv' | 'max' | 'min'; readonly a: Geom; readonly b: Geom };

export type Grid = readonly [Geom, Geom, Geom];

export const arg = (name: string): Geom => ({ arg: name });
export const mul = (a: Geom, b: Geom): Geom => ({ op: 'mul', a, b });
export const add = (a: Geom, b: Geom): Geom => ({ op: 'add', a, b });
export const ceilDiv = (a: Geom, b: Geom): Geom => ({ op: 'ceilDiv', a, b });
export const max = (a: Geom, b: Geom): Geom => ({ op: 'max', a, b });
export const min = (a: Geom, b: Geom): Geom => ({ op: 'min', a, b });

export function evalGeom(g: Geom, args: Readonly<Record<string, unknown>>): number {
  if (typeof g === 'number') return g;
  if ('arg' in g) {
    const v = args[g.arg];
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new Error(`launch argument ${g.arg} must be an integer, got ${String(v)}`);
    return v;
  }
  const a = evalGeom(g.a, args);
  const b = evalGeom(g.b, args);
  switch (g.op) {
    case 'add':
      return a + b;
    case 'mul':
      return a * b;
    case 'ceilDiv':
      return Math.ceil(a / b);
    case 'max':
      return Math.max(a, b);
    case 'min':
      return Math.min(a, b);
  }
}

/** TypeScript source evaluating `g` with the arguments object named `a`. */
export function geomToTs(g: Geom, a = 'a'): string {
  if (typeof g === 'number') return String(g);
  if ('arg' in g) return `${a}.${g.arg}`;
  const x = geomToTs(g.a, a);
  const y = geomToTs(g.b, a);
  switch (g.op) {
    case 'add':
      return `(${x} + ${y})`;
    case 'mul':
      return `${x} * ${y}`;
    case 'ceilDiv':
      return `Math.ceil(${x} / ${y})`;
    case 'max':
      return `Math.max(${x}, ${y})`;
    case 'min':
      return `Math.min(${x}, ${y})`;
  }
}

/** Human-readable form for the manifest and headers: `ceil(n / 256)`. */
export function describeGeom(g: Geom): string {
  if (typeof g === 'number') return String(g);
  if ('arg' in g) return g.arg;
  const x = describeGeom(g.a);
  const y = describeGeom(g.b);
  switch (g.op) {
    case 'add':
      return `(${x} + ${y})`;
    case 'mul':
      return `${x} * ${y}`;
    case 'ceilDiv':
      return `ceil(${x} / ${y})`;
    default:
      return `${g.op}(${x}, ${y})`;
  }
}

export function geomArgs(g: Geom, out = new Set<string>()): Set<string> {
  if (typeof g === 'number') return out;
  if ('arg' in g) out.add(g.arg);
  else {
    geomArgs(g.a, out);
    geomArgs(g.b, out);
  }
  return out;
}
