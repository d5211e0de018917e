import type { CopyTicket, Tensor } from '../backend.js';
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
  /**
   * Its row in the store's device page tables (selection on the device), or -1. The
   * row mirrors `pages` only while `rowSynced`; anything that changes the pages
   * outside a device step clears it (see DeviceTables).
   */
  deviceRow: number;
  rowSynced: boolean;
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
  /**
   * The cell the newest token took when it was a new one (filled grew), or -1 when it
   * took the free cell: on the device path, that is the cell the device places it in.
   */
  freshCell: number;
  /**
   * Its row in the store's token-cell tables (H2O and TOVA deciding on the device), or
   * -1. While `rowSynced`, the row mirrors the cells and holds the scores: `scores`
   * here may be stale until read back (TokenTables.pullScores).
   */
  deviceRow: number;
  rowSynced: boolean;
}

export type LayerState = PageLayer | TokenLayer;

export interface SequenceState {
  readonly id: number;
  /** Tokens the sequence holds (prompt plus generated). */
  length: number;
  readonly layers: LayerState[];
  /** Layers whose prompt has been written. */
  readonly prefilled: boolean[];
  /** Prompt tokens taken from the prefix cache at admission (not prefilled). */
  readonly cachedTokens?: number;
  /** Set while the prompt is prefilled in chunks (`admitChunked`); `length` counts the tokens written so far. */
  chunked?: ChunkedPrefill | null;
  /** Set while the sequence is parked in the host pool (`park`): no device page is held. */
  parked?: ParkedState | null;
}

/** Pool pages an operation will take, as checked before it changes anything. */
export interface PoolNeeds {
  readonly device: number;
  readonly host: number;
  readonly digests: number;
}

/**
 * A token-level layer's prompt while it is prefilled in chunks: the prompt's keys
 * live in ordinary pages (so later chunks can attend them), the K/V rows are kept to
 * pick the surviving tokens from at the end, and the key statistic accumulates.
 */
export interface TokenPrefillBuffer {
  /** Device slots holding the prompt so far, in position order. */
  readonly slots: number[];
  readonly k: Tensor[];
  readonly v: Tensor[];
  /** The policy's per-key statistic over the prompt so far, or null when it needs none. */
  scores: Float32Array | null;
  /** The token cells, taken when the last chunk begins. */
  cells: number[];
}

/** One chunk begun by `beginPrefillChunk` and not yet written in every layer. */
export interface PendingChunk {
  readonly start: number;
  readonly count: number;
  readonly last: boolean;
  readonly done: boolean[];
}

export interface ChunkedPrefill {
  readonly promptLength: number;
  /** Per layer: the buffer of a token-level layer, null for a page layer. */
  readonly tokens: (TokenPrefillBuffer | null)[];
  chunk: PendingChunk | null;
}

/** What `resume` restores: per layer, the pages or cells that were on the device. */
export interface ParkedState {
  /** Page layers: logical pages that were resident (null for token layers). */
  readonly resident: (number[] | null)[];
  /** Page layers: pages whose host copy exists only because of parking (released on resume). */
  readonly copies: (number[] | null)[];
  /** Token layers: host slots holding the cell pages, in cell order (null for page layers). */
  readonly cellHosts: (number[] | null)[];
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
    return {
      kind: 'page',
      policy,
      budgeted: policy.budgeted,
      digests,
      backups: policy.recallable && policy.budgeted,
      pages: [],
      deviceRow: -1,
      rowSynced: false,
    };
  }
  return {
    kind: 'token',
    policy,
    slots: [],
    positions: new Int32Array(tokenCells).fill(-1),
    scores: new Float32Array(tokenCells),
    filled: 0,
    freeCell: -1,
    freshCell: -1,
    deviceRow: -1,
    rowSynced: false,
  };
}
