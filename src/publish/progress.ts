/**
 * The progress line of make-template on a terminal (stderr): bytes scanned, matches, speed, time left.
 * Silent when stderr is not a terminal or with --quiet; the summary is printed by the command.
 */
export class Progress {
  private phase = '';
  private done = 0;
  private total = 0;
  private matches = 0;
  private started = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private readonly live: boolean;

  constructor(quiet: boolean, private readonly out: NodeJS.WriteStream = process.stderr) {
    this.live = !quiet && out.isTTY === true;
  }

  start(phase: string, total: number): void {
    this.phase = phase;
    this.total = total;
    this.done = 0;
    this.started = Date.now();
    if (this.live && !this.timer) {
      this.timer = setInterval(() => this.draw(), 250);
      this.timer.unref();
    }
  }

  /** More to do in this phase (a total that is known only as the phase goes on). */
  grow(bytes: number): void {
    this.total += bytes;
  }

  add(bytes: number): void {
    this.done += bytes;
  }

  set matched(n: number) {
    this.matches = n;
  }

  private draw(): void {
    const secs = (Date.now() - this.started) / 1000;
    const rate = secs > 0 ? this.done / secs : 0;
    const left = rate > 0 ? Math.max(0, (this.total - this.done) / rate) : 0;
    const pct = this.total > 0 ? ((100 * this.done) / this.total).toFixed(1) : '0.0'; // (a total still growing starts at 0: the walk has found nothing yet)
    const mb = (n: number): string => (n / 1e6).toFixed(0);
    this.out.write(`\r${this.phase}: ${mb(this.done)}/${mb(this.total)} MB (${pct}%), ${this.matches} parts, ${mb(rate)} MB/s, ${left.toFixed(0)} s left\x1b[K`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.live) this.out.write('\r\x1b[K');
  }
}
