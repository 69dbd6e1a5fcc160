import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { type Browser, chromium } from 'playwright-core';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Headless Debian Chromium (installed by hack/chromium.sh), driven by playwright-core. */
export async function launchChromium(): Promise<Browser> {
  const executablePath = await new Promise<string>((resolve, reject) =>
    execFile(
      'bash',
      ['hack/chromium.sh'],
      { cwd: REPO_ROOT, timeout: 20 * 60_000 },
      (error, stdout, stderr) => {
        const last = stdout.trim().split('\n').pop()?.trim();
        if (error || !last?.startsWith('/'))
          reject(new Error(`bash hack/chromium.sh failed: ${error?.message}\n${stderr}`));
        else resolve(last);
      },
    ),
  );
  return chromium.launch({
    executablePath,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
