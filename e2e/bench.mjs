// Browser benchmark: wasm size, page load → first training step, steps/s of the default preset on
// WebGPU and on the CPU fallback, and ms/step of the reference config. Prints numbers only.
// Usage: node e2e/bench.mjs <dist dir> [steps]
import fs from 'node:fs';
import path from 'node:path';
import zlib from 'node:zlib';
import { serve, browser, open, waitDone, exportRecord } from './lib.mjs';

const dist = process.argv[2] || 'dist';
const steps = Number(process.argv[3] || 12);
const wasm = fs.readdirSync(dist).filter((f) => f.endsWith('.wasm'))[0];
const raw = fs.readFileSync(path.join(dist, wasm));
console.log(`wasm size: ${(raw.length / 1e6).toFixed(2)} MB raw, ${(zlib.gzipSync(raw, { level: 9 }).length / 1e6).toFixed(2)} MB gzip`);

const server = await serve(dist, 8773);
const b = await browser();
// The reference config is the spec default: BERT, 2 layers, d_model 64, 4 heads, FFN 256, seq 32, batch 16.
const REF = `v=1&steps=${steps}&eval_every=1000&eval_batches=1&cmp=`;
for (const [name, extra] of [['WebGPU', ''], ['CPU fallback', '&backend=cpu']]) {
  const t0 = Date.now();
  const { page, ctx } = await open(b, `${server.url}#${REF}${extra}`);
  const tReady = Date.now() - t0;
  await page.click('#run');
  await waitDone(page, 590000);
  const rec = await exportRecord(page);
  const lane = rec.lanes[0];
  console.log(`${name}: backend "${rec.backend}", page load to ready ${tReady} ms, first step ${lane.first_step_ms.toFixed(0)} ms ` +
    `(load → first step ≈ ${(tReady + lane.first_step_ms).toFixed(0)} ms), then ${lane.ms_per_step.toFixed(1)} ms/step ` +
    `= ${(1000 / lane.ms_per_step).toFixed(2)} steps/s over ${lane.losses.length - 1} steps (reference config)`);
  await ctx.close();
}
await b.close();
server.stop();
