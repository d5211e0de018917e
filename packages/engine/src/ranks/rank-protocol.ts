import type { CacheOptions } from '@arkvale/core';
import type { AttendRef, MirroredCall, PageFormat } from '@arkvale/model-llama';

/** What a rank worker thread is started with (structured-cloneable). */
export interface RankInit {
  /** The checkpoint folder, or a random-weight shape (seed 7, shared embedding x1, as ShapeModel makes it). */
  readonly modelDir?: string;
  readonly shape?: string;
  readonly rank: number;
  readonly size: number;
  readonly maxPositions: number;
  /** Ranks in threads: the group's shared memory (SharedMemoryCommunicator). */
  readonly shared?: SharedArrayBuffer;
  /** Ranks in processes, one GPU each: the NCCL communicator's id (rank 0's `ncclUniqueId`), and CUDA's dtype. */
  readonly ncclId?: Uint8Array;
  readonly dtype?: string;
}

/** A pass's rows as a worker rebuilds them: each segment's attention named by its `AttendRef`. */
export interface WireBatch {
  readonly segments: readonly { readonly tokens: readonly number[]; readonly positions: readonly number[]; readonly ref: AttendRef }[];
  readonly blocks?: readonly number[];
  readonly logitRows: readonly number[];
  readonly logitBlock?: number;
  readonly padTo?: readonly number[];
  readonly logitPad?: number;
}

/** The first message to a rank process (a thread gets its init as workerData). */
export type RankStart = { readonly op: 'start'; readonly init: RankInit };

export type ToRank =
  | {
      readonly op: 'createCache';
      readonly cache: number;
      readonly page: PageFormat;
      readonly options: CacheOptions;
      readonly prefixCache: boolean;
      /** The cache whose stores this one shares (the first plan's), or null. */
      readonly first: number | null;
    }
  | { readonly op: 'change'; readonly cache: number; readonly call: MirroredCall; readonly args: readonly unknown[]; readonly handle?: number }
  | { readonly op: 'pass'; readonly batch: WireBatch }
  | { readonly op: 'reservePadding'; readonly rows: number }
  | { readonly op: 'usage'; readonly ticket: number }
  | { readonly op: 'close' };

/** A rank's pools: pages in use in each of its caches' stores (the plans of one store count once), and its sequences. */
export interface RankUsage {
  readonly devicePages: number;
  readonly hostPages: number;
  readonly sequences: number;
}

export type FromRank =
  /** A process rank's GPU is up: it now joins the NCCL communicator (rank 0 joins after every rank has said so). */
  | { readonly type: 'joining' }
  | { readonly type: 'ready' }
  | { readonly type: 'fatal'; readonly message: string }
  | { readonly type: 'usage'; readonly ticket: number; readonly usage: RankUsage }
  | { readonly type: 'closed' };
