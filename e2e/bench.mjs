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

// CPU seconds used so far by each kind of Chromium process (browser, renderer, gpu-process, ...),
// from /proc: where a step's time goes, the page's wasm (renderer) or the GPU process that runs
// Dawn and the software adapter.
function chromiumCpu() {
  const tick = 100; // USER_HZ on Linux
  const out = {};
  for (const pid of fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d))) {
    let cmd, stat;
    try {
      cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch { continue; }
    if (!cmd.includes('chromium')) continue;
    const kind = (cmd.match(/--type=([a-z-]+)/) || [null, 'browser'])[1];
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out[kind] = (out[kind] || 0) + (Number(f[11]) + Number(f[12])) / tick; // utime + stime
  }
  return out;
}

const server = await serve(dist, 8773);
const b = await browser();
// The reference config is the spec default: BERT, 2 layers, d_model 64, 4 heads, FFN 256, seq 32, batch 16.
const REF = `v=1&steps=${steps}&eval_every=1000&eval_batches=1&cmp=`;
for (const [name, extra] of [['WebGPU', ''], ['CPU fallback', '&backend=cpu']]) {
  const t0 = Date.now();
  const { page, ctx } = await open(b, `${server.url}#${REF}${extra}`);
  const tReady = Date.now() - t0;
  const cpu0 = chromiumCpu();
  const w0 = Date.now();
  await page.click('#run');
  await waitDone(page, 590000);
  const wall = (Date.now() - w0) / 1000;
  const cpu1 = chromiumCpu();
  const rec = await exportRecord(page);
  const lane = rec.lanes[0];
  const n = lane.losses.length;
  const use = Object.keys(cpu1).map((k) => `${k} ${((cpu1[k] - (cpu0[k] || 0)) / n * 1000).toFixed(0)}`).join(', ');
  console.log(`${name}: CPU ms per step by Chromium process over the whole run (${n} steps, ${(wall / n * 1000).toFixed(0)} ms wall per step incl. first): ${use}`);
  console.log(`${name}: backend "${rec.backend}", page load to ready ${tReady} ms, first step ${lane.first_step_ms.toFixed(0)} ms ` +
    `(load → first step ≈ ${(tReady + lane.first_step_ms).toFixed(0)} ms), then ${lane.ms_per_step.toFixed(1)} ms/step ` +
    `= ${(1000 / lane.ms_per_step).toFixed(2)} steps/s over ${lane.losses.length - 1} steps (reference config)`);
  await ctx.close();
}
// The default preset (an empty link) on the CPU fallback, run to the end as a new user would:
// the whole run's wall time, and when vanilla's line has climbed away from the fix's (its max |x|
// over layers on the training batch ≥ 1.5× the fix's, and staying so to the end).
if (process.env.QTLAB_BENCH_PRESET !== '0') {
  const first = await open(b, `${server.url}`);
  await first.page.waitForFunction(() => /model=/.test(location.hash));
  const hash = await first.page.evaluate(() => location.hash.slice(1));
  await first.ctx.close();
  const { page, ctx } = await open(b, `${server.url}#${hash}&backend=cpu`);
  const t0 = Date.now();
  await page.click('#run');
  await waitDone(page, 1800000);
  const wall = (Date.now() - t0) / 1000;
  const rec = await exportRecord(page);
  const series = (lane) => new Map(lane.inf_norm_curve.map(([s, v]) => [s, Math.max(...v)]));
  const fix = series(rec.lanes[0]);
  const van = series(rec.lanes.find((l) => l.attn === 'vanilla'));
  const steps = [...fix.keys()].filter((s) => van.has(s)).sort((a, b) => a - b);
  let apart = null;
  for (const s of steps) {
    if (van.get(s) >= 1.5 * fix.get(s)) { if (apart === null) apart = s; } else apart = null;
  }
  const total = rec.lanes[0].steps;
  const at = apart === null ? 'never' : `step ${apart} of ${total} ≈ ${(wall * apart / total).toFixed(0)} s`;
  const last = steps[steps.length - 1];
  console.log(`default preset, CPU fallback: ${rec.lanes.length} lanes × ${total} steps in ${wall.toFixed(0)} s wall ` +
    `(${rec.lanes.map((l) => `${l.attn} ${l.ms_per_step.toFixed(1)} ms/step`).join(', ')}); ` +
    `vanilla ≥ 1.5× the fix's max |x| from ${at}; vanilla vs fix at step ${steps[0]} ` +
    `${van.get(steps[0]).toFixed(2)} vs ${fix.get(steps[0]).toFixed(2)}, at the end ` +
    `${van.get(last).toFixed(2)} vs ${fix.get(last).toFixed(2)} (a gap already there at step 0 is the initialisation, not grown outliers)`);
  await ctx.close();
}
await b.close();
server.stop();
