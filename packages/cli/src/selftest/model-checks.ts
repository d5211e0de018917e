import { readFileSync } from 'node:fs';
import { ArkvaleError, type Tensor } from '@arkvale/core';
import { generateBatch, type GenerationRequest } from '@arkvale/engine';
import type { LlamaEngine } from '@arkvale/model-llama';
import { mismatches, relativeError, result, type CheckResult } from './twin.js';

/** What `golden.json` holds per case (Hugging Face transformers, float32). */
export interface GoldenCase {
  readonly name: string;
  readonly ids: number[];
  readonly greedy: number[];
  readonly last_logits_top10: { readonly ids: number[]; readonly values: number[] };
}

/** How close the last prompt position's top-10 logits must come to transformers' in a 16-bit float type. */
export const GOLDEN_LOGITS_TOLERANCE = 2e-2;

export function readGolden(file: string): GoldenCase[] {
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { cases: GoldenCase[] }).cases;
  } catch (e) {
    throw new ArkvaleError('MODEL_FILE', `cannot read golden outputs ${file}: ${(e as Error).message}`);
  }
}

/** Greedy decoding of one golden case under Full (`forced`: feed these tokens instead of the argmax), with every step's logits. */
function greedy(engine: LlamaEngine, c: GoldenCase, forced?: readonly number[]): { tokens: number[]; logits: Float32Array[] } {
  const b = engine.backend;
  const cache = engine.createCache({ policy: 'full', pageSize: 16 }, c.ids.length + c.greedy.length);
  try {
    const id = cache.admit(c.ids.length);
    const read = (t: Tensor) => b.readSync(t) as Float32Array;
    let last = b.tidy(() => read(engine.forward.prefill(cache, [{ id, tokens: c.ids }])));
    const logits = [last];
    const tokens: number[] = [];
    for (let i = 0; i < c.greedy.length; i++) {
      tokens.push(last.indexOf(Math.max(...last)));
      if (i + 1 === c.greedy.length) break;
      const next = forced ? forced[i] : tokens[i];
      last = b.tidy(() => read(engine.forward.decode(cache, [id], [next])));
      logits.push(last);
    }
    return { tokens, logits };
  } finally {
    cache.close();
  }
}

/** Per golden step, the float32 top-2 logits along the golden tokens: how clearly each greedy choice is made. */
export interface GoldenMargins {
  readonly top1: number[];
  readonly margin: number[];
}

/** Margins from a float32 engine (the CPU backend, which reproduces golden.json exactly), teacher-forced on the golden tokens. */
export function goldenMargins(engine: LlamaEngine, c: GoldenCase): GoldenMargins {
  const { logits } = greedy(engine, c, c.greedy);
  const top2 = logits.map((l) => [...l].sort((a, b) => b - a).slice(0, 2));
  return { top1: top2.map((t) => t[0]), margin: top2.map((t) => t[0] - t[1]) };
}

/**
 * The bundled model against golden.json on the backend under test: the top-10
 * logits of the prompt's last position within 2e-2 relative, and the greedy tokens
 * exactly. A divergence passes only where it is no error: at a step whose two best
 * float32 logits lie closer than the logit tolerance allows telling apart
 * (2 x 2e-2 x the top logit), so that any 16-bit computation may pick either.
 */
export function goldenChecks(engine: LlamaEngine, cases: readonly GoldenCase[], margins: readonly GoldenMargins[], label: string): CheckResult[] {
  return cases.flatMap((c, k) => {
    const { tokens, logits } = greedy(engine, c);
    const top = c.last_logits_top10;
    const at = tokens.findIndex((t, i) => t !== c.greedy[i]);
    const m = margins[k];
    const tie = at >= 0 && m.margin[at] < 2 * GOLDEN_LOGITS_TOLERANCE * Math.abs(m.top1[at]);
    const detail =
      at < 0
        ? `${c.name} (${c.ids.length} prompt tokens, ${c.greedy.length} generated), ${label}`
        : `${c.name}, ${label}: first differs at step ${at}, where the float32 top-2 margin is ${m.margin[at].toFixed(4)} (top logit ${m.top1[at].toFixed(2)})${tie ? ': a tie at this precision' : ''}`;
    return [
      result('golden greedy tokens', detail, at < 0 || tie ? 0 : c.greedy.length - at, 0),
      result(
        'golden top-10 logits',
        `${c.name}, ${label}`,
        relativeError(
          top.ids.map((i) => logits[0][i]),
          top.values,
        ),
        GOLDEN_LOGITS_TOLERANCE,
      ),
    ];
  });
}

/** Host-blocking synchronisations so far, as the CUDA binding counts them. */
export type SyncCounter = () => number;

/**
 * ArkVale's decode step on the device against the same steps selecting on the host
 * (estimates read, `policy.decide`): a batch of golden prompts over a small budget,
 * greedy for `steps` steps. The tokens and recalls must agree, and the device steps
 * may synchronise only for their token readback.
 */
export function deviceStepChecks(engine: LlamaEngine, cases: readonly GoldenCase[], syncs: SyncCounter, label: string, steps = 24): CheckResult[] {
  const b = engine.backend;
  const prompts = cases.map((c) => c.ids);
  const run = (selectOn: 'device' | 'host') => {
    const cache = engine.createCache(
      { policy: 'arkvale', pageSize: 16, budgetTokens: 128, selectOn },
      Math.max(...prompts.map((p) => p.length)) + steps,
      prompts.length,
    );
    try {
      const ids = prompts.map((p) => cache.admit(p.length));
      const first = b.tidy(() =>
        b.argmax(
          engine.forward.prefill(
            cache,
            ids.map((id, i) => ({ id, tokens: prompts[i] })),
          ),
        ),
      );
      let tokens = Array.from(b.readSync(first));
      b.dispose(first);
      const out = [tokens];
      let inside = 0;
      for (let s = 0; s < steps; s++) {
        const before = syncs();
        const next = b.tidy(() => b.argmax(engine.forward.decode(cache, ids, tokens)));
        inside += syncs() - before;
        tokens = Array.from(b.readSync(next));
        b.dispose(next);
        out.push(tokens);
      }
      return { tokens: out.flat(), recalls: cache.stats().recalls, inside };
    } finally {
      cache.close();
    }
  };
  const graphs = () => (b as { graphStats?: { replayed: number; direct: number; fallbacks: number; recorded: number } }).graphStats;
  const before = graphs();
  const device = run('device');
  const after = graphs();
  const host = run('host');
  const what = `${prompts.length} golden prompts, budget 128, ${steps} steps, ${label}`;
  const checks = [
    result('device step: synchronisations inside a step', `${what} (host path: ${host.inside})`, device.inside, 0),
    result('device step: tokens as selecting on the host', what, mismatches(device.tokens, host.tokens), 0),
    result('device step: recalls as selecting on the host', `${what}: ${device.recalls} recalls`, Math.abs(device.recalls - host.recalls), 0),
  ];
  if (before && after) {
    // The device steps above ran mostly as graph replays, some without their forward pass (direct): the token and recall checks cover them.
    const replayed = after.replayed - before.replayed;
    const direct = after.direct - before.direct;
    const detail = `${what}: ${replayed} replayed (${direct} direct), ${after.recorded - before.recorded} recorded, ${after.fallbacks - before.fallbacks} fell back`;
    checks.push(result('device step: steps replayed as CUDA graphs', detail, replayed >= steps / 3 ? 0 : 1, 0));
    checks.push(result('device step: replays without the forward pass', detail, direct > 0 ? 0 : 1, 0));
  }
  return checks;
}

/**
 * The engine's overlapped decode steps (EngineConfig.overlapSteps: a step issued before
 * the host reads the tokens it feeds, which the step before kept on the device) against
 * steps run one by one: the golden prompts through ArkVale over a small budget, every
 * other one sampled from a seed, must give the same tokens.
 */
export function overlapChecks(engine: LlamaEngine, cases: readonly GoldenCase[], label: string, steps = 16): CheckResult[] {
  const requests: GenerationRequest[] = cases.flatMap((c, i) => [
    { promptIds: c.ids, maxTokens: steps, ignoreEos: true, ...(i % 2 === 1 ? { temperature: 0.8, topK: 40, seed: 11 + i } : {}) },
    // Greedy to its end of sequence where the golden text has one (the passkey's): the steps after it feed the other
    // rows, gathered on the device.
    { promptIds: c.ids, maxTokens: steps },
  ]);
  const run = (overlapSteps: boolean) =>
    generateBatch(engine, requests, { policy: 'arkvale', pageSize: 16, budgetTokens: 128 }, { overlapSteps }).outputs.flatMap((o) => o.tokenIds);
  const [on, off] = [run(true), run(false)];
  return [
    result(
      'overlapped steps: tokens as steps one by one',
      `${cases.length} golden prompts twice (every other one sampled; greedy to end of sequence), ${steps} tokens, ${label}`,
      mismatches(on, off),
      0,
    ),
  ];
}
