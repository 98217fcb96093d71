import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { gunzipMembers } from '../../src/format/gzip-members.js';

async function gunzip(bytes: Buffer, chunkSize = 64 << 10): Promise<Buffer> {
  const out: Buffer[] = [];
  for await (const chunk of gunzipMembers(bytes, chunkSize)) out.push(chunk);
  return Buffer.concat(out);
}

const text = Buffer.from('[Jigdo]\nVersion=1.2\n'.repeat(5000));

test('one member, several members, in small chunks', async () => {
  assert.ok((await gunzip(gzipSync(text))).equals(text));
  const two = Buffer.concat([gzipSync(text.subarray(0, 1000)), gzipSync(text.subarray(1000))]);
  assert.ok((await gunzip(two, 1024)).equals(text));
});

test('bytes after the last member that start no other are ignored, as gzip and jigdo-file do (Node\'s gunzip refused them)', async () => {
  for (const tail of [Buffer.from('GARBAGE\n'), Buffer.alloc(512), Buffer.from([0x1f])]) {
    assert.ok((await gunzip(Buffer.concat([gzipSync(text), tail]))).equals(text), tail.toString('hex').slice(0, 16));
  }
});

test('the header\'s optional fields are passed over (FEXTRA, FNAME, FCOMMENT, FHCRC)', async () => {
  const plain = gzipSync(text);
  const extra = Buffer.from([3, 0, 0x41, 0x42, 0x43]); // XLEN 3
  const header = Buffer.concat([plain.subarray(0, 3), Buffer.from([4 | 8 | 16 | 2]), plain.subarray(4, 10), extra, Buffer.from('name\0comment\0'), Buffer.from([0, 0])]);
  assert.ok((await gunzip(Buffer.concat([header, plain.subarray(10)]))).equals(text));
});

test('damage is an error: a cut member, a bad trailer, a bad header', async () => {
  const gz = gzipSync(text);
  const fails = async (bytes: Buffer, message: RegExp): Promise<void> => {
    await assert.rejects(gunzip(bytes), message);
  };
  await fails(gz.subarray(0, gz.length - 10), /unexpected end of file/);
  await fails(gz.subarray(0, gz.length - 3), /unexpected end of file/);
  const badLength = Buffer.from(gz);
  badLength[badLength.length - 1]! ^= 1;
  await fails(badLength, /incorrect length check/);
  const badCrc = Buffer.from(gz);
  badCrc[badCrc.length - 8]! ^= 1;
  await fails(badCrc, /incorrect data check/);
  await fails(Buffer.concat([Buffer.from([0x1f, 0x8b, 7]), gz.subarray(3)]), /unknown compression method/);
  await fails(Buffer.concat([gz.subarray(0, 3), Buffer.from([0x80]), gz.subarray(4)]), /unknown header flags set/);
  await fails(gz.subarray(0, 5), /unexpected end of file/);
  await fails(Buffer.concat([gz, Buffer.from([0x1f, 0x8b, 8, 0])]), /unexpected end of file/, );
});
