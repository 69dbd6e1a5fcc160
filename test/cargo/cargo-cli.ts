import { execFile, execFileSync } from 'node:child_process';
import { mkdir, mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** The machine's real cargo and rustc (not the rustup proxies, which depend on CARGO_HOME). */
const toolchain = (tool: string) => execFileSync('rustup', ['which', tool], { encoding: 'utf8' }).trim();
export const CARGO = toolchain('cargo');
const RUSTC = toolchain('rustc');

export function cargoVersion(): string {
  return execFileSync(CARGO, ['--version'], { encoding: 'utf8' }).trim();
}

export interface CargoResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A fresh CARGO_HOME whose config.toml names the given registries and sources. */
export async function cargoHome(configToml: string): Promise<string> {
  const home = await mkdtemp(path.join(tmpdir(), 'wharf-cargo-home-'));
  await writeFile(
    path.join(home, 'config.toml'),
    `[registry]\nglobal-credential-providers = ["cargo:token"]\n\n[net]\noffline = false\nretry = 0\n\n${configToml}`,
  );
  return home;
}

export function registryToml(name: string, url: string): string {
  return `[registries.${name}]\nindex = "sparse+${url}/index/"\n`;
}

export async function cargo(
  args: string[],
  {
    cwd,
    home,
    targetDir,
    env = {},
    input,
  }: { cwd: string; home: string; targetDir: string; env?: Record<string, string>; input?: string },
): Promise<CargoResult> {
  return new Promise((resolve) => {
    const child = execFile(
      CARGO,
      args,
      {
        cwd,
        timeout: 300_000,
        maxBuffer: 16 * 1024 * 1024,
        env: {
          PATH: process.env.PATH ?? '',
          HOME: process.env.HOME ?? '',
          CARGO_HOME: home,
          CARGO_TARGET_DIR: targetDir,
          RUSTC,
          CARGO_TERM_COLOR: 'never',
          CARGO_NET_OFFLINE: 'false',
          CARGO_INCREMENTAL: '0',
          ...env,
        },
      },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin?.end(input);
    else child.stdin?.end();
  });
}

/** Writes a crate: Cargo.toml (package section plus the rest) and source files. */
export async function writeCrate(
  dir: string,
  {
    name,
    version,
    manifest = '',
    files = {},
  }: { name: string; version: string; manifest?: string; files?: Record<string, string> },
): Promise<string> {
  const root = path.join(dir, `${name}-${version}`);
  await mkdir(path.join(root, 'src'), { recursive: true });
  await writeFile(
    path.join(root, 'Cargo.toml'),
    `[package]\nname = "${name}"\nversion = "${version}"\nedition = "2021"\ndescription = "the ${name} crate"\nlicense = "MIT"\n${manifest}`,
  );
  const sources = Object.keys(files).some((f) => f.startsWith('src/'))
    ? files
    : { 'src/lib.rs': '', ...files };
  for (const [file, body] of Object.entries(sources)) {
    await mkdir(path.dirname(path.join(root, file)), { recursive: true });
    await writeFile(path.join(root, file), body);
  }
  return root;
}
