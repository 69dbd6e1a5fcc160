import { parse as parseToml } from 'smol-toml';
import { CargoError } from './errors.ts';
import type { IndexDependency, IndexLine } from './index-file.ts';
import {
  crateNameProblem,
  crateNameSyntaxProblem,
  dependencyAliasProblem,
  featureValueProblem,
  isFeatureName,
  isSemver,
  versionReqProblem,
} from './names.ts';
import type { VersionDetails } from './owners.ts';

/** The JSON part of `cargo publish`'s request (registry-web-api.md, "Publish"). */
export interface PublishMetadata {
  name: string;
  vers: string;
  deps: PublishDependency[];
  features: Record<string, string[]>;
  authors?: string[];
  description?: string | null;
  documentation?: string | null;
  homepage?: string | null;
  readme?: string | null;
  readme_file?: string | null;
  keywords?: string[];
  categories?: string[];
  license?: string | null;
  license_file?: string | null;
  repository?: string | null;
  badges?: unknown;
  links?: string | null;
  rust_version?: string | null;
}

export interface PublishDependency {
  name: string;
  version_req: string;
  features?: string[];
  optional?: boolean;
  default_features?: boolean;
  target?: string | null;
  kind?: 'normal' | 'dev' | 'build';
  registry?: string | null;
  explicit_name_in_toml?: string | null;
}

/** The publish JSON's optional text fields. */
const STRING_FIELDS = [
  'links',
  'rust_version',
  'description',
  'license',
  'license_file',
  'repository',
  'homepage',
  'documentation',
  'readme',
  'readme_file',
] as const;

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === 'string');

/** Checks the publish JSON field by field; cargo shows the first problem to the user. */
export function validateMetadata(raw: unknown): PublishMetadata {
  if (!isObject(raw)) throw new CargoError('the publish metadata is not a JSON object');
  const { name, vers, deps, features } = raw;
  if (typeof name !== 'string') throw new CargoError('the publish metadata has no crate name');
  const nameProblem = crateNameProblem(name);
  if (nameProblem) throw new CargoError(`invalid crate name: ${nameProblem}`);
  if (typeof vers !== 'string' || !isSemver(vers))
    throw new CargoError(
      `invalid version "${String(vers)}" of crate \`${name}\`: versions must follow Semantic Versioning (MAJOR.MINOR.PATCH)`,
    );
  if (deps !== undefined && deps !== null && !Array.isArray(deps))
    throw new CargoError('`deps` must be a list of dependencies');
  for (const dep of (deps ?? []) as unknown[]) validateDependency(dep);
  if (features !== undefined && features !== null) {
    if (!isObject(features)) throw new CargoError('`features` must be a map of feature names to lists');
    for (const [feature, values] of Object.entries(features)) {
      if (!isFeatureName(feature))
        throw new CargoError(
          `invalid feature name "${feature}": use letters, digits, \`_\`, \`-\`, \`+\` or \`.\``,
        );
      if (!isStringArray(values)) throw new CargoError(`feature "${feature}" must be a list of strings`);
      for (const value of values) {
        const problem = featureValueProblem(value);
        if (problem) throw new CargoError(`feature "${feature}": ${problem}`);
      }
    }
  }
  for (const field of STRING_FIELDS) {
    const value = raw[field];
    if (value !== undefined && value !== null && typeof value !== 'string')
      throw new CargoError(`\`${field}\` must be a string`);
  }
  for (const field of ['keywords', 'categories', 'authors'] as const) {
    const value = raw[field];
    if (value !== undefined && value !== null && !isStringArray(value))
      throw new CargoError(`\`${field}\` must be a list of strings`);
  }
  // crates.io's bounds: at most five keywords of at most 20 characters, five categories.
  const keywords = (raw.keywords ?? []) as string[];
  if (keywords.length > 5) throw new CargoError('expected at most 5 keywords per crate');
  for (const keyword of keywords)
    if (!/^[a-zA-Z0-9][a-zA-Z0-9_+-]{0,19}$/.test(keyword))
      throw new CargoError(
        `"${keyword}" is an invalid keyword: keywords have at most 20 characters, begin with a letter or digit and contain only letters, digits, \`_\`, \`-\` or \`+\``,
      );
  const categories = (raw.categories ?? []) as string[];
  if (categories.length > 5) throw new CargoError('expected at most 5 categories per crate');
  if (categories.some((category) => category.length > 100))
    throw new CargoError('a category has at most 100 characters');
  if (typeof raw.rust_version === 'string' && !/^\d+(\.\d+){0,2}$/.test(raw.rust_version))
    throw new CargoError(`invalid rust-version "${raw.rust_version}": expected e.g. 1.70 or 1.70.0`);
  return {
    ...(raw as unknown as PublishMetadata),
    deps: (deps ?? []) as PublishDependency[],
    features: (features ?? {}) as Record<string, string[]>,
  };
}

/**
 * A dependency as crates.io checks it: `name` is the real crate's (crate grammar, reserved names
 * allowed: nothing is published under them), a renamed one's alias may be anything Cargo.toml
 * allows, and `version_req` must parse as cargo's semver requirement.
 */
function validateDependency(dep: unknown): asserts dep is PublishDependency {
  if (!isObject(dep) || typeof dep.name !== 'string') throw new CargoError('every dependency needs a `name`');
  const problem = crateNameSyntaxProblem(dep.name, 'dependency name');
  if (problem) throw new CargoError(`invalid dependency name: ${problem}`);
  if (typeof dep.version_req !== 'string')
    throw new CargoError(
      `dependency \`${dep.name}\` needs a version requirement (path-only dependencies cannot be published)`,
    );
  const reqProblem = versionReqProblem(dep.version_req);
  if (reqProblem) throw new CargoError(`dependency \`${dep.name}\`: ${reqProblem}`);
  if (dep.kind !== undefined && dep.kind !== null && !['normal', 'dev', 'build'].includes(String(dep.kind)))
    throw new CargoError(`dependency \`${dep.name}\` has an unknown kind "${String(dep.kind)}"`);
  if (dep.features !== undefined && dep.features !== null) {
    if (!isStringArray(dep.features))
      throw new CargoError(`the features of dependency \`${dep.name}\` must be a list of strings`);
    for (const feature of dep.features) {
      const featureProblem = featureValueProblem(feature);
      if (featureProblem) throw new CargoError(`dependency \`${dep.name}\`: ${featureProblem}`);
    }
  }
  if (typeof dep.explicit_name_in_toml === 'string') {
    const aliasProblem = dependencyAliasProblem(dep.explicit_name_in_toml);
    if (aliasProblem) throw new CargoError(`invalid renamed dependency: ${aliasProblem}`);
  }
}

/**
 * Publish form → index form, as cargo reads it: `version_req` becomes `req`; a renamed dependency is
 * listed under its alias in `name` with the real crate in `package`; `registry: null` keeps meaning
 * "this registry" (cargo already wrote crates.io's index URL for crates.io dependencies); features
 * using `dep:` or `?/` go to `features2` with `v: 2`, so older cargo skips what it cannot read.
 */
export function toIndexLine(meta: PublishMetadata, cksum: string, pubtime: Date): IndexLine {
  const deps: IndexDependency[] = meta.deps.map((dep) => {
    const renamed = typeof dep.explicit_name_in_toml === 'string' && dep.explicit_name_in_toml !== '';
    const line: IndexDependency = {
      name: renamed ? (dep.explicit_name_in_toml as string) : dep.name,
      req: dep.version_req,
      features: dep.features ?? [],
      optional: dep.optional ?? false,
      default_features: dep.default_features ?? true,
      target: dep.target ?? null,
      kind: dep.kind ?? 'normal',
    };
    if (dep.registry) line.registry = dep.registry;
    if (renamed) line.package = dep.name;
    return line;
  });
  // Built with fromEntries: a feature may be named `__proto__`, which an assignment would swallow.
  const entries = Object.entries(meta.features);
  const newSyntax = ([, values]: [string, string[]]) =>
    values.some((value) => value.startsWith('dep:') || value.includes('?/'));
  const features: Record<string, string[]> = Object.fromEntries(entries.filter((e) => !newSyntax(e)));
  const features2: Record<string, string[]> = Object.fromEntries(entries.filter(newSyntax));
  const line: IndexLine = {
    name: meta.name,
    vers: meta.vers,
    deps,
    cksum,
    features,
    yanked: false,
    links: meta.links ?? null,
  };
  if (Object.keys(features2).length > 0) {
    line.v = 2;
    line.features2 = features2;
  }
  if (meta.rust_version) line.rust_version = meta.rust_version;
  line.pubtime = pubtime.toISOString().replace(/\.\d{3}Z$/, 'Z');
  return line;
}

/** What a publish keeps beyond its index line (crates.io's version columns). */
export function versionDetails(
  meta: PublishMetadata,
  {
    edition,
    crateSize,
    publishedBy,
    readme,
  }: { edition: string | null; crateSize: number; publishedBy: string | null; readme: boolean },
): VersionDetails {
  const text = (value: string | null | undefined) =>
    typeof value === 'string' && value !== '' ? value : null;
  return {
    description: text(meta.description),
    homepage: text(meta.homepage),
    documentation: text(meta.documentation),
    repository: text(meta.repository),
    license: text(meta.license),
    license_file: text(meta.license_file),
    authors: meta.authors ?? [],
    keywords: meta.keywords ?? [],
    categories: meta.categories ?? [],
    edition,
    crate_size: crateSize,
    published_by: publishedBy,
    readme,
  };
}

/** `package.edition` of the packaged Cargo.toml, or null when absent or unreadable. */
export function manifestEdition(manifest: string | null): string | null {
  if (manifest === null) return null;
  try {
    const pkg = (parseToml(manifest) as { package?: { edition?: unknown } }).package;
    return typeof pkg?.edition === 'string' ? pkg.edition : null;
  } catch {
    return null;
  }
}
