import { quoted } from '../../format/byte-string.js';
import type { Command } from 'commander';
import { TemplateUnavailableError } from '../../format/errors.js';
import type { JigdoFile, JigdoImage } from '../../format/jigdo.js';
import { imageFileName, openImage, selectImage, type ImageSession } from '../../engine/session.js';
import { endCommand, loadCommandJigdo } from '../session.js';
import { addSourceOptions, sourceOptions, type SourceFlags } from '../options.js';
import { grouped } from '../../util/grouped.js';

/** What the .jigdo alone says: true with or without the template. */
function describeJigdo(jigdo: JigdoFile, image: JigdoImage) {
  return {
    file: jigdo.location.kind === 'file' ? jigdo.location.path : jigdo.location.url,
    version: `${jigdo.version.major}.${jigdo.version.minor}`,
    generator: jigdo.generator,
    images: jigdo.images.map((i) => i.filename),
    partLines: [...jigdo.parts.values()].reduce((n, l) => n + l.length, 0),
    /** Distinct checksums in [Parts] (the template may place fewer, or more, parts). */
    partKeys: jigdo.parts.size,
    template: image.template,
    templateMd5: image.templateMd5?.toString('hex'),
    templateSha256: image.templateSha256?.toString('hex'),
    warnings: jigdo.warnings,
  };
}

const servers = (jigdo: JigdoFile): Record<string, string[]> =>
  Object.fromEntries([...jigdo.servers].map(([label, values]) => [label, values.map((v) => v.uri + (v.weight ? ` (weight ${v.weight})` : ''))]));

/** Everything `info` reports with the template, also its --json shape. */
export function describe(s: ImageSession) {
  const { layout, template, jigdo, image } = s;
  const partRegions = layout.regions.filter((r) => r.kind === 'part').length;
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
      available: true as const,
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
    jigdo: describeJigdo(jigdo, image),
    servers: servers(jigdo),
  };
}

/** What `info` reports when the template cannot be had (not fetched yet, offline): the .jigdo's part of it. */
function describeWithoutTemplate(jigdo: JigdoFile, image: JigdoImage, reason: string) {
  return {
    image: imageFileName(image),
    filename: image.filename,
    shortInfo: image.shortInfo,
    template: { available: false as const, reason },
    jigdo: describeJigdo(jigdo, image),
    servers: servers(jigdo),
  };
}

type Info = ReturnType<typeof describe> | ReturnType<typeof describeWithoutTemplate>;

async function gather(jigdoArg: string, flags: SourceFlags): Promise<Info> {
  const opts = sourceOptions(flags);
  try {
    const jigdo = await loadCommandJigdo(jigdoArg, opts);
    const image = selectImage(jigdo, flags.image);
    let session: ImageSession;
    try {
      session = await openImage(jigdo, image, opts);
    } catch (err) {
      if (err instanceof TemplateUnavailableError) return describeWithoutTemplate(jigdo, image, err.message);
      throw err;
    }
    try {
      return describe(session);
    } finally {
      await session.close();
    }
  } finally {
    await endCommand(opts);
  }
}

function textLines(info: Info): string[] {
  const j = info.jigdo;
  const head = [`Image:        ${info.image}${info.filename !== info.image ? ` (Filename=${info.filename})` : ''}`];
  const tail = [
    `.jigdo:       version ${j.version}${j.generator ? `, ${j.generator}` : ''}, ${grouped(j.partLines)} [Parts] lines, ${j.images.length} image(s)`,
    `Servers:${Object.keys(info.servers).length ? '' : '      (none)'}`,
    ...Object.entries(info.servers).flatMap(([label, uris]) => uris.map((u) => `  ${label}=${u}`)),
    ...j.warnings.map((w) => `Warning:      ${w}`),
  ];
  if (!('size' in info)) {
    const sums = [j.templateMd5 && `md5 ${j.templateMd5}`, j.templateSha256 && `sha256 ${j.templateSha256}`].filter(Boolean).join(', ');
    return [
      ...head,
      ...(info.shortInfo ? [`ShortInfo:    ${info.shortInfo}`] : []),
      `Parts:        ${grouped(j.partKeys)} distinct in [Parts] (size and checksum of the image are in the template)`,
      `Template:     not available (${info.template.reason})`,
      `              Template=${j.template}${sums ? `, ${sums}` : ''}`,
      ...tail,
    ];
  }
  const t = info.template;
  return [
    ...head,
    `Size:         ${grouped(info.size)} bytes`,
    `Checksum:     ${info.checksum.kind} ${info.checksum.hex}`,
    ...(info.shortInfo ? [`ShortInfo:    ${info.shortInfo}`] : []),
    `Parts:        ${grouped(info.parts.distinct)} distinct, ${grouped(info.parts.placed)} placed, ${grouped(info.parts.bytes)} bytes` +
      (info.parts.zeroLength ? `, ${info.parts.zeroLength} zero-length` : ''),
    t.chunks === 0
      ? 'Raw data:     none (every byte of the image is in a part)'
      : `Raw data:     ${grouped(info.rawBytes)} bytes in ${grouped(t.chunks)} ${t.compression.join('+')} chunk(s), largest ${grouped(t.largestChunk)}`,
    `Template:     ${t.file}, ${grouped(t.size)} bytes, "${t.header}"`,
    ...tail,
  ];
}

export function registerInfo(program: Command): void {
  addSourceOptions(
    program
      .command('info')
      .description('show what a .jigdo describes: image, size, checksum, parts, template, servers (from the .jigdo alone when the template is not there)')
      .argument('<jigdo>', '.jigdo file or http(s) URL')
      .option('--json', 'print JSON for scripts'),
  ).action(async (jigdoArg: string, flags: SourceFlags & { json?: boolean }) => {
    const info = await gather(jigdoArg, flags);
    // Text: each line through `quoted`, as every value on it (names, ShortInfo, Generator, servers, the template's header
    // line) comes from the .jigdo or the template and may hold terminal controls. JSON escapes controls itself: exact.
    process.stdout.write(flags.json ? `${JSON.stringify(info, null, 2)}\n` : `${textLines(info).map(quoted).join('\n')}\n`);
  });
}
