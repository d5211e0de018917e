import { describe, expect, it } from 'vitest';
import { PoolExhaustedError } from './errors.js';
import { PagePool } from './pool.js';

describe('PagePool', () => {
  it('allocates, shares, releases and accounts in pages and bytes', () => {
    const pool = new PagePool('device', 3, 1024);
    const [a, b] = pool.allocateMany(2);
    expect([a, b]).toEqual([0, 1]);
    pool.retain(a);
    expect(pool.usage()).toMatchObject({ used: 2, free: 1, usedBytes: 2048, freeBytes: 1024 });
    expect(pool.release(a)).toBe(false);
    expect(pool.release(a)).toBe(true);
    expect(() => pool.release(a)).toThrow(/slot 0 is not allocated/);
    expect(pool.used).toBe(1);
  });
  it('names the pool when it runs out and allocates nothing', () => {
    const pool = new PagePool('host', 2, 8);
    pool.allocate();
    expect(() => pool.allocateMany(2)).toThrow(PoolExhaustedError);
    expect(() => pool.allocateMany(2)).toThrow('host page pool exhausted: 2 page(s) requested, 1 free of 2');
    expect(pool.used).toBe(1);
  });
});
