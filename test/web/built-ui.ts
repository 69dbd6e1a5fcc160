import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { defaultUiDirectory } from '../../server/web/plugin.ts';
import { REPO_ROOT } from '../support/tools.ts';

/**
 * The UI as `npm run build` makes it (npm test builds before the suite); a test file run on its own
 * builds it once when dist/web is missing.
 */
export function ensureUiBuilt(): string {
  const directory = defaultUiDirectory();
  if (!existsSync(`${directory}/index.html`))
    execFileSync('npx', ['vite', 'build', '--config', 'web/vite.config.ts', '--logLevel', 'warn'], {
      cwd: REPO_ROOT,
      stdio: 'inherit',
    });
  return directory;
}
