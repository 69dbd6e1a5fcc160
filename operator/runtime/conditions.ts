/**
 * Status conditions with the rules of apimachinery's meta.SetStatusCondition: one condition per
 * type, observedGeneration on each, lastTransitionTime changed only when the status flips.
 */
import type { Condition } from '../api/types.ts';

export interface ConditionInput {
  type: string;
  status: boolean | 'Unknown';
  reason: string;
  message: string;
}

/** A condition as a reconciler states it: what it is, whether it holds, why, and in words. */
export function condition(
  type: string,
  status: boolean | 'Unknown',
  reason: string,
  message: string,
): ConditionInput {
  return { type, status, reason, message };
}

const toStatus = (status: ConditionInput['status']): Condition['status'] =>
  status === 'Unknown' ? 'Unknown' : status ? 'True' : 'False';

/** Kubernetes writes timestamps to the second. */
const timestamp = (now: Date) => now.toISOString().replace(/\.\d+Z$/, 'Z');

/**
 * Sets one condition in a list (meta.SetStatusCondition): replaces the condition of the same type,
 * or appends it; keeps lastTransitionTime unless the status changes.
 */
export function setCondition(
  existing: readonly Condition[] | undefined,
  input: ConditionInput,
  generation: number,
  now: Date = new Date(),
): Condition[] {
  const status = toStatus(input.status);
  const before = existing?.find((item) => item.type === input.type);
  const next: Condition = {
    type: input.type,
    status,
    observedGeneration: generation,
    lastTransitionTime: before && before.status === status ? before.lastTransitionTime : timestamp(now),
    reason: input.reason,
    message: input.message.slice(0, 32_768),
  };
  const list = [...(existing ?? [])];
  const index = list.findIndex((item) => item.type === input.type);
  if (index === -1) list.push(next);
  else list[index] = next;
  return list;
}

/**
 * The whole list a reconcile reports, in the order given: each input set as setCondition does, and
 * types it no longer reports dropped.
 */
export function setConditions(
  existing: readonly Condition[] | undefined,
  inputs: readonly ConditionInput[],
  generation: number,
  now: Date = new Date(),
): Condition[] {
  let kept = (existing ?? []).filter((item) => inputs.some((input) => input.type === item.type));
  for (const input of inputs) kept = setCondition(kept, input, generation, now);
  const order = new Map(inputs.map((input, index) => [input.type, index]));
  return kept.sort((a, b) => order.get(a.type)! - order.get(b.type)!);
}

/** `Ready` is true when every other condition is; otherwise it carries the first failing reason. */
export function readyCondition(inputs: readonly ConditionInput[], readyMessage: string): ConditionInput {
  const failing = inputs.find((input) => input.status !== true);
  if (!failing) return condition('Ready', true, 'Ready', readyMessage);
  return condition(
    'Ready',
    failing.status === 'Unknown' ? 'Unknown' : false,
    failing.reason,
    `${failing.type}: ${failing.message}`,
  );
}

export function conditionOf(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((item) => item.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return conditionOf(conditions, type)?.status === 'True';
}
