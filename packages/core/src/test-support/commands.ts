import fc from 'fast-check';

/** One step of a random run of a cache: admit a prompt, decode some live sequences, fork or free one. */
export type Command =
  | { op: 'admit'; length: number }
  | { op: 'step'; pick: number[]; times: number }
  | { op: 'fork'; pick: number }
  | { op: 'free'; pick: number };

/** Random commands, decode steps the most frequent; `pick` indexes the live sequences modulo their count. */
export function commandArbitrary(o: { maxPrompt: number; maxTimes: number }): fc.Arbitrary<Command> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.record({ op: fc.constant('admit' as const), length: fc.integer({ min: 1, max: o.maxPrompt }) }) },
    {
      weight: 6,
      arbitrary: fc.record({
        op: fc.constant('step' as const),
        pick: fc.array(fc.nat(7), { minLength: 1, maxLength: 4 }),
        times: fc.integer({ min: 1, max: o.maxTimes }),
      }),
    },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('fork' as const), pick: fc.nat(7) }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant('free' as const), pick: fc.nat(7) }) },
  );
}
