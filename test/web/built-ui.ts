import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { defaultUiDirectory } from '../../server/web/plugin.ts';
import { REPO_ROOT } from '../support/tools.ts';

/** The newest modification time of the UI's sources (web/). */
function newestSource(directory = path.join(REPO_ROOT, 'web')): number {
  let newest = 0;
  for (const entry of readdirSync(directory, { withFileTypes: true })) {
    const full = path.join(directory, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(full) : statSync(full).mtimeMs);
  }
  return newest;
}

/**
 * The UI as `npm run build` makes it (npm test builds before the suite); a test file run on its own
 * builds it when dist/web is missing or older than its sources.
 */
export function ensureUiBuilt(): string {
  const directory = defaultUiDirectory();
  const index = `${directory}/index.html`;
  if (!existsSync(index) || statSync(index).mtimeMs < newestSource())
    execFileSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
    });
  return directory;
}
