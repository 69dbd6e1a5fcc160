// Writes the CycloneDX SBOM of the image's npm packages to stdout: `npm sbom` over package-lock.json,
// kept to the lock's production packages, exactly what the Dockerfile's `npm ci --omit=dev` installs.
// Not `npm sbom --omit dev`: npm 11.19 leaves out every production package a dev package also
// depends on (jose, yaml, debug… 25 of 201 here), which test/chart/image.test.ts checks.
// Made reproducible: the serial number is derived from the lock file and package.json instead of
// random, the timestamp is SOURCE_DATE_EPOCH (the last commit's time when unset), and the root
// component is named from package.json, not from the directory it was run in.
// Run: `node hack/sbom.ts > sbom.cdx.json` (hack/build-image.sh does).
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

interface Bom {
  serialNumber: string;
  metadata: { timestamp: string; component: { 'bom-ref': string; name: string } };
  components: { 'bom-ref': string; name: string; version: string }[];
  dependencies?: { ref: string; dependsOn?: string[] }[];
}

interface Lock {
  packages: Record<string, { version?: string; dev?: boolean }>;
}

export function sourceDateEpoch(): number {
  const fromEnv = process.env.SOURCE_DATE_EPOCH;
  if (fromEnv) {
    if (!/^\d+$/.test(fromEnv)) throw new Error(`SOURCE_DATE_EPOCH must be seconds since 1970: ${fromEnv}`);
    return Number(fromEnv);
  }
  return Number(execFileSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' }).trim());
}

export function imageSbom(): string {
  const bom = JSON.parse(
    execFileSync('npm', ['sbom', '--sbom-format', 'cyclonedx', '--package-lock-only'], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    }),
  ) as Bom;
  const packageJson = readFileSync(new URL('package.json', `file://${ROOT}`));
  const lock = readFileSync(new URL('package-lock.json', `file://${ROOT}`));
  const production = new Set(
    Object.entries((JSON.parse(lock.toString()) as Lock).packages)
      .filter(([key, entry]) => key.startsWith('node_modules/') && !entry.dev)
      .map(
        ([key, entry]) =>
          `${key.slice(key.lastIndexOf('node_modules/') + 'node_modules/'.length)}@${entry.version}`,
      ),
  );
  bom.components = bom.components.filter((component) =>
    production.has(`${component.name}@${component.version}`),
  );
  const kept = new Set([bom.metadata.component['bom-ref'], ...bom.components.map((c) => c['bom-ref'])]);
  bom.dependencies = bom.dependencies
    ?.filter((dependency) => kept.has(dependency.ref))
    .map((dependency) => ({
      ...dependency,
      dependsOn: dependency.dependsOn?.filter((ref) => kept.has(ref)),
    }));
  const digest = createHash('sha256').update(packageJson).update(lock).digest('hex');
  // An RFC 4122 version-5-shaped UUID from the inputs: the same inputs, the same serial number.
  const variant = ((Number.parseInt(digest[16]!, 16) & 0x3) | 0x8).toString(16);
  bom.serialNumber = `urn:uuid:${digest.slice(0, 8)}-${digest.slice(8, 12)}-5${digest.slice(13, 16)}-${variant}${digest.slice(17, 20)}-${digest.slice(20, 32)}`;
  bom.metadata.timestamp = new Date(sourceDateEpoch() * 1000).toISOString();
  bom.metadata.component.name = (JSON.parse(packageJson.toString()) as { name: string }).name;
  return `${JSON.stringify(bom, null, 2)}\n`;
}

if (import.meta.url === `file://${process.argv[1]}`) process.stdout.write(imageSbom());
