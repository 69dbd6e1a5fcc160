import type { OciServices } from './services.ts';

/** Placeholder until GC lands: returns a stopper. */
export function startMaintenance(_services: OciServices): { stop(): void } {
  return { stop() {} };
}
