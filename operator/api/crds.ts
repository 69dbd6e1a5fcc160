/** Builds the CustomResourceDefinitions from the schemas in ./types.ts. */
import { GROUP, KINDS, type KindName, VERSION } from './types.ts';

const readyColumns = [
  { name: 'Ready', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
  { name: 'Reason', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].reason', priority: 1 },
  { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' },
];

export function customResourceDefinition(kind: KindName): Record<string, unknown> {
  const { plural, singular, shortNames, schema, columns } = KINDS[kind];
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: {
      name: `${plural}.${GROUP}`,
      labels: { 'app.kubernetes.io/part-of': 'wharf' },
    },
    spec: {
      group: GROUP,
      scope: 'Namespaced',
      names: {
        kind,
        listKind: `${kind}List`,
        plural,
        singular,
        shortNames: [...shortNames],
        categories: ['wharf'],
      },
      versions: [
        {
          name: VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: [...columns, ...readyColumns],
          schema: {
            openAPIV3Schema: {
              ...schema,
              required: ['spec'],
              ...(kind === 'OpenIdProvider'
                ? {
                    // The name is the provider's name in the server configuration (the issuer part of usernames).
                    'x-kubernetes-validations': [
                      {
                        rule: "self.metadata.name.matches('^[a-z0-9][a-z0-9-]{0,31}$')",
                        message: 'metadata.name must be at most 32 characters of a-z, 0-9 and -',
                      },
                    ],
                  }
                : {
                    // Owned objects are named <name>-registry-…; a Service name has at most 63 characters.
                    'x-kubernetes-validations': [
                      {
                        rule: 'self.metadata.name.size() <= 40',
                        message: 'metadata.name must be at most 40 characters',
                      },
                    ],
                  }),
            },
          },
        },
      ],
    },
  };
}

export const ALL_KINDS = Object.keys(KINDS) as KindName[];
