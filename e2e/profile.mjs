// Diagnostic: samples the page's main thread (JS and wasm) with Chromium's CPU profiler while
// the reference config trains on WebGPU, and prints the functions with the most self time.
// Usage: node e2e/profile.mjs <dist dir> [steps] [top]
import { serve, browser, open, waitDone } from './lib.mjs';

const dist = process.argv[2] || 'dist';
const steps = Number(process.argv[3] || 8);
const top = Number(process.argv[4] || 40);
const server = await serve(dist, 8774);
const b = await browser();
const { page, ctx } = await open(b, `${server.url}#v=1&steps=${steps}&eval_every=1000&eval_batches=1&cmp=`);
const cdp = await ctx.newCDPSession(page);
await cdp.send('Profiler.enable');
await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
await cdp.send('Profiler.start');
await page.click('#run');
await waitDone(page, 590000);
const { profile } = await cdp.send('Profiler.stop');
const byId = new Map(profile.nodes.map((n) => [n.id, n]));
const self = new Map();
const dt = profile.timeDeltas;
profile.samples.forEach((id, i) => {
  const n = byId.get(id);
  const f = n.callFrame;
  const key = `${f.functionName || '(anonymous)'} ${f.url ? f.url.split('/').pop() : ''}`;
  self.set(key, (self.get(key) || 0) + (dt[i] || 0) / 1000);
});
const total = [...self.values()].reduce((a, b) => a + b, 0);
console.log(`sampled ${total.toFixed(0)} ms over ${steps} steps`);
for (const [k, v] of [...self.entries()].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${v.toFixed(0).padStart(8)} ms ${(100 * v / total).toFixed(1).padStart(5)} %  ${k}`);
}
await ctx.close();
await b.close();
server.stop();
