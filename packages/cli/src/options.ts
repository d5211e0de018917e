import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DigestVariant, KvDtype, PolicyName, SelectionScope } from '@arkvale/core';
import { ArkvaleError, DIGEST_VARIANTS, KV_DTYPES, POLICY_NAMES, invalidArgument } from '@arkvale/core';
import type { CachePlan } from '@arkvale/model-llama';

// The engine's backend names and loader, for the commands' flags.
export { BACKENDS, GPU_DTYPES, checkBackendChoice, describeBackend, type GpuDtype } from '@arkvale/engine';

export function parseIntOption(name: string, min = 0) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < min) throw invalidArgument(`${name} must be an integer >= ${min}, got "${value}"`);
    return n;
  };
}

/** `on` or `off` as a boolean. */
export function parseSwitchOption(name: string) {
  return (value: string): boolean => {
    if (value !== 'on' && value !== 'off') throw invalidArgument(`${name} must be "on" or "off", got "${value}"`);
    return value === 'on';
  };
}

export function parseFloatOption(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isFinite(n)) throw invalidArgument(`${name} must be a number, got "${value}"`);
    return n;
  };
}

export function parsePolicy(value: string): PolicyName {
  if (!(POLICY_NAMES as readonly string[]).includes(value)) {
    throw invalidArgument(`unknown policy "${value}"; expected one of: ${POLICY_NAMES.join(', ')}`);
  }
  return value as PolicyName;
}

export function parseKvDtype(value: string): KvDtype {
  if (!(KV_DTYPES as readonly string[]).includes(value)) throw invalidArgument(`--kv-dtype must be one of: ${KV_DTYPES.join(', ')}; got "${value}"`);
  return value as KvDtype;
}

export function parseList<T>(parse: (v: string) => T) {
  return (value: string): T[] =>
    value
      .split(',')
      .map((v) => v.trim())
      .filter(Boolean)
      .map(parse);
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** The model folder: --model, then $ARKVALE_MODEL, then the bundled model under the working directory. */
export function resolveModelDir(given: string | undefined): string {
  if (given) return given;
  if (process.env.ARKVALE_MODEL) return process.env.ARKVALE_MODEL;
  const bundled = join(process.cwd(), 'models', 'tiny-retrieval');
  if (existsSync(bundled)) return bundled;
  throw new ArkvaleError('MODEL_FILE', 'no model given: pass --model DIR (a Hugging Face LLaMA folder) or set ARKVALE_MODEL');
}

export function parseFraction(name: string) {
  return (value: string): number => {
    const n = Number(value);
    if (!(n > 0 && n <= 1)) throw invalidArgument(`${name} must be a number in (0, 1], got "${value}"`);
    return n;
  };
}

export interface CacheFlags {
  policy: string;
  budget: number;
  pageSize: number;
  kvDtype?: KvDtype;
  sinks?: number;
  window?: number;
  fullLayers?: number;
  topK?: number;
  digest?: string;
  selection?: string;
}

export function cachePlan(f: CacheFlags, policy: PolicyName = parsePolicy(f.policy), budget = f.budget): CachePlan {
  if (f.digest !== undefined && !(DIGEST_VARIANTS as readonly string[]).includes(f.digest)) {
    throw invalidArgument(`unknown digest "${f.digest}"; expected one of: ${DIGEST_VARIANTS.join(', ')}`);
  }
  return {
    policy,
    budgetTokens: budget,
    pageSize: f.pageSize,
    kvDtype: f.kvDtype === undefined ? undefined : parseKvDtype(f.kvDtype),
    sinkPages: f.sinks,
    windowPages: f.window,
    fullLayers: f.fullLayers,
    topK: f.topK,
    digest: f.digest as DigestVariant | undefined,
    selection: f.selection as SelectionScope | undefined,
  };
}
