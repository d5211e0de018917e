/**
 * Loading build/Release/arkvale_cuda.node, and build/status.json beside it. Never
 * throws: a missing or broken addon becomes a reason the status reports.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { CudaAddon } from './native.js';

export const ADDON_ENV = 'ARKVALE_CUDA_ADDON';
export const BUILD_HINT = 'run pnpm --filter @arkvale/cuda-binding build';

/** What scripts/build.mjs wrote into build/status.json. */
export interface BuildStatusFile {
  readonly built: boolean;
  readonly reason?: string;
  readonly archs?: readonly string[];
  readonly nvcc?: string;
}

export interface AddonLoad {
  readonly addon?: CudaAddon;
  /** Why `addon` is missing, worded for the user ("addon not built: ..."). */
  readonly reason?: string;
  /** The .node file tried (or the package's default location). */
  readonly path: string;
  /** build/status.json, when there is one next to the addon. */
  readonly buildStatus?: BuildStatusFile;
}

const DEFAULT_ADDON = fileURLToPath(new URL('../build/Release/arkvale_cuda.node', import.meta.url));

/** build/status.json sits one folder above the addon (build/Release/..). */
export function statusFileFor(addonPath: string): string {
  return join(dirname(addonPath), '..', 'status.json');
}

export function readBuildStatus(file: string): BuildStatusFile | undefined {
  try {
    const json = JSON.parse(readFileSync(file, 'utf8')) as BuildStatusFile;
    return typeof json.built === 'boolean' ? json : undefined;
  } catch {
    return undefined;
  }
}

function requireAddon(override: string | undefined): CudaAddon {
  const require = createRequire(import.meta.url);
  // A literal path relative to this file (src/ or dist/ alike), so bundlers that
  // follow static requires can find and copy the binary.
  return (override ? require(override) : require('../build/Release/arkvale_cuda.node')) as CudaAddon;
}

function isMissingModule(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  return e?.code === 'MODULE_NOT_FOUND' || /Cannot find module/.test(String(e?.message));
}

/** The reason a failed require gives the status (exported for tests). */
export function describeLoadFailure(err: unknown, override: string | undefined): string {
  const message = (err as Error | undefined)?.message ?? String(err);
  if (isMissingModule(err)) return override ? `addon not built: ${ADDON_ENV}=${override} does not exist` : `addon not built: ${BUILD_HINT}`;
  const where = override ? `${ADDON_ENV}=${override}` : 'the addon';
  return `${where} failed to load (${message}); rebuild it: ${BUILD_HINT}`;
}

const loads = new Map<string, AddonLoad>();

/**
 * The addon at `override` (default: $ARKVALE_CUDA_ADDON, then the package's
 * build/Release/arkvale_cuda.node), loaded once per path.
 */
export function loadAddon(override: string | undefined = process.env[ADDON_ENV] || undefined): AddonLoad {
  const key = override ?? '';
  const cached = loads.get(key);
  if (cached) return cached;
  const path = override ?? DEFAULT_ADDON;
  const buildStatus = readBuildStatus(statusFileFor(path));
  let load: AddonLoad;
  if (buildStatus && !buildStatus.built) {
    // The last build made no addon: say why, and do not load a stale one.
    load = { path, buildStatus, reason: `addon not built: ${buildStatus.reason ?? 'the last build made none'}` };
  } else {
    try {
      load = { path, buildStatus, addon: requireAddon(override) };
    } catch (err) {
      load = { path, buildStatus, reason: describeLoadFailure(err, override) };
    }
  }
  loads.set(key, load);
  return load;
}
