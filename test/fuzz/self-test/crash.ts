/** A broken target for the harness's own test: input starting with "C" throws outside the promise (the process dies). */
export default {
  name: 'crash',
  async run(input: Buffer): Promise<void> {
    if (input[0] === 0x43) setImmediate(() => {
      throw new Error('uncaught');
    });
    await new Promise((r) => setTimeout(r, 50));
  },
  isCleanError: (): boolean => false,
};
