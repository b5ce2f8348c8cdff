// Shared pieces of the browser tests and the browser benchmark: a static server for dist/,
// Debian's Chromium through playwright-core, and helpers to drive the app.
import { createRequire } from 'node:module';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const npmDir = process.env.QTLAB_NPM;
if (!npmDir) throw new Error('QTLAB_NPM is not set: run through scripts/e2e.sh');
const { chromium } = createRequire(path.join(npmDir, 'package.json'))('playwright-core');

export const OUT = path.resolve(process.env.QTLAB_E2E_OUT || 'out/e2e');
fs.mkdirSync(OUT, { recursive: true });

export async function serve(dist, port) {
  const proc = spawn('python3', ['-m', 'http.server', String(port), '--bind', '127.0.0.1', '--directory', dist],
    { stdio: 'ignore' });
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(`http://127.0.0.1:${port}/`);
      if (r.ok) return { url: `http://127.0.0.1:${port}/`, stop: () => proc.kill() };
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  proc.kill();
  throw new Error('static server did not start');
}

// webgpu=false launches without --enable-unsafe-webgpu: Chromium then has navigator.gpu but no
// adapter here, which is one of the fallback paths under test.
export async function browser({ webgpu = true } = {}) {
  const args = ['--no-sandbox', '--disable-background-networking', '--disable-component-update',
    '--disable-sync', '--no-first-run', '--disable-quic'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  return chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args });
}

export async function open(b, url, { acceptDownloads = true } = {}) {
  const ctx = await b.newContext({ acceptDownloads, viewport: { width: 1280, height: 1000 } });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
  await page.goto(url);
  await page.waitForSelector('#phase');
  await page.waitForFunction(() => !document.querySelector('#phase').textContent.includes('Looking for a GPU'),
    null, { timeout: 120000 });
  return { page, ctx, errors };
}

export async function waitDone(page, timeout = 400000) {
  await page.waitForFunction(() => {
    const p = document.querySelector('#phase').textContent;
    return p.startsWith('Done') || p.startsWith('Paused');
  }, null, { timeout });
}

export async function exportRecord(page) {
  const [dl] = await Promise.all([page.waitForEvent('download'), page.click('#export-json')]);
  const file = await dl.path();
  return JSON.parse(fs.readFileSync(file, 'utf8'));
}

export async function shot(page, name) {
  await page.screenshot({ path: path.join(OUT, `${name}.png`), fullPage: true });
}
