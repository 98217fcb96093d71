/** A broken target for the harness's own test: input starting with "H" never finishes (a busy loop). */
export default {
  name: 'hang',
  async run(input: Buffer): Promise<void> {
    await Promise.resolve();
    if (input[0] === 0x48) for (;;);
  },
  isCleanError: (): boolean => false,
};
