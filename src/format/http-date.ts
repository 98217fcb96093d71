/**
 * An HTTP-date (RFC 9110 §5.6.7) in ms since the epoch, or undefined for anything else: IMF-fixdate
 * (`Sun, 06 Nov 1994 08:49:37 GMT`), and the obsolete forms a recipient must accept too, RFC 850
 * (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`). Every one is GMT, asctime too, which
 * states no zone (Date.parse took it in the server's local time). Date.parse alone also took `2020`, `0` or ISO 8601,
 * which a conditional request must ignore (RFC 9110 §13.1.3), not be answered 304 or 412 for.
 */
export function parseHttpDate(value: string): number | undefined {
  const text = value.trim();
  const fix = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT$/.exec(text);
  const rfc850 = /^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-([A-Z][a-z]{2})-(\d\d) (\d\d):(\d\d):(\d\d) GMT$/.exec(text);
  const asctime = /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})$/.exec(text);
  let parts: [day: string, month: string, year: number, h: string, m: string, s: string] | undefined;
  if (fix) parts = [fix[1]!, fix[2]!, Number(fix[3]), fix[4]!, fix[5]!, fix[6]!];
  else if (rfc850) {
    // Two-digit years: more than 50 years in the future are taken as the past century's (RFC 9110 §5.6.7).
    const yy = Number(rfc850[3]);
    const thisYear = new Date().getUTCFullYear();
    let year = Math.floor(thisYear / 100) * 100 + yy;
    if (year > thisYear + 50) year -= 100;
    parts = [rfc850[1]!, rfc850[2]!, year, rfc850[4]!, rfc850[5]!, rfc850[6]!];
  } else if (asctime) parts = [asctime[2]!.trim(), asctime[1]!, Number(asctime[6]), asctime[3]!, asctime[4]!, asctime[5]!];
  if (!parts) return undefined;
  const [day, month, year, h, m, s] = parts;
  const mon = MONTHS.indexOf(month);
  const [d, hh, mm, ss] = [Number(day), Number(h), Number(m), Number(s)];
  if (mon < 0 || d < 1 || d > 31 || hh > 23 || mm > 59 || ss > 60) return undefined;
  const t = Date.UTC(year, mon, d, hh, mm, Math.min(ss, 59));
  return new Date(t).getUTCDate() === d ? t : undefined; // (not 31 Feb)
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
