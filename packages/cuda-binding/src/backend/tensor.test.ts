import { describe, expect, it } from 'vitest';
import { CudaTensor, DeviceBuffer, TensorLifetimes } from './tensor.js';

/** Tensors over fake device memory: every release is recorded. */
function setup() {
  const freed: bigint[] = [];
  let next = 0x1000n;
  const life = new TensorLifetimes();
  const make = (shape: number[] = [4]) => life.adopt(new CudaTensor(new DeviceBuffer((next += 0x100n), 16, (p) => freed.push(p)), 0, shape, 'f32'));
  const view = (t: CudaTensor) => {
    t.buffer.retain();
    return life.adopt(new CudaTensor(t.buffer, 0, t.shape, t.dtype));
  };
  return { life, make, view, freed };
}

describe('tensor lifetimes on the CUDA backend', () => {
  it('tidy frees what its function made, except what it returns, which moves to the enclosing scope', () => {
    const { life, make, freed } = setup();
    let inner: CudaTensor | undefined;
    const outer = life.tidy(() => {
      const kept = life.tidy(() => {
        make();
        inner = make();
        return { result: [inner] };
      });
      expect(freed).toHaveLength(1);
      expect(kept.result[0].disposed).toBe(false);
      make();
      return kept.result[0];
    });
    // The outer scope freed its own temporary, and kept what the inner one returned.
    expect(freed).toHaveLength(2);
    expect(outer).toBe(inner);
    expect(outer.disposed).toBe(false);
    expect(life.liveTensors).toBe(1);
    life.dispose(outer);
    expect(freed).toHaveLength(3);
    expect(life.liveTensors).toBe(0);
  });

  it('a view shares its buffer: the memory goes back when the last holder is disposed', () => {
    const { life, make, view, freed } = setup();
    const base = make();
    const v = view(base);
    life.dispose(base);
    expect(freed).toHaveLength(0);
    life.dispose(v);
    expect(freed).toEqual([base.buffer.ptr]);
    // Disposing twice is harmless; the buffer is not released twice.
    life.dispose(v);
    expect(freed).toHaveLength(1);
  });

  it('keep takes a tensor out of every scope; untracked tensors do not count as live', () => {
    const { life, make, freed } = setup();
    const kept = life.tidy(() => life.tidy(() => life.keep(make())));
    expect(kept.disposed).toBe(false);
    expect(freed).toHaveLength(0);
    const table = life.tidy(() => life.untracked(() => make()));
    expect(table.disposed).toBe(false);
    expect(life.liveTensors).toBe(1);
    life.dispose(table);
    life.dispose(kept);
    expect(freed).toHaveLength(2);
    expect(life.liveTensors).toBe(0);
  });

  it('a throwing tidy frees everything it made and rethrows', () => {
    const { life, make, freed } = setup();
    expect(() =>
      life.tidy(() => {
        make();
        make();
        throw new Error('kernel failed');
      }),
    ).toThrow('kernel failed');
    expect(freed).toHaveLength(2);
    expect(life.liveTensors).toBe(0);
  });
});
