/** A broken target for the harness's own test: input starting with "U" throws a TypeError; others a clean RangeError. */
export default {
  name: 'unclean',
  async run(input: Buffer): Promise<void> {
    await Promise.resolve();
    throw input[0] === 0x55 ? new TypeError('not clean') : new RangeError('clean');
  },
  isCleanError: (e: unknown): boolean => e instanceof RangeError,
};
