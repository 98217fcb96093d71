import { FileByteSource } from '../format/bytesource.js';
import { parseDesc, type Desc, type DescEntry } from '../format/template.js';

/** Same DESC as the template, with written (7/10/4) entries counting as needed (6/9/3): spec §6.2. */
function sameDesc(a: Desc, b: Desc): boolean {
  const norm = (e: DescEntry): string =>
    e.kind === 'part' ? `p${e.offset}:${e.length}:${e.key}` : e.kind === 'raw' ? `r${e.offset}:${e.length}` : `i${e.imageSize}:${e.sum.toString('hex')}`;
  return a.entries.length === b.entries.length && a.entries.every((e, i) => norm(e) === norm(b.entries[i]!));
}

/**
 * The parts a jigdo-lite `IMG.tmp` (an unfinished image of `imageSize` bytes with the template's DESC at its end) says
 * it wrote, and where (spec §6.2, §6.5); undefined when it is no such file of this template (another image's, or no
 * DESC at its end), or cannot be opened (`opened` false then).
 */
export async function writtenParts(file: string, imageSize: number, templateDesc: Desc): Promise<{ opened: boolean; parts?: Array<{ key: string; offset: number }> }> {
  const src = await FileByteSource.open(file).catch(() => undefined);
  if (!src) return { opened: false };
  try {
    const desc = await parseDesc(src);
    if (desc.start !== imageSize || !sameDesc(desc, templateDesc)) return { opened: true };
    return { opened: true, parts: desc.entries.flatMap((e) => (e.kind === 'part' && e.written ? [{ key: e.key, offset: e.offset }] : [])) };
  } catch {
    return { opened: true }; // (no DESC at its end: not a .tmp of jigdo's at all)
  } finally {
    await src.close();
  }
}
