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

export function setConditions(
  existing: readonly Condition[] | undefined,
  inputs: readonly ConditionInput[],
  generation: number,
  now: Date = new Date(),
): Condition[] {
  const previous = new Map((existing ?? []).map((condition) => [condition.type, condition]));
  return inputs.map((input) => {
    const status = input.status === 'Unknown' ? 'Unknown' : input.status ? 'True' : 'False';
    const before = previous.get(input.type);
    return {
      type: input.type,
      status,
      observedGeneration: generation,
      lastTransitionTime:
        before && before.status === status
          ? before.lastTransitionTime
          : now.toISOString().replace(/\.\d+Z$/, 'Z'),
      reason: input.reason,
      message: input.message.slice(0, 32_768),
    };
  });
}

/** `Ready` is true when every other condition is; otherwise it carries the first failing reason. */
export function readyCondition(inputs: readonly ConditionInput[], readyMessage: string): ConditionInput {
  const failing = inputs.find((input) => input.status !== true);
  if (!failing) return { type: 'Ready', status: true, reason: 'Ready', message: readyMessage };
  return {
    type: 'Ready',
    status: failing.status === 'Unknown' ? 'Unknown' : false,
    reason: failing.reason,
    message: `${failing.type}: ${failing.message}`,
  };
}

export function conditionOf(
  conditions: readonly Condition[] | undefined,
  type: string,
): Condition | undefined {
  return conditions?.find((condition) => condition.type === type);
}

export function isTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return conditionOf(conditions, type)?.status === 'True';
}
