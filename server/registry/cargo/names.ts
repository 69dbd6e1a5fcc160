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

/** Why a crate name is refused, or null when it is acceptable. */
export function crateNameProblem(name: string): string | null {
  if (name.length === 0) return 'the crate name is empty';
  if (name.length > 64) return `the crate name "${name}" is longer than 64 characters`;
  if (!/^[A-Za-z]/.test(name)) return `the crate name "${name}" must start with an ASCII letter`;
  if (!CRATE_NAME.test(name))
    return `the crate name "${name}" may only contain ASCII letters, digits, \`-\` and \`_\``;
  if (RESERVED.has(name.toLowerCase())) return `the crate name "${name}" is reserved`;
  return null;
}

/** Two names that differ only in case or in `-` versus `_` name the same crate. */
export function canonicalName(name: string): string {
  return name.toLowerCase().replaceAll('-', '_');
}

/** Semantic Versioning 2.0.0, as cargo parses it. */
const SEMVER =
  /^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*)(?:\.(?:0|[1-9]\d*|\d*[A-Za-z-][0-9A-Za-z-]*))*))?(?:\+([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$/;

export function isSemver(version: string): boolean {
  return version.length <= 128 && SEMVER.test(version);
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

/** Feature names: crates.io allows letters, digits, `_`, `-`, `+` and `.` (after a first letter/digit/`_`). */
export function isFeatureName(name: string): boolean {
  return /^[A-Za-z0-9_][A-Za-z0-9_+.-]*$/.test(name) && name.length <= 100;
}
