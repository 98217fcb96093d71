/** A broken target for the harness's own test: input starting with "M" keeps allocating (outside the V8 heap). */
const kept: Buffer[] = [];
export default {
  name: 'memory',
  async run(input: Buffer): Promise<void> {
    if (input[0] !== 0x4d) return;
    for (let i = 0; i < 100; i++) {
      kept.push(Buffer.alloc(32 << 20, 1));
      await new Promise((r) => setTimeout(r, 30));
    }
  },
  isCleanError: (): boolean => false,
};
