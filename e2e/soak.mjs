// Browser soak: the spec defaults (BERT, gated beside vanilla; the link applies over them, not over a preset) for N steps on the CPU fallback, with
// WebAssembly memory and the JS heap sampled along the way. Fails if either grows past its bound
// after warm-up. Usage: node e2e/soak.mjs <dist dir> [steps] [max wasm growth MiB] [max heap growth MiB]
import { serve, browser, waitDone } from './lib.mjs';

const dist = process.argv[2] || 'dist';
const steps = Number(process.argv[3] || 2000);
const maxWasm = Number(process.argv[4] || 64);
const maxHeap = Number(process.argv[5] || 64);
const server = await serve(dist, 8774);
const b = await browser();
const ctx = await b.newContext();
await ctx.addInitScript(() => {
  addEventListener('TrunkApplicationStarted', (e) => { window.__wasm = e.detail.wasm; });
});
const page = await ctx.newPage();
const errors = [];
page.on('pageerror', (e) => errors.push(String(e)));
await page.goto(`${server.url}#steps=${steps}&backend=cpu`);
await page.waitForFunction(() => window.__wasm && /CPU/.test(document.querySelector('#backend')?.textContent || ''));
const sample = () => page.evaluate(() => ({
  wasm: window.__wasm.memory.buffer.byteLength / 1048576,
  heap: performance.memory ? performance.memory.usedJSHeapSize / 1048576 : 0,
  step: Number((/(\d+)\//.exec(document.querySelector('#summary tbody tr td:last-child')?.textContent || '') || [0, 0])[1]),
}));
await page.click('#run');
const t0 = Date.now();
let base = null;
let peak = { wasm: 0, heap: 0 };
const warm = Math.max(1, Math.floor(steps / 20));
for (;;) {
  await new Promise((r) => setTimeout(r, 2000));
  const s = await sample();
  if (base === null && s.step >= warm) base = s;
  if (base) {
    peak.wasm = Math.max(peak.wasm, s.wasm - base.wasm);
    peak.heap = Math.max(peak.heap, s.heap - base.heap);
  }
  console.log(`step ${String(s.step).padStart(5)}  wasm ${s.wasm.toFixed(1)} MiB  js heap ${s.heap.toFixed(1)} MiB  (${((Date.now() - t0) / 1000).toFixed(0)} s)`);
  const phase = await page.textContent('#phase');
  if (phase.startsWith('Done') || s.step >= steps) break;
  if (Date.now() - t0 > 1500000) throw new Error('soak took too long');
}
await waitDone(page);
const done = await page.$$eval('#summary tbody tr', (r) => r.map((x) => x.textContent));
await b.close();
server.stop();
const secs = (Date.now() - t0) / 1000;
console.log(`browser soak: ${steps} steps x ${done.length} runs in ${secs.toFixed(0)} s; growth after step ${warm}: wasm ${peak.wasm.toFixed(1)} MiB (bound ${maxWasm}), js heap ${peak.heap.toFixed(1)} MiB (bound ${maxHeap})`);
let bad = errors.length > 0 || peak.wasm > maxWasm || peak.heap > maxHeap || !done.every((r) => r.includes(`${steps}/${steps}`));
if (errors.length) console.log(errors.join('\n'));
process.exit(bad ? 1 : 0);
