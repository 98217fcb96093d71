import type { Command } from 'commander';
import { addSourceOptions, type SourceFlags } from '../options.js';
import { withSession } from '../session.js';
import type { ImageSession } from '../../engine/session.js';

/** Everything `info` reports, also its --json shape. */
export function describe(s: ImageSession) {
  const { layout, template, jigdo, image } = s;
  const regions = layout.regions;
  const partRegions = regions.filter((r) => r.kind === 'part').length;
  const zeroLength = [...layout.parts.values()].filter((p) => p.length === 0).length;
  return {
    image: s.name,
    filename: image.filename,
    size: layout.size,
    checksum: { kind: layout.checksumKind, hex: layout.imageSum.toString('hex') },
    shortInfo: image.shortInfo,
    parts: { distinct: layout.parts.size, placed: partRegions, zeroLength, bytes: layout.partBytes },
    rawBytes: template.desc.rawLength,
    template: {
      file: s.templatePath,
      size: template.fileSize,
      header: template.headerLine,
      version: template.version,
      creator: template.creator,
      chunks: template.chunks.length,
      compression: [...new Set(template.chunks.map((c) => c.compression))],
      largestChunk: Math.max(0, ...template.chunks.map((c) => c.uncompressedLength)),
      blockLength: template.desc.blockLength,
    },
    jigdo: {
      file: jigdo.location.kind === 'file' ? jigdo.location.path : jigdo.location.url,
      version: `${jigdo.version.major}.${jigdo.version.minor}`,
      generator: jigdo.generator,
      images: jigdo.images.map((i) => i.filename),
      partLines: [...jigdo.parts.values()].reduce((n, l) => n + l.length, 0),
      warnings: jigdo.warnings,
    },
    servers: Object.fromEntries([...jigdo.servers].map(([label, values]) => [label, values.map((v) => v.uri + (v.weight ? ` (weight ${v.weight})` : ''))])),
  };
}

const fmt = (n: number): string => n.toLocaleString('en-US');

export function registerInfo(program: Command): void {
  addSourceOptions(
    program
      .command('info')
      .description('show what a .jigdo describes: image, size, checksum, parts, template, servers')
      .argument('<jigdo>', '.jigdo file or http(s) URL')
      .option('--json', 'print JSON for scripts'),
  ).action(async (jigdoArg: string, flags: SourceFlags & { json?: boolean }) => {
    const info = await withSession(jigdoArg, flags, async (s) => describe(s));
    if (flags.json) {
      process.stdout.write(`${JSON.stringify(info, null, 2)}\n`);
      return;
    }
    const t = info.template;
    const lines = [
      `Image:        ${info.image}${info.filename !== info.image ? ` (Filename=${info.filename})` : ''}`,
      `Size:         ${fmt(info.size)} bytes`,
      `Checksum:     ${info.checksum.kind} ${info.checksum.hex}`,
      ...(info.shortInfo ? [`ShortInfo:    ${info.shortInfo}`] : []),
      `Parts:        ${fmt(info.parts.distinct)} distinct, ${fmt(info.parts.placed)} placed, ${fmt(info.parts.bytes)} bytes` +
        (info.parts.zeroLength ? `, ${info.parts.zeroLength} zero-length` : ''),
      `Raw data:     ${fmt(info.rawBytes)} bytes in ${fmt(t.chunks)} ${t.compression.join('+') || 'no'} chunk(s), largest ${fmt(t.largestChunk)}`,
      `Template:     ${t.file}, ${fmt(t.size)} bytes, "${t.header}"`,
      `.jigdo:       version ${info.jigdo.version}${info.jigdo.generator ? `, ${info.jigdo.generator}` : ''}, ${fmt(info.jigdo.partLines)} [Parts] lines, ${info.jigdo.images.length} image(s)`,
      `Servers:${Object.keys(info.servers).length ? '' : '      (none)'}`,
      ...Object.entries(info.servers).flatMap(([label, uris]) => uris.map((u) => `  ${label}=${u}`)),
      ...info.jigdo.warnings.map((w) => `Warning:      ${w}`),
    ];
    process.stdout.write(`${lines.join('\n')}\n`);
  });
}
