/**
 * Deterministic mutations of seed inputs for the fuzz harness: byte flips, inserts, deletes, splices of two
 * seeds, huge numbers written over length fields, repeated lines, label fan-outs, include chains and long
 * lines. One seed number gives the same inputs on every machine (a small xorshift PRNG, no Math.random).
 */

export class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  /** 32 random bits. */
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** A whole number in [0, n). */
  below(n: number): number {
    return n <= 0 ? 0 : this.next() % n;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.below(list.length)]!;
  }
}

/** Inputs are cut to this size (and a repeated line never makes more). */
const MAX_INPUT = 8 << 20;

const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x100, 0xffff, 0x10000, 0x7fffffff, 0xffffffff, 2 ** 47, 2 ** 48 - 1, 2 ** 53 - 1];

function flip(rng: Rng, b: Buffer): Buffer {
  const out = Buffer.from(b);
  const n = 1 + rng.below(8);
  for (let i = 0; i < n && out.length > 0; i++) out[rng.below(out.length)]! ^= 1 << rng.below(8);
  return out;
}

function insert(rng: Rng, b: Buffer): Buffer {
  const at = rng.below(b.length + 1);
  const len = 1 + rng.below(64);
  const bytes = Buffer.alloc(len);
  for (let i = 0; i < len; i++) bytes[i] = rng.pick([0, 0x0a, 0x3d, 0x5b, 0x5d, 0x3a, 0x25, 0xe9, 0xff, rng.below(256)]);
  return Buffer.concat([b.subarray(0, at), bytes, b.subarray(at)]);
}

function remove(rng: Rng, b: Buffer): Buffer {
  if (b.length === 0) return b;
  const at = rng.below(b.length);
  const len = 1 + rng.below(Math.min(256, b.length - at));
  return Buffer.concat([b.subarray(0, at), b.subarray(at + len)]);
}

function splice(rng: Rng, b: Buffer, other: Buffer): Buffer {
  const a = rng.below(b.length + 1);
  const from = rng.below(other.length + 1);
  const to = from + rng.below(other.length - from + 1);
  return Buffer.concat([b.subarray(0, a), other.subarray(from, to), b.subarray(a + rng.below(b.length - a + 1))]);
}

/** A huge or edge value written as a little-endian 6-byte (template lengths) or 4-byte field, or as decimal text. */
function hugeNumber(rng: Rng, b: Buffer): Buffer {
  const value = rng.pick(INTERESTING);
  if (b.length >= 6 && rng.below(3) > 0) {
    const out = Buffer.from(b);
    // Length fields of a template: after a "DATA"/"BZIP"/"DESC" tag, in the last 6 bytes, or anywhere.
    const tags = ['DATA', 'BZIP', 'DESC'].flatMap((t) => offsetsOf(out, t).map((o) => o + 4 + 6 * rng.below(2)));
    const at = rng.below(3) === 0 ? out.length - 6 : tags.length > 0 && rng.below(2) === 0 ? rng.pick(tags) : rng.below(out.length - 5);
    if (at + 6 <= out.length) out.writeUIntLE(Math.min(value, 2 ** 48 - 1), at, 6);
    return out;
  }
  const text = b.toString('latin1');
  const digits = [...text.matchAll(/\d+/g)];
  if (digits.length === 0) return insert(rng, b);
  const m = rng.pick(digits);
  const big = rng.pick([String(value), '9'.repeat(1 + rng.below(400)), '-1', '1e308']);
  return Buffer.from(text.slice(0, m.index) + big + text.slice(m.index + m[0].length), 'latin1');
}

function offsetsOf(b: Buffer, needle: string): number[] {
  const out: number[] = [];
  for (let at = b.indexOf(needle); at >= 0 && out.length < 64; at = b.indexOf(needle, at + 1)) out.push(at);
  return out;
}

function lines(b: Buffer): string[] {
  return b.toString('latin1').split('\n');
}

function repeatLine(rng: Rng, b: Buffer): Buffer {
  const ls = lines(b);
  const i = rng.below(ls.length);
  const line = ls[i] ?? '';
  const times = Math.min(rng.pick([2, 10, 1000, 20_000]), Math.floor(MAX_INPUT / (line.length + 1)));
  ls.splice(i, 0, ...Array<string>(times).fill(line));
  return Buffer.from(ls.join('\n'), 'latin1');
}

/** Labels that each name several others ([Servers] A=B:x, A=C:x, B=A:x ...): a fan-out and a loop. */
function labelFanOut(rng: Rng, b: Buffer): Buffer {
  const n = 2 + rng.below(30);
  const out: string[] = ['[Servers]'];
  for (let i = 0; i < n; i++) for (let j = 0; j < 1 + rng.below(6); j++) out.push(`L${i}=L${rng.below(n)}:p${j}/`);
  out.push(`Debian=L0:`, `L${n - 1}=http://127.0.0.1:9/x/`);
  return Buffer.concat([b, Buffer.from(`\n${out.join('\n')}\n`, 'latin1')]);
}

/** [Include]s of the sibling files the jigdo target writes (a.jigdo .. d.jigdo): chains, loops, fan-outs. */
function includeChain(rng: Rng, b: Buffer): Buffer {
  const names = ['a.jigdo', 'b.jigdo', 'c.jigdo', 'd.jigdo', 'missing.jigdo', '../a.jigdo', '/dev/zero', 'http://127.0.0.1:9/x.jigdo'];
  const out: string[] = [];
  for (let i = 0; i < 1 + rng.below(40); i++) out.push(`[Include ${rng.pick(names)}]`);
  const ls = lines(b);
  ls.splice(rng.below(ls.length + 1), 0, ...out);
  return Buffer.from(ls.join('\n'), 'latin1');
}

function longLine(rng: Rng, b: Buffer): Buffer {
  const len = rng.pick([1000, 70_000, (1 << 20) - 1, (1 << 20) + 10, 3 << 20]);
  const at = rng.below(b.length + 1);
  const ch = rng.pick(['A', '=', ' ', '\\', "'", '"', '[', '\xe9']);
  return Buffer.concat([b.subarray(0, at), Buffer.alloc(len, ch, 'latin1'), b.subarray(at)]);
}

const MUTATORS = [flip, flip, insert, remove, remove, hugeNumber, hugeNumber, repeatLine, labelFanOut, includeChain, longLine];

/** One input: a seed, mutated 1..4 times (a splice with another seed among the choices). */
export function mutate(rng: Rng, seeds: readonly Buffer[]): Buffer {
  let b = rng.pick(seeds);
  const rounds = 1 + rng.below(4);
  for (let r = 0; r < rounds; r++) {
    const choice = rng.below(MUTATORS.length + 1);
    b = choice === MUTATORS.length ? splice(rng, b, rng.pick(seeds)) : MUTATORS[choice]!(rng, b);
    if (b.length > MAX_INPUT) b = b.subarray(0, MAX_INPUT); // keep inputs small enough to send to the child
  }
  return b;
}
