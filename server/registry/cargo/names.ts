/** crates.io's rules for crate names and versions, which cargo recommends to every registry. */

const CRATE_NAME = /^[A-Za-z][A-Za-z0-9_-]{0,63}$/;
/** Names Windows cannot use as file names, and names that would confuse the tooling. */
const RESERVED = new Set([
  'nul',
  'con',
  'prn',
  'aux',
  'com1',
  'com2',
  'com3',
  'com4',
  'com5',
  'com6',
  'com7',
  'com8',
  'com9',
  'lpt1',
  'lpt2',
  'lpt3',
  'lpt4',
  'lpt5',
  'lpt6',
  'lpt7',
  'lpt8',
  'lpt9',
  'std',
  'core',
  'alloc',
  'proc_macro',
  'proc-macro',
  'test',
]);

/**
 * Why a name is not a crate name by crates.io's grammar, or null: 1–64 characters, an ASCII letter
 * first, then ASCII letters, digits, `-` and `_`. `what` says which name it is ("crate name",
 * "dependency name"). Names a crate may not be *published* under are {@link crateNameProblem}'s.
 */
export function crateNameSyntaxProblem(name: string, what = 'crate name'): string | null {
  if (name.length === 0) return `the ${what} is empty`;
  if (name.length > 64) return `the ${what} "${name}" is longer than 64 characters`;
  if (!/^[A-Za-z]/.test(name)) return `the ${what} "${name}" must start with an ASCII letter`;
  if (!CRATE_NAME.test(name))
    return `the ${what} "${name}" may only contain ASCII letters, digits, \`-\` and \`_\``;
  return null;
}

/** Why a crate may not be published under this name, or null: the grammar plus the reserved names. */
export function crateNameProblem(name: string): string | null {
  const problem = crateNameSyntaxProblem(name);
  if (problem) return problem;
  if (RESERVED.has(name.toLowerCase())) return `the crate name "${name}" is reserved`;
  return null;
}

/**
 * Why a dependency's name in Cargo.toml (its alias when renamed with `package = …`) is refused, or
 * null. crates.io lets it start with `_` and reserves nothing: `core = { package =
 * "rustc-std-workspace-core" }` is how memchr, cfg-if and hashbrown build inside the standard library.
 */
export function dependencyAliasProblem(name: string): string | null {
  if (name.length === 0) return 'the dependency name is empty';
  if (name.length > 64) return `the dependency name "${name}" is longer than 64 characters`;
  if (!/^[A-Za-z_][A-Za-z0-9_-]*$/.test(name))
    return `the dependency name "${name}" must start with an ASCII letter or \`_\` and may only contain ASCII letters, digits, \`-\` and \`_\``;
  return null;
}

/**
 * Why a crate name and version taken from a URL cannot name anything in this registry, or null.
 * Checked where a route receives them, before they become parts of store keys.
 */
export function cratePathProblem(crate: string | undefined, version?: string): string | null {
  if (crate !== undefined) {
    const problem = crateNameSyntaxProblem(crate);
    if (problem) return problem;
  }
  if (version !== undefined && !isSemver(version))
    return `"${version}" is not a version: versions follow Semantic Versioning (MAJOR.MINOR.PATCH)`;
  return null;
}

/** Two names that differ only in case or in `-` versus `_` name the same crate. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replaceAll('-', '_');
}

/** Semantic Versioning 2.0.0, as cargo parses it. */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

/** crates.io's bound on a version's length. */
export const MAX_VERSION_LENGTH = 150;

/** A version cargo can publish: SemVer 2.0.0, numbers that fit in 64 bits, at most 150 characters. */
export function isSemver(version: string): boolean {
  const match = version.length <= MAX_VERSION_LENGTH ? SEMVER.exec(version) : null;
  return match !== null && [match[1], match[2], match[3]].every((n) => fitsU64(n as string));
}

const U64_MAX = '18446744073709551615';

/** A decimal without leading zeros that fits in Rust's u64 (semver's number type). */
function fitsU64(digits: string): boolean {
  return digits.length < U64_MAX.length || (digits.length === U64_MAX.length && digits <= U64_MAX);
}

/**
 * Why a dependency's version requirement is not one cargo's `semver` crate parses, or null. The
 * grammar: comparators separated by `,` (at most 32), each an optional operator (`=`, `>`, `>=`,
 * `<`, `<=`, `~`, `^`), then MAJOR[.MINOR[.PATCH[-pre][+build]]] where MINOR and PATCH may be `*`,
 * `x` or `X` (PATCH must be one when MINOR is), spaces allowed around the parts. A lone wildcard
 * means "any version": valid, but refused at publish as crates.io refuses it.
 */
export function versionReqProblem(req: string): string | null {
  const wildcardOnly = /^ *[*xX] *$/;
  if (wildcardOnly.test(req))
    return 'a wildcard (`*`) version requirement cannot be published: give the versions that work';
  const comparators = req.replace(/^ +/, '').split(',');
  if (comparators.length > 32) return 'a version requirement may have at most 32 comparators';
  for (const [i, comparator] of comparators.entries()) {
    // After a comma, semver skips spaces; a trailing space belongs to the comparator before it.
    const text = i === 0 ? comparator : comparator.replace(/^ +/, '');
    if (!isComparator(text)) return `"${req}" is not a valid version requirement`;
  }
  return null;
}

const NUMBER = '(0|[1-9][0-9]*)';
const WILDCARD = '[*xX]';
const IDENTIFIERS = '[0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*';
const COMPARATOR = new RegExp(
  `^(?:=|>=?|<=?|~|\\^)? *${NUMBER}(?:\\.(?:${WILDCARD}(?:\\.${WILDCARD})?|${NUMBER}(?:\\.(?:${WILDCARD}|${NUMBER}(?:-(${IDENTIFIERS}))?(?:\\+${IDENTIFIERS})?))?))? *$`,
);

function isComparator(text: string): boolean {
  const match = COMPARATOR.exec(text);
  if (!match) return false;
  // Numbers are u64; numeric pre-release identifiers have no leading zero.
  const numbers = [match[1], match[2], match[3]].filter((n): n is string => n !== undefined);
  if (!numbers.every(fitsU64)) return false;
  const pre = match[4];
  return pre === undefined || pre.split('.').every((part) => !/^0[0-9]+$/.test(part));
}

/** A version without its build metadata: `1.0.0+a` and `1.0.0+b` are the same release. */
export function withoutBuildMetadata(version: string): string {
  const plus = version.indexOf('+');
  return plus === -1 ? version : version.slice(0, plus);
}

/** Compares two semver versions (build metadata ignored), for "latest version" displays. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string) => {
    const [core = '', pre] = withoutBuildMetadata(v).split(/-(.*)/s, 2);
    return { core: core.split('.').map(Number), pre: pre ? pre.split('.') : [] };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) {
    const d = (x.core[i] ?? 0) - (y.core[i] ?? 0);
    if (d !== 0) return d;
  }
  if (x.pre.length === 0 || y.pre.length === 0) return y.pre.length - x.pre.length;
  for (let i = 0; i < Math.max(x.pre.length, y.pre.length); i++) {
    const p = x.pre[i];
    const q = y.pre[i];
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    const pn = /^\d+$/.test(p);
    const qn = /^\d+$/.test(q);
    if (pn && qn) {
      const d = Number(p) - Number(q);
      if (d !== 0) return d;
    } else if (pn !== qn) return pn ? -1 : 1;
    else if (p !== q) return p < q ? -1 : 1;
  }
  return 0;
}

/**
 * Feature names, as crates.io checks them: a Unicode identifier start, `_` or a digit first, then
 * identifier characters, `+`, `-` or `.`.
 */
export function isFeatureName(name: string): boolean {
  return /^[\p{XID_Start}_0-9][\p{XID_Continue}+.-]*$/u.test(name);
}

/**
 * Why an entry of a feature's list (or of a dependency's `features`) is refused, or null: a feature
 * name, `dep:NAME`, or `NAME/feature` / `NAME?/feature` with NAME a dependency name (crates.io's rule).
 */
export function featureValueProblem(value: string): string | null {
  const slash = value.indexOf('/');
  if (slash !== -1) {
    const dependency = value.slice(0, slash).replace(/\?$/, '');
    const feature = value.slice(slash + 1);
    const problem = dependencyAliasProblem(dependency);
    if (problem) return `invalid feature "${value}": ${problem}`;
    return isFeatureName(feature) ? null : `invalid feature "${value}": "${feature}" is not a feature name`;
  }
  const dep = value.indexOf('dep:');
  if (dep !== -1) {
    const problem = dependencyAliasProblem(value.slice(dep + 4));
    return problem ? `invalid feature "${value}": ${problem}` : null;
  }
  return isFeatureName(value)
    ? null
    : `invalid feature "${value}": use letters, digits, \`_\`, \`-\`, \`+\` or \`.\``;
}
