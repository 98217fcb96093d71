/** A byte range of a file. */
export interface FileRange {
  offset: number;
  length: number;
}

/** Messages between the main thread and the worker pool (see worker-main.ts). */
export type WorkerRequest = { id: number } & (
  | { op: 'bunzip2'; payload: Uint8Array; size: number }
  | { op: 'hashFile'; path: string; kind: string; offset?: number; length?: number; ranges?: FileRange[] }
  | { op: 'rsyncScan'; path: string; sums: string[]; window: number; step: number; maxMatches: number }
  | { op: 'hashStart'; stream: number; kind: string }
  | { op: 'hashUpdate'; stream: number; data: Uint8Array }
  | { op: 'hashEnd'; stream: number }
  | { op: 'dropPages'; paths: string[]; range?: FileRange; device?: number }
);

/** rsyncScan's answer: file offsets and, for each, the index in `sums` of the sum found there. */
export interface RsyncMatches {
  offsets: number[];
  which: number[];
}

export type WorkerReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string };

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
export type WorkerTask = DistributiveOmit<WorkerRequest, 'id'>;
