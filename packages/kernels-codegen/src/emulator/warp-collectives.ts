/**
 * Warp collectives resolved once every live lane of a warp has reached the same one:
 * shuffles, votes, and the tensor-core fragment operations (ldmatrix, mma.m16n8k16)
 * with the lane layouts of the PTX ISA.
 */
import type { EmuPtr } from './memory.js';
import type { Request } from './runtime.js';

export interface Lane {
  readonly lane: number;
  readonly req: Request;
}

/** Results per lane (undefined for collectives that return nothing). */
export function resolveWarp(lanes: readonly Lane[], fail: (msg: string) => never): (number | boolean | undefined)[] {
  const first = lanes[0].req;
  for (const l of lanes) {
    if (l.req.kind !== first.kind || l.req.loc !== first.loc) fail('lanes of one warp wait at different warp collectives (divergent warp)');
  }
  const out: (number | boolean | undefined)[] = [];
  switch (first.kind) {
    case 'syncwarp':
      return lanes.map(() => undefined);
    case 'shuffle': {
      if (lanes.length !== 32) fail(`${first.fn} with ${32 - lanes.length} lane(s) of the warp exited (the mask names all 32)`);
      const values = new Map(lanes.map((l) => [l.lane, (l.req as Extract<Request, { kind: 'shuffle' }>).v]));
      for (const l of lanes) {
        const r = l.req as Extract<Request, { kind: 'shuffle' }>;
        const seg = Math.floor(l.lane / r.width) * r.width;
        let src: number;
        if (r.fn === 'shflXor') src = l.lane ^ r.lane;
        else if (r.fn === 'shflDown') src = l.lane + r.lane;
        else if (r.fn === 'shflUp') src = l.lane - r.lane;
        else src = seg + (((r.lane % r.width) + r.width) % r.width);
        const inside = src >= seg && src < seg + r.width;
        out.push(inside ? values.get(src)! : r.v);
      }
      return out;
    }
    case 'vote': {
      let bits = 0;
      for (const l of lanes) if ((l.req as Extract<Request, { kind: 'vote' }>).p) bits |= 1 << l.lane;
      const all = lanes.every((l) => (l.req as Extract<Request, { kind: 'vote' }>).p);
      return lanes.map(() => (first.fn === 'ballot' ? bits >>> 0 : first.fn === 'warpAny' ? bits !== 0 : all));
    }
    case 'ldmatrix':
      if (lanes.length !== 32) fail('ldmatrix needs all 32 lanes');
      ldmatrix(lanes, fail);
      return lanes.map(() => undefined);
    case 'mma':
      if (lanes.length !== 32) fail('mma needs all 32 lanes');
      mma(lanes, fail);
      return lanes.map(() => undefined);
    case 'barrier':
      return fail('internal: barrier resolved as a warp collective');
  }
}

const req = <K extends Request['kind']>(l: Lane) => l.req as Extract<Request, { kind: K }>;

/** ldmatrix.x4: lane 8j+r addresses row r of matrix j; lane l receives, per matrix j, elements 2j and 2j+1. */
function ldmatrix(lanes: readonly Lane[], fail: (msg: string) => never): void {
  const rows: EmuPtr[] = [];
  for (const l of lanes) {
    const src = req<'ldmatrix'>(l).src;
    if ((src.o * 2) % 16 !== 0) fail(`ldmatrix row address ${src.mem.name}[${src.o}] of lane ${l.lane} is not 16-byte aligned`);
    if (src.o < 0 || src.o + 8 > src.mem.length) fail(`ldmatrix row ${src.mem.name}[${src.o}..+8] of lane ${l.lane} is out of bounds`);
    rows[l.lane] = src;
  }
  const at = (m: number, r: number, c: number) => rows[8 * m + r].mem.get(rows[8 * m + r].o + c);
  for (const l of lanes) {
    const { dst, trans } = req<'ldmatrix'>(l);
    if (dst.o < 0 || dst.o + 8 > dst.mem.length) fail(`ldmatrix destination of lane ${l.lane} (${dst.mem.name}[${dst.o}..+8]) is out of bounds`);
    const g = l.lane >> 2;
    const t = l.lane & 3;
    for (let m = 0; m < 4; m++) {
      for (let e = 0; e < 2; e++) dst.mem.set(dst.o + 2 * m + e, trans ? at(m, 2 * t + e, g) : at(m, g, 2 * t + e));
    }
  }
}

/** mma.m16n8k16.row.col: D = A (16x16) * B (16x8) + C, fragments per the PTX ISA. */
function mma(lanes: readonly Lane[], fail: (msg: string) => never): void {
  for (const l of lanes) {
    const r = req<'mma'>(l);
    for (const [p, n, what] of [
      [r.a, 8, 'a'],
      [r.b, 4, 'b'],
      [r.c, 4, 'c'],
      [r.d, 4, 'd'],
    ] as const) {
      if (p.o < 0 || p.o + n > p.mem.length) fail(`mma fragment ${what} of lane ${l.lane} (${p.mem.name}[${p.o}..+${n}]) is out of bounds`);
    }
  }
  const A = Array.from({ length: 16 }, () => new Float64Array(16));
  const B = Array.from({ length: 16 }, () => new Float64Array(8));
  const C = Array.from({ length: 16 }, () => new Float64Array(8));
  for (const l of lanes) {
    const { a, b, c } = req<'mma'>(l);
    const g = l.lane >> 2;
    const t = l.lane & 3;
    for (let e = 0; e < 8; e++) {
      const row = g + ((e >> 1) & 1) * 8;
      const col = 2 * t + (e & 1) + (e >> 2) * 8;
      A[row][col] = a.mem.get(a.o + e);
    }
    for (let e = 0; e < 4; e++) B[2 * t + (e & 1) + (e >> 1) * 8][g] = b.mem.get(b.o + e);
    for (let e = 0; e < 4; e++) C[g + (e >> 1) * 8][2 * t + (e & 1)] = c.mem.get(c.o + e);
  }
  const D = C.map((row, i) =>
    row.map((cv, j) => {
      let s = cv;
      for (let k = 0; k < 16; k++) s += A[i][k] * B[k][j];
      return Math.fround(s);
    }),
  );
  for (const l of lanes) {
    const { d } = req<'mma'>(l);
    const g = l.lane >> 2;
    const t = l.lane & 3;
    for (let e = 0; e < 4; e++) d.mem.set(d.o + e, D[g + (e >> 1) * 8][2 * t + (e & 1)]);
  }
}
