/**
 * Golden tests of the translator: DSL in (__golden__/*.kernel.ts), CUDA out
 * (__golden__/*.cuh). Run with UPDATE_GOLDEN=1 to rewrite the expected files after an
 * intended change, then review the diff.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { printKernelHeader } from '../emit/cuda/kernel-source.js';
import { specialise } from '../output/specialise.js';
import { GOLDEN_CASES, GOLDEN_DIR, GOLDEN_LIBRARY } from '../test-support/golden-cases.js';
import { KernelProject } from './kernel-project.js';
import { translateKernel } from './translate-kernel.js';

const project = new KernelProject();

function expectGolden(name: string, actual: string): void {
  const file = path.join(GOLDEN_DIR, `${name}.cuh`);
  if (process.env.UPDATE_GOLDEN === '1') writeFileSync(file, actual);
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

describe('translator golden files', () => {
  it.each(GOLDEN_CASES)('$name', (c) => {
    const ir = translateKernel(project.envs, {
      file: project.file(path.join(GOLDEN_DIR, c.file)),
      functionName: c.fn,
      name: c.name,
      spec: c.spec,
      typeArgs: c.typeArgs,
      blockThreads: c.blockThreads,
    });
    expectGolden(c.name, printKernelHeader(ir, `src/translate/__golden__/${c.file}`, [`spec: ${JSON.stringify(c.spec)}`]));
  });

  it('a library kernel end to end (paged_decode_f16_hd128_ps32_g4)', () => {
    const s = specialise(project, GOLDEN_LIBRARY.def, GOLDEN_LIBRARY.spec);
    expectGolden(s.entry.name, s.header);
  });

  it('is deterministic: a second translation in a fresh project is identical', () => {
    const again = specialise(new KernelProject(), GOLDEN_LIBRARY.def, GOLDEN_LIBRARY.spec);
    expect(again.header).toBe(specialise(project, GOLDEN_LIBRARY.def, GOLDEN_LIBRARY.spec).header);
  });
});
