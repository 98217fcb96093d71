import { Worker, type ResourceLimits } from 'node:worker_threads';

/**
 * Starts the worker thread whose module is `name` (no extension) next to the module at `base` (the caller's
 * import.meta.url). Under tsx (tests run the sources) the worker is the .ts file, and it must register tsx
 * itself before importing it.
 */
export function startWorker(base: string, name: string, resourceLimits?: ResourceLimits): Worker {
  const fromSource = base.endsWith('.ts');
  const url = new URL(`${name}${fromSource ? '.ts' : '.js'}`, base);
  if (!fromSource) return new Worker(url, { resourceLimits });
  const boot = `import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(url.href)}); })`;
  return new Worker(boot, { eval: true, resourceLimits });
}
