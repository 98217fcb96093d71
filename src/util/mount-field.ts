/** A field of /proc/mounts or /proc/self/mountinfo as it was: the kernel writes spaces and such as octal (`\040`). */
export function unescapeMountField(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}
