import { ReferenceBackend, seededUniform, type EvictTokenCellsArgs, type Tensor } from '@arkvale/core';
import { CpuBackend } from '@arkvale/cpu-backend';
import { describe, expect, it } from 'vitest';
import { tokenCellChecks } from './token-checks.js';
import { Twin } from './twin.js';

/** A backend that forgets H2O's recent positions: its victims may be among them. */
class ForgetsRecent extends CpuBackend {
  override evictTokenCells(args: EvictTokenCellsArgs): Tensor {
    return super.evictTokenCells({ ...args, recentKept: 0 });
  }
}

/**
 * The token-cell checks of `arkvale selftest` (H2O's and TOVA's placeTokenCells and
 * evictTokenCells), run with the CPU backend standing in for the GPU.
 */
describe('the token-cell checks of the self-test', () => {
  it('pass for a backend that evicts as the reference does', () => {
    const results = tokenCellChecks(new Twin(new CpuBackend(), new ReferenceBackend(), 'f16', seededUniform(12)));
    // Two table sizes, with and without ties, TOVA's and H2O's rules.
    expect(results).toHaveLength(8);
    expect(results.filter((r) => !r.ok)).toEqual([]);
  });

  it('fail for a backend that evicts among the recent positions, where H2O keeps them', () => {
    const results = tokenCellChecks(new Twin(new ForgetsRecent(), new ReferenceBackend(), 'f16', seededUniform(12)));
    const failed = results.filter((r) => !r.ok);
    expect(failed.every((r) => r.detail.includes('accumulate'))).toBe(true);
    // Without ties the newest token is the lowest of its row: a backend that does not keep it evicts it.
    expect(failed.filter((r) => !r.detail.includes('ties'))).toHaveLength(2);
  });
});
