import { serve, browser, open, waitDone, exportRecord } from './lib.mjs';
const server = await serve('dist', 8781);
const b = await browser();
const ctx = await b.newContext();
await ctx.addInitScript(() => {
  window.__c = { dispatch: 0, submit: 0, pipelines: 0, writeBuffer: 0, mapAsync: 0, createBuffer: 0, bindGroups: 0 };
  const wrap = (proto, name, key) => { const f = proto[name]; proto[name] = function (...a) { window.__c[key]++; return f.apply(this, a); }; };
  wrap(GPUComputePassEncoder.prototype, 'dispatchWorkgroups', 'dispatch');
  wrap(GPUQueue.prototype, 'submit', 'submit');
  wrap(GPUDevice.prototype, 'createComputePipeline', 'pipelines');
  wrap(GPUQueue.prototype, 'writeBuffer', 'writeBuffer');
  wrap(GPUBuffer.prototype, 'mapAsync', 'mapAsync');
  wrap(GPUDevice.prototype, 'createBuffer', 'createBuffer');
  wrap(GPUDevice.prototype, 'createBindGroup', 'bindGroups');
});
const page = await ctx.newPage();
const steps = Number(process.argv[2] || 6);
await page.goto(`${server.url}#v=1&steps=${steps}&eval_every=1000&eval_batches=1&cmp=`);
await page.waitForSelector('#run');
await page.waitForTimeout(3000);
const c0 = await page.evaluate(() => ({ ...window.__c }));
await page.click('#run');
// sample counters after the first step completes
let prev = null;
for (let i = 0; i < 400; i++) {
  await page.waitForTimeout(1000);
  const st = await page.evaluate(() => ({ ...window.__c, t: performance.now(), text: document.querySelector('#status')?.textContent || '' }));
  if (!prev || st.dispatch !== prev.dispatch) { console.log(JSON.stringify(st).slice(0, 300)); }
  prev = st;
  if (/done|finished|stopped/i.test(st.text)) break;
}
await ctx.close(); await b.close(); server.stop();
