import { writeFileSync, mkdirSync } from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Project, ts } from 'ts-morph';
import { describe, expect, it } from 'vitest';
import { KernelProject } from '../translate/kernel-project.js';
import { tempDir } from '../test-support/temp-dir.js';
import { generate } from './generate.js';
import { launchSurface } from './launch-surface.js';

const manifest = generate({ outDir: tempDir('surface-gen'), project: new KernelProject(), dryRun: true }).manifest;
const files = launchSurface(manifest);

/** The generated surface plus a user's module, type-checked as the repository compiles TypeScript. */
function diagnostics(user: string): string[] {
  const project = new Project({
    useInMemoryFileSystem: true,
    compilerOptions: {
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      strict: true,
      noUnusedLocals: true,
      noUnusedParameters: true,
      verbatimModuleSyntax: true,
      isolatedModules: true,
      lib: ['lib.es2022.d.ts'],
      types: [],
    },
  });
  project.createSourceFile('/app/package.json', '{"type":"module"}');
  for (const [name, text] of files) project.createSourceFile(`/app/generated/${name}`, text);
  project.createSourceFile('/app/user.ts', user);
  return project.getPreEmitDiagnostics().map((d) => {
    const text = d.getMessageText();
    return `${d.getSourceFile()?.getBaseName()}: ${typeof text === 'string' ? text : text.getMessageText()}`;
  });
}

const USER = `import { allKernels, findPagedDecode, findRmsNorm, type PagedDecodeArgs, type DevicePtr } from './generated/index.js';

export function launchDecode(q: DevicePtr, pool: DevicePtr, tables: DevicePtr, scratch: DevicePtr): Uint8Array {
  const kernel = findPagedDecode({ dtype: 'f16', headDim: 128, pageSize: 32, group: 4 });
  if (!kernel) throw new Error('not generated');
  const args: PagedDecodeArgs = {
    q, pool, pageTable: tables, pageCounts: tables, lastPageLens: tables, partialOut: scratch, partialLse: scratch,
    out: scratch, lse: scratch, counters: scratch,
    batch: 1, numHeads: 32, numKvHeads: 8, numLists: 1, maxPages: 64, numSplits: 4, splitTokens: 512, scale: 0.088,
  };
  const [x, y, z] = kernel.grid(args);
  return x * y * z > 0 && kernel.block[0] === 128 ? kernel.pack(args) : new Uint8Array();
}
export const names: string[] = allKernels.map((k) => k.name);
export const norm = findRmsNorm({ dtype: 'bf16' })?.staticSharedBytes;
`;

describe('the generated TypeScript launch surface', () => {
  it("type-checks against its users under the repository's strict settings", () => {
    expect(diagnostics(USER)).toEqual([]);
  });

  it('catches a caller that disagrees with a kernel (missing argument, wrong spec value)', () => {
    const bad = USER.replace('numSplits: 4, ', '').replace("dtype: 'f16'", "dtype: 'f8'");
    const errors = diagnostics(bad).join('\n');
    expect(errors).toMatch(/numSplits/);
    expect(errors).toMatch(/"f8"/);
  });

  it('packs parameters at the manifest offsets and computes the grid', async () => {
    const dir = tempDir('surface-js');
    mkdirSync(dir, { recursive: true });
    for (const [name, text] of files) {
      const js = ts.transpileModule(text, { compilerOptions: { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022 } }).outputText;
      writeFileSync(path.join(dir, name.replace(/\.ts$/, '.js')), js);
    }
    writeFileSync(path.join(dir, 'package.json'), '{"type":"module"}');
    const mod = (await import(pathToFileURL(path.join(dir, 'paged-decode.js')).href)) as typeof import('../test-support/surface-module.js');
    const k = mod.findPagedDecode({ dtype: 'bf16', headDim: 64, pageSize: 16, group: 2 })!;
    const args = {
      q: 0x1000n,
      pool: 0x7f0000000000n,
      pageTable: 3n,
      pageCounts: 4n,
      lastPageLens: 5n,
      partialOut: 6n,
      partialLse: 7n,
      out: 8n,
      lse: 9n,
      counters: 10n,
      batch: 2,
      numHeads: 8,
      numKvHeads: 4,
      numLists: 1,
      maxPages: 9,
      numSplits: 3,
      splitTokens: 96,
      scale: 0.125,
    };
    expect(k.grid(args)).toEqual([8, 3, 1]);
    const bytes = k.pack(args);
    const view = new DataView(bytes.buffer);
    const entry = manifest.kernels.find((e) => e.name === k.name)!;
    expect(bytes.length).toBe(entry.paramBytes);
    const at = (name: string) => entry.params.find((p) => p.name === name)!.offset;
    expect(view.getBigUint64(at('pool'), true)).toBe(0x7f0000000000n);
    expect(view.getBigUint64(at('counters'), true)).toBe(10n);
    expect(view.getInt32(at('maxPages'), true)).toBe(9);
    expect(view.getFloat32(at('scale'), true)).toBe(0.125);
    expect(() => k.pack({ ...args, numSplits: 2.5 })).toThrow(/numSplits: 2.5 is not a i32/);
    expect(() => k.pack({ ...args, q: -1n })).toThrow(/q: expected a device pointer/);
  });
});
