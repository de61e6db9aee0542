import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { repoRoot } from './package-install.js';

/** Debian's chromium (`.ci/run` installs it with apt); playwright never downloads a browser here. */
export const CHROMIUM = '/usr/bin/chromium';

/** Tests skip without it (only when it is not installed: a broken browser still fails them). */
export function chromiumAvailable(): boolean {
  return existsSync(CHROMIUM);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
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

/** console/dist, built when missing (CI builds it in `npm run build` before the tests). */
export function ensureConsoleBuilt(): string {
  const dist = path.join(repoRoot, 'console', 'dist');
  if (!existsSync(path.join(dist, 'index.html'))) {
    execFileSync('npm', ['run', 'build', '-w', '@jobstream/console'], { cwd: repoRoot, stdio: 'ignore' });
  }
  return dist;
}

/**
 * Screenshots for the README (docs/console/), taken by the end-to-end tests when
 * JOBSTREAM_CONSOLE_SCREENSHOTS=1; otherwise nothing is written.
 */
export async function screenshot(page: Page, name: string): Promise<void> {
  if (process.env.JOBSTREAM_CONSOLE_SCREENSHOTS !== '1') return;
  await page.screenshot({ path: path.join(repoRoot, 'docs', 'console', `${name}.png`), fullPage: false });
}
