import type { CopyTicket } from '../backend.js';
import type { KvPolicy, PagePolicy, TokenPolicy } from '../policies/policy.js';

export type BackupState = 'none' | 'pending' | 'complete';

/** One logical page of a (sequence, layer). */
export interface PageEntry {
  /** Device slot, or -1 when the page lives only on the host. */
  slot: number;
  /** Host slot of its backup, or -1. */
  host: number;
  backup: BackupState;
  /** The copy that fills `host`, until it is known complete. */
  ticket: CopyTicket | null;
  /** Digest row once the page is full (policies with digests), or -1. */
  digest: number;
}

/** A layer kept as logical pages (Full, Quest, ArkVale, and every unbudgeted layer). */
export interface PageLayer {
  readonly kind: 'page';
  readonly policy: PagePolicy;
  /** Resident pages limited to the budget (ArkVale outside the first layers). */
  readonly budgeted: boolean;
  readonly digests: boolean;
  readonly backups: boolean;
  pages: PageEntry[];
}

/** A layer kept as a fixed set of cells (StreamingLLM, H2O, TOVA). */
export interface TokenLayer {
  readonly kind: 'token';
  readonly policy: TokenPolicy;
  /** Device slots of the cache's pages, in cell order. */
  slots: number[];
  /** Sequence position in each cell, -1 for the free cell. */
  positions: Int32Array;
  scores: Float32Array;
  /** Cells written so far (the attended prefix). */
  filled: number;
  /** The cell the next token takes once the cache is full, or -1. */
  freeCell: number;
}

export type LayerState = PageLayer | TokenLayer;

export interface SequenceState {
  readonly id: number;
  /** Tokens the sequence holds (prompt plus generated). */
  length: number;
  readonly layers: LayerState[];
  /** Layers whose prompt has been written. */
  readonly prefilled: boolean[];
}

export function emptyPage(slot: number): PageEntry {
  return { slot, host: -1, backup: 'none', ticket: null, digest: -1 };
}

/**
 * The empty state of one layer under `policy`. Page policies that neither limit
 * residency nor score pages (Full, and every unbudgeted layer) keep plain pages.
 */
export function newLayerState(policy: KvPolicy, tokenCells: number): LayerState {
  if (policy.kind === 'page') {
    const digests = policy.digest !== null;
    return { kind: 'page', policy, budgeted: policy.budgeted, digests, backups: policy.recallable && policy.budgeted, pages: [] };
  }
  return {
    kind: 'token',
    policy,
    slots: [],
    positions: new Int32Array(tokenCells).fill(-1),
    scores: new Float32Array(tokenCells),
    filled: 0,
    freeCell: -1,
  };
}
