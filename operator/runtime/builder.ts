/**
 * What a controller watches, declared beside its reconciler in the manner of controller-runtime's
 * builder: `For` the primary kind (its own events queue it), `Owns` kinds whose controller owner
 * reference points back at it, `Watches` any cached kind through a function that maps an object to
 * the keys it concerns. The Manager wires the declarations; no controller queues another's keys.
 */
import type { KubernetesObject } from '@kubernetes/client-node';
import { type Informer, keyOf } from '../kube/informer.ts';
import type { ReconcileResult } from '../reconcile/context.ts';
import { canonicalJson } from './compare.ts';

// biome-ignore lint/suspicious/noExplicitAny: an informer of any object type; handlers are typed per source.
export type CacheSet = Record<string, Informer<any>>;
type ItemOf<I> = I extends Informer<infer T> ? T : never;

/** Keys (`namespace/name`) of the controller's kind that an object of another kind concerns. */
export type MapFunction<C extends CacheSet, K extends keyof C> = (
  object: ItemOf<C[K]>,
  caches: C,
) => string[];

/**
 * What the object with `key` reads of a watched object: for an update, the key is queued only when
 * this differs between the old and new versions (controller-runtime's predicates, per target).
 */
export type Projection<T> = (object: T, key: string) => unknown;

interface Watch<C extends CacheSet> {
  source: keyof C;
  map: MapFunction<C, keyof C>;
  reads?: Projection<KubernetesObject> | undefined;
}

export interface ControllerDefinition<C extends CacheSet, Context> {
  kind: string;
  primary: keyof C;
  owns: readonly (keyof C)[];
  watches: readonly Watch<C>[];
  /** Workers of this controller (controller-runtime's MaxConcurrentReconciles); one key never runs twice at once. */
  maxConcurrentReconciles: number;
  reconcile: (ctx: Context, key: string) => Promise<ReconcileResult>;
}

export class ControllerBuilder<C extends CacheSet, Context> {
  private readonly kind: string;
  private readonly primary: keyof C;
  private readonly owned: (keyof C)[] = [];
  private readonly watched: Watch<C>[] = [];
  private workers = 4;

  constructor(kind: string, primary: keyof C) {
    this.kind = kind;
    this.primary = primary;
  }

  /** Objects of these caches whose controller owner reference names this kind queue their owner. */
  owns(...sources: (keyof C)[]): this {
    this.owned.push(...sources);
    return this;
  }

  /**
   * Objects of `source` queue the keys `map` returns (for an update, those of the old version too).
   * With `reads`, an update queues a key only when what that key reads of the object changed: an
   * AuthService registering one more Registry need not wake the thousand others.
   */
  watches<K extends keyof C>(source: K, map: MapFunction<C, K>, reads?: Projection<ItemOf<C[K]>>): this {
    this.watched.push({
      source,
      map: map as MapFunction<C, keyof C>,
      reads: reads as Projection<KubernetesObject> | undefined,
    });
    return this;
  }

  /**
   * How many keys are reconciled at once (4 unless set). A reconciler that mostly waits on the API
   * and S3 keeps more workers busy without using more CPU.
   */
  maxConcurrentReconciles(workers: number): this {
    this.workers = workers;
    return this;
  }

  complete(
    reconcile: (ctx: Context, key: string) => Promise<ReconcileResult>,
  ): ControllerDefinition<C, Context> {
    return {
      kind: this.kind,
      primary: this.primary,
      owns: this.owned,
      watches: this.watched,
      maxConcurrentReconciles: this.workers,
      reconcile,
    };
  }
}

/** Keys of the controller owner of an object, when that owner is of `kind`. */
export function ownerKeys(object: KubernetesObject, kind: string): string[] {
  const owner = object.metadata?.ownerReferences?.find((ref) => ref.controller && ref.kind === kind);
  return owner ? [`${object.metadata?.namespace ?? ''}/${owner.name}`] : [];
}

/** Subscribes `enqueue` to every event the definition declares. */
export function wireController<C extends CacheSet, Context>(
  definition: ControllerDefinition<C, Context>,
  caches: C,
  enqueue: (key: string) => void,
): void {
  // Its own status written (by this controller, as a rule) asks for nothing: skip those updates,
  // as controller-runtime's predicates would. Spec, metadata (finalizers, deletion) do queue it.
  caches[definition.primary]!.on((_event, object: KubernetesObject, previous?: KubernetesObject) => {
    if (previous && !changedBesidesStatus(previous, object)) return;
    enqueue(keyOf(object));
  });
  for (const source of definition.owns) {
    caches[source]!.on((_event, object: KubernetesObject, previous?: KubernetesObject) => {
      for (const key of ownerKeys(object, definition.kind)) enqueue(key);
      if (previous) for (const key of ownerKeys(previous, definition.kind)) enqueue(key);
    });
  }
  for (const { source, map, reads } of definition.watches) {
    caches[source]!.on((_event, object: KubernetesObject, previous?: KubernetesObject) => {
      const keys = new Set(map(object as never, caches));
      if (previous) for (const key of map(previous as never, caches)) keys.add(key);
      for (const key of keys) {
        const unchanged =
          reads && previous && canonicalJson(reads(object, key)) === canonicalJson(reads(previous, key));
        if (!unchanged) enqueue(key);
      }
    });
  }
}

/** Whether anything but status (and the version stamps a status write changes) differs. */
export function changedBesidesStatus(previous: KubernetesObject, object: KubernetesObject): boolean {
  const rest = ({ status: _status, metadata, ...others }: KubernetesObject & { status?: unknown }) => {
    const { resourceVersion: _version, managedFields: _fields, ...meta } = metadata ?? {};
    return canonicalJson({ ...others, metadata: meta });
  };
  return rest(previous) !== rest(object);
}

/** Queues every object of the definition's primary kind: the periodic resync. */
export function resyncKeys<C extends CacheSet, Context>(
  definition: ControllerDefinition<C, Context>,
  caches: C,
): string[] {
  return caches[definition.primary]!.list().map((object: KubernetesObject) => keyOf(object));
}
