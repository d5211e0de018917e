// CudaBackend's dependent-launch switch over an addon that does nothing: the option and
// ARKVALE_DEPENDENT_LAUNCH reach the addon's process-wide switch, both ways.
import { afterEach, describe, expect, it } from 'vitest';
import { idleCudaAddon } from '../idle-addon.js';
import { CudaBackend } from './cuda-backend.js';

describe('dependent launch', () => {
  const saved = process.env.ARKVALE_DEPENDENT_LAUNCH;
  afterEach(() => {
    if (saved === undefined) delete process.env.ARKVALE_DEPENDENT_LAUNCH;
    else process.env.ARKVALE_DEPENDENT_LAUNCH = saved;
  });

  it('is on by default, off with ARKVALE_DEPENDENT_LAUNCH=0, and the option wins over the environment', () => {
    delete process.env.ARKVALE_DEPENDENT_LAUNCH;
    const { addon } = idleCudaAddon();
    expect(new CudaBackend({ addon, graphs: false }).dependentLaunch).toBe(true);
    expect(addon.dependentLaunch()).toBe(true);
    process.env.ARKVALE_DEPENDENT_LAUNCH = '0';
    // A later backend in the same process turns the switch off again.
    expect(new CudaBackend({ addon, graphs: false }).dependentLaunch).toBe(false);
    expect(addon.dependentLaunch()).toBe(false);
    expect(new CudaBackend({ addon, graphs: false, dependentLaunch: true }).dependentLaunch).toBe(true);
    expect(new CudaBackend({ addon, graphs: false, dependentLaunch: false }).dependentLaunch).toBe(false);
  });

  it('stays off where the addon cannot set it (a GPU before sm_90)', () => {
    const { addon } = idleCudaAddon();
    const preHopper = { ...addon, dependentLaunch: () => false };
    expect(new CudaBackend({ addon: preHopper, graphs: false, dependentLaunch: true }).dependentLaunch).toBe(false);
  });
});
