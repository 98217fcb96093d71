// cli-args.mjs — the argument helpers of the node scripts here (bench tools, not the product: src/cli does
// the product's parsing with commander). Each takes what it finds out of `args`, so what is left is positional.

/** Removes `name VALUE` from args and returns VALUE, or `dflt` when absent. */
export function takeOption(args, name, dflt) {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

/** Removes the flag `name` from args; true if it was there. */
export function takeFlag(args, name) {
  const i = args.indexOf(name);
  if (i < 0) return false;
  args.splice(i, 1);
  return true;
}
