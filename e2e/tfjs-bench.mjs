// TF.js 4.22 training qtlab's reference config (BERT MLM, 2 layers, d 64, 4 heads, FFN 256,
// seq 32, batch 16, vocab 60) in the same headless Chromium as e2e/bench.mjs, on the WebGPU,
// wasm and WebGL backends, for a like-for-like ms/step comparison with the app. The model is
// e2e/tfjs/bench.js; TF.js itself is not vendored: install it once with
//   mkdir -p ~/.cache/qtlab/tfjs && cd ~/.cache/qtlab/tfjs && npm install \
//     @tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0
// Usage: source scripts/env.sh && node e2e/tfjs-bench.mjs [steps=10] [webgpu steps=steps]
// Env: TFJS_DIR (node_modules holding @tensorflow, default ~/.cache/qtlab/tfjs/node_modules),
//      TFJS_BACKENDS (comma list, default webgpu,wasm,webgl), TFJS_WARMUP (default 3),
//      TFJS_QUERY (extra page parameters: &data=random for a new batch each step, &lr=...).
// Prints, per backend: the backend in use, first-step ms, mean ms/step over the timed steps.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

if (!process.env.QTLAB_NPM) {
  console.error('QTLAB_NPM is not set (playwright-core lives there): run `source scripts/env.sh` first.');
  process.exit(2);
}
const { serve, browser } = await import('./lib.mjs');

const here = path.dirname(fileURLToPath(import.meta.url));
const tfjsDir = process.env.TFJS_DIR || path.join(os.homedir(), '.cache/qtlab/tfjs/node_modules');
const steps = Number(process.argv[2] || 10);
const gpuSteps = Number(process.argv[3] || steps);
const warmup = Number(process.env.TFJS_WARMUP || 3);
// Extra page parameters, e.g. TFJS_QUERY='&data=random&lr=3e-3' (see e2e/tfjs/bench.js).
const extra = process.env.TFJS_QUERY || '';
const backends = (process.env.TFJS_BACKENDS || 'webgpu,wasm,webgl').split(',').filter(Boolean);

// What the page needs from the tfjs packages, as [package dist path, name next to the page].
const files = [
  ['@tensorflow/tfjs/dist/tf.min.js', 'tf.min.js'],
  ['@tensorflow/tfjs-backend-wasm/dist/tf-backend-wasm.min.js', 'tf-backend-wasm.min.js'],
  ['@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm', 'tfjs-backend-wasm.wasm'],
  ['@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-simd.wasm', 'tfjs-backend-wasm-simd.wasm'],
  ['@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm-threaded-simd.wasm', 'tfjs-backend-wasm-threaded-simd.wasm'],
  ['@tensorflow/tfjs-backend-webgpu/dist/tf-backend-webgpu.min.js', 'tf-backend-webgpu.min.js'],
];
const missing = files.filter(([src]) => !fs.existsSync(path.join(tfjsDir, src)));
if (missing.length) {
  console.error(`TF.js not found under ${tfjsDir} (missing ${missing.map(([s]) => s).join(', ')}).\n` +
    'Install it with: mkdir -p ~/.cache/qtlab/tfjs && cd ~/.cache/qtlab/tfjs && npm install ' +
    '@tensorflow/tfjs@4.22.0 @tensorflow/tfjs-backend-wasm@4.22.0 @tensorflow/tfjs-backend-webgpu@4.22.0\n' +
    'or point TFJS_DIR at a node_modules directory that has them.');
  process.exit(2);
}

const site = fs.mkdtempSync(path.join(os.tmpdir(), 'qtlab-tfjs-'));
for (const [src, name] of files) fs.copyFileSync(path.join(tfjsDir, src), path.join(site, name));
for (const name of ['index.html', 'bench.js']) fs.copyFileSync(path.join(here, 'tfjs', name), path.join(site, name));

const server = await serve(site, 8774);
const b = await browser();
console.log(`chromium ${b.version()}, warm-up ${warmup} steps, timed ${steps} steps (${gpuSteps} on webgpu)`);
let failed = 0;
try {
  for (const want of backends) {
    const n = want === 'webgpu' ? gpuSteps : steps;
    const ctx = await b.newContext();
    const page = await ctx.newPage();
    const logs = [];
    page.on('console', (m) => logs.push(`[${m.type()}] ${m.text()}`));
    page.on('pageerror', (e) => logs.push(`[pageerror] ${e}`));
    const t0 = Date.now();
    try {
      await page.goto(`${server.url}index.html?backend=${want}&warmup=${warmup}&steps=${n}${extra}`);
      await page.waitForFunction(() => window.__result || window.__error, null, { timeout: 590000, polling: 500 });
      const err = await page.evaluate(() => window.__error);
      if (err) throw new Error(err);
      const r = await page.evaluate(() => window.__result);
      const l = r.losses;
      const finite = l.every(Number.isFinite);
      console.log(`${want}: backend in use "${r.backend}"${r.backend === want ? '' : ' (FALLBACK)'} [${r.info}], ` +
        `first step ${r.firstMs.toFixed(0)} ms, then ${r.meanMs.toFixed(1)} ms/step mean ` +
        `(min ${r.minMs.toFixed(1)}, over ${r.timedMs.length} steps after ${r.warmup} warm-up; ` +
        `warm-up ${r.warmupMs.map((x) => x.toFixed(0)).join('/') || '-'} ms), ${(1000 / r.meanMs).toFixed(2)} steps/s`);
      console.log(`${want}:   params ${r.params}, data ${r.data}, lr ${r.lr}, loss ${l[0].toFixed(4)} → ${l[l.length - 1].toFixed(4)} ` +
        `(finite ${finite}; all: ${l.map((x) => x.toFixed(3)).join(' ')}), leaked tensors ${r.leakedTensors}, ` +
        `wall ${((Date.now() - t0) / 1000).toFixed(0)} s`);
      if (!finite) failed++;
    } catch (e) {
      failed++;
      console.log(`${want}: FAILED after ${((Date.now() - t0) / 1000).toFixed(0)} s: ${String(e).split('\n')[0]}`);
      console.log(logs.slice(-15).map((s) => '    ' + s).join('\n'));
    }
    await ctx.close();
  }
} finally {
  await b.close();
  server.stop();
  fs.rmSync(site, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
