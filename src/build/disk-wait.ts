import { usableCores } from '../util/cpu-count.js';

/** Direct writes waited for before the first judgement: the first ones wait for the pipeline to fill, not for the disk. */
const FIRST_BLOCKS = 24;
/** The share of make-image's time spent waiting for direct writes beyond which the rest goes buffered. */
const MOST_WAIT = 0.15;
/** ... provided the process used at most this share of the CPUs it may use (util/cpu-count.ts): buffered writes' copies need room. */
const MOST_CPU = 0.6;

/**
 * Whether make-image's direct writes (direct-output.ts) are what it waits for. Its block loop keeps a few blocks
 * under way, each written and hashed at once, and waits for the oldest before taking another; the whole-image hash
 * is meant to be what it waits for. Where the disk takes direct writes slower than the hash goes (one host here:
 * ~340 MB/s of 4 MiB direct writes into the image, 30-40 % iowait, the hashing thread idle 2.4 s of a 6.5 s local
 * make-image), buffered writes were quicker: the kernel writes the page cache back in larger requests meanwhile
 * (2 GB fixture, alternated: 5.3-5.8 s buffered against 6.6-7.6 s direct). Where the disk keeps up, direct writes
 * are the quicker way (they skip the copy into fresh page-cache pages: direct-output.ts) and stay. Buffered writes cost
 * CPU (that copy: 1-2 s of sys per 2 GB here), so they are only taken while the process leaves the CPU room: over HTTP
 * at 0 ms, where make-image used ~2/3 of the two cores, going buffered made it 0.3 s slower.
 * BENCHMARKS.md, "Direct writes that wait for the disk".
 *
 * Owns the time the loop waited for a write that ended after its block's hash (`waited`), and the judgement.
 */
export class DiskWait {
  private readonly since: number;
  private readonly cpuSince: number;
  private waited = 0;
  private blocks = 0;

  /** `host`: the clock, the process's CPU time and the cores (for tests; the process's own by default). */
  constructor(private readonly host: DiskWaitHost = processHost) {
    this.since = host.now();
    this.cpuSince = host.cpuMs();
  }

  /**
   * The loop waited `ms` for a block whose write ended `lagMs` after its hash (negative: the hash ended last); only
   * blocks written directly count.
   */
  add(ms: number, lagMs: number): void {
    this.blocks++;
    this.waited += Math.min(ms, Math.max(0, lagMs));
  }

  /** True once enough blocks show the direct writes holding the loop back, with CPU to spare: write the rest buffered. */
  get tooSlow(): boolean {
    const elapsed = this.host.now() - this.since;
    if (this.blocks < FIRST_BLOCKS || this.waited <= MOST_WAIT * elapsed) return false;
    return this.host.cpuMs() - this.cpuSince < MOST_CPU * this.host.cores * elapsed;
  }
}

export interface DiskWaitHost {
  now(): number;
  /** CPU time of the process (all its threads), ms. */
  cpuMs(): number;
  cores: number;
}

const processHost: DiskWaitHost = {
  now: () => performance.now(),
  cpuMs: () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  },
  get cores() {
    return usableCores();
  },
};
