/**
 * Derives TypeScript types from the OpenAPI schemas in ./types.ts, so the schema written once is both
 * the CRD and the type the reconcilers read. Fields with a `default` are present after the apiserver
 * defaulted the object, so they come out required.
 */
type RequiredKeys<S> = S extends { required: readonly (infer R)[] } ? R : never;
type DefaultedKeys<P> = { [K in keyof P]: P[K] extends { default: unknown } ? K : never }[keyof P];

type ObjectFrom<P, R> = {
  -readonly [K in keyof P as K extends R | DefaultedKeys<P> ? K : never]: FromSchema<P[K]>;
} & {
  -readonly [K in keyof P as K extends R | DefaultedKeys<P> ? never : K]?: FromSchema<P[K]>;
};

export type FromSchema<S> = S extends { enum: readonly (infer E)[] }
  ? E
  : S extends { type: 'string' }
    ? string
    : S extends { type: 'integer' | 'number' }
      ? number
      : S extends { type: 'boolean' }
        ? boolean
        : S extends { type: 'array'; items: infer I }
          ? FromSchema<I>[]
          : S extends { type: 'object'; properties: infer P }
            ? ObjectFrom<P, RequiredKeys<S>>
            : S extends { type: 'object'; additionalProperties: infer A }
              ? Record<string, FromSchema<A>>
              : unknown;
