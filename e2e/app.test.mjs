// End-to-end tests of the built app in headless Chromium (WebGPU on SwiftShader here).
// Usage: node e2e/app.test.mjs <dist dir>. Screenshots go to out/e2e/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { serve, browser, open, waitDone, exportRecord, shot, OUT } from './lib.mjs';

const dist = process.argv[2] || 'dist';
const server = await serve(dist, 8772);
const b = await browser();
let failed = 0;
const results = [];

async function test(name, fn) {
  // QTLAB_E2E_ONLY=<words> runs only the tests whose names contain them (for debugging).
  if (process.env.QTLAB_E2E_ONLY && !name.includes(process.env.QTLAB_E2E_ONLY)) return;
  const t0 = Date.now();
  try {
    await fn();
    results.push(`ok   ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    results.push(`FAIL ${name}: ${e.stack || e}`);
  }
  console.log(results[results.length - 1]);
}

// A tiny run, so SwiftShader gets through it in seconds per step.
const TINY = 'v=1&model=bert&layers=1&d=16&heads=2&ffn=32&seq=8&batch=4&steps=4&eval_every=2&eval_batches=2&seed=7';

// The kernels' WGSL as the Rust side fills its templates (`qtlab shaders`, run by e2e.sh), through
// Chromium's own WGSL compiler (Tint), which is stricter than naga: a shader that only naga
// accepts would lose the GPU in the browser while every native test passed.
await test('every WGSL kernel variant compiles in Chromium\'s WebGPU', async () => {
  const dir = process.env.QTLAB_SHADERS || 'out/shaders';
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.wgsl')).sort();
  assert.ok(files.length >= 8, `expected the kernel variants in ${dir}, found ${files.length}`);
  const { page, ctx } = await open(b, `${server.url}#v=1&backend=cpu`);
  const bad = [];
  for (const f of files) {
    const code = fs.readFileSync(`${dir}/${f}`, 'utf8');
    const msgs = await page.evaluate(async (code) => {
      const adapter = await navigator.gpu.requestAdapter();
      const device = await adapter.requestDevice();
      const module = device.createShaderModule({ code });
      const info = await module.getCompilationInfo();
      // A pipeline too, so entry point, workgroup size and bindings are validated as well.
      device.pushErrorScope('validation');
      device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
      const err = await device.popErrorScope();
      device.destroy();
      return info.messages.filter((m) => m.type === 'error')
        .map((m) => `${m.lineNum}:${m.linePos} ${m.message}`)
        .concat(err ? [err.message] : []);
    }, code);
    if (msgs.length) bad.push(`${f}: ${msgs.join('; ')}`);
  }
  await ctx.close();
  assert.deepEqual(bad, [], bad.join('\n'));
});

await test('a lost GPU device mid-run: message, curves kept, continue on the CPU without reload', async () => {
  const ctx = await b.newContext({ acceptDownloads: true });
  // Keep a handle on every GPUDevice the page creates, so the test can destroy Burn's.
  await ctx.addInitScript(() => {
    window.__devs = [];
    const orig = GPUAdapter.prototype.requestDevice;
    GPUAdapter.prototype.requestDevice = async function (...a) {
      const d = await orig.apply(this, a);
      window.__devs.push(d);
      return d;
    };
  });
  const page = await ctx.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  await page.goto(`${server.url}#v=1&layers=1&d=16&heads=2&ffn=32&seq=8&batch=4&steps=400&eval_every=1000&eval_batches=1&cmp=`);
  await page.waitForFunction(() => /WebGPU/.test(document.querySelector('#backend')?.textContent || ''), null, { timeout: 120000 });
  await page.click('#run');
  await page.waitForFunction(() => { const m = /(\d+)\/400/.exec(document.querySelector('#summary tbody tr td:last-child')?.textContent || ''); return m && Number(m[1]) >= 3; }, null, { timeout: 300000 });
  const n = await page.evaluate(() => { window.__devs.forEach((d) => d.destroy()); return window.__devs.length; });
  assert.ok(n >= 1);
  await page.waitForSelector('#banner[data-code=device-lost]', { timeout: 60000 });
  const kept = await exportRecord(page);
  assert.ok(kept.lanes[0].losses.length >= 3, 'curves up to the loss are kept');
  await shot(page, 'device-lost');
  await page.click('#continue-cpu');
  await page.waitForFunction(() => /\d+\/400/.test(document.querySelector('#summary tbody tr')?.textContent || '') && !document.querySelector('#banner'), null, { timeout: 60000 });
  await page.click('#run'); // pause
  assert.match(await page.textContent('#backend'), /CPU/);
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('a shared link restores every control', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#${TINY}&attn=gated&pi=0.3&gate=mlp&lr=0.002&cmp=vanilla,clipped&q=w8a8,w4a8&wr=mse&wg=channel&ar=percentile:99.99`);
  const v = (id) => page.$eval(id, (e) => e.value);
  assert.equal(await v('#ctl-model'), 'bert');
  assert.equal(await v('#ctl-layers'), '1');
  assert.equal(await v('#ctl-d'), '16');
  assert.equal(await v('#ctl-heads'), '2');
  assert.equal(await v('#ctl-attn'), 'gated');
  assert.equal(await v('#ctl-gate'), 'mlp');
  assert.equal(await v('#ctl-pi'), '0.3');
  assert.equal(Number(await v('#ctl-lr')), 0.002);
  assert.equal(await v('#ctl-seed'), '7');
  assert.equal(await v('#q-points'), 'w8a8,w4a8');
  assert.equal(await v('#q-wr'), 'mse');
  assert.equal(await v('#q-wg'), 'channel');
  assert.equal(await v('#q-ar'), 'percentile:99.99');
  assert.equal(await page.$eval('#cmp-vanilla', (e) => e.checked), true);
  assert.equal(await page.$eval('#cmp-clipped', (e) => e.checked), true);
  assert.equal(await page.$eval('#cmp-gated', (e) => e.checked), false, 'gated is the run itself');
  assert.equal(await page.$eval('#cmp-sink', (e) => e.checked), false);
  // The address bar holds the canonical form of the same run.
  const hash = await page.evaluate(() => location.hash);
  assert.match(hash, /attn=gated/);
  assert.match(hash, /pi=0.3/);
  const csp = await page.$eval('meta[http-equiv=Content-Security-Policy]', (m) => m.content);
  assert.match(csp, /script-src 'self' 'wasm-unsafe-eval' 'sha256-/);
  assert.doesNotMatch(csp, /unsafe-inline|'unsafe-eval'/);
  assert.deepEqual(errors, [], 'no console errors, CSP violations included');
  await ctx.close();
});

let firstLosses = null;
await test('train on WebGPU, two variants side by side; charts move; quantize', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#${TINY}&attn=gated&cmp=vanilla`);
  assert.match(await page.textContent('#backend'), /WebGPU/);
  assert.equal(await page.$('#banner'), null, 'no fallback banner on WebGPU');
  await page.click('#run');
  await waitDone(page);
  const rows = await page.$$eval('#summary tbody tr', (r) => r.map((x) => x.textContent));
  assert.equal(rows.length, 2, 'gated and vanilla');
  assert.match(rows[0], /gated/);
  assert.match(rows[1], /vanilla/);
  assert.match(rows[0], /4\/4/);
  // Loss and outlier charts have drawn lines.
  const paths = await page.$$eval('#loss-chart path', (p) => p.map((x) => x.getAttribute('d')));
  assert.ok(paths.some((d) => d && d.includes('L')), 'loss chart has a line');
  const layers = await page.$$eval('#outlier-charts .pair', (p) => p.length);
  assert.equal(layers, 1);
  const infPaths = await page.$$eval('#outlier-charts path', (p) => p.filter((x) => (x.getAttribute('d') || '').length > 0).length);
  assert.ok(infPaths >= 2, 'inf-norm lines for both variants');
  const rec = await exportRecord(page);
  assert.equal(rec.lanes.length, 2);
  assert.equal(rec.lanes[0].losses.length, 4);
  assert.ok(rec.lanes.every((l) => l.losses.every(([, x]) => Number.isFinite(x))));
  firstLosses = rec.lanes.map((l) => l.losses.map(([, x]) => x));
  await shot(page, 'trained-webgpu');
  await page.click('#quantize');
  await page.waitForSelector('#quant-table tbody tr', { timeout: 300000 });
  await page.waitForFunction(() => document.querySelector('#phase').textContent.startsWith('Done'), null, { timeout: 300000 });
  const qrows = await page.$$eval('#quant-table tbody tr', (r) => r.map((x) => x.textContent));
  assert.equal(qrows.length, 2);
  assert.ok(qrows.every((r) => /\d+\.\d{3}/.test(r)), `numbers in every row: ${qrows}`);
  await shot(page, 'quantized-webgpu');
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('the same link twice gives the same losses', async () => {
  const { page, ctx } = await open(b, `${server.url}#${TINY}&attn=gated&cmp=vanilla`);
  await page.click('#run');
  await waitDone(page);
  const rec = await exportRecord(page);
  const again = rec.lanes.map((l) => l.losses.map(([, x]) => x));
  assert.ok(firstLosses, 'first run recorded');
  for (let i = 0; i < again.length; i++) {
    for (let k = 0; k < again[i].length; k++) {
      const a = firstLosses[i][k], c = again[i][k];
      assert.ok(Math.abs(a - c) <= 1e-6 * Math.max(1, Math.abs(a)), `lane ${i} step ${k}: ${a} vs ${c}`);
    }
  }
  await ctx.close();
});

await test('forced CPU fallback shows the banner and still trains', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#${TINY}&backend=cpu&cmp=`);
  assert.equal(await page.getAttribute('#banner', 'data-code'), 'chosen-cpu');
  assert.match(await page.textContent('#backend'), /CPU/);
  await page.keyboard.press('Space');
  await waitDone(page);
  const rec = await exportRecord(page);
  assert.equal(rec.lanes.length, 1);
  assert.equal(rec.lanes[0].losses.length, 4);
  await shot(page, 'cpu-fallback');
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('the loader: its line goes once the app mounts; a broken wasm or a browser without SIMD gets a named cause', async () => {
  const ok = await open(b, `${server.url}#${TINY}`);
  assert.equal(await ok.page.$('#boot'), null, 'the loading line is removed after start');
  assert.deepEqual(ok.errors, []);
  await ok.ctx.close();
  const corrupt = (ctx) => ctx.route('**/*.wasm', (r) => r.fulfill({ status: 200, contentType: 'application/wasm', body: Buffer.from('not wasm') }));
  for (const [why, setup, want] of [
    ['corrupt wasm', corrupt, /qtlab could not start: .+Reloading the page may help/],
    ['no SIMD', async (ctx) => {
      await ctx.addInitScript(() => { WebAssembly.validate = () => false; });
      await corrupt(ctx);
    }, /lacks WebAssembly SIMD.+update the browser/]]) {
    const ctx = await b.newContext();
    await setup(ctx);
    const page = await ctx.newPage();
    await page.goto(server.url);
    await page.waitForSelector('#boot.boot-error', { timeout: 30000 });
    assert.match(await page.textContent('#boot'), want, why);
    await ctx.close();
  }
});

await test('without a WebGPU adapter the app falls back and says why', async () => {
  const nogpu = await browser({ webgpu: false });
  const { page } = await open(nogpu, `${server.url}#${TINY}&cmp=`);
  const code = await page.getAttribute('#banner', 'data-code');
  assert.ok(['no-adapter', 'no-webgpu'].includes(code), code);
  await page.click('#step');
  await page.waitForFunction(() => document.querySelector('#summary tbody tr')?.textContent.includes('1/4'), null, { timeout: 120000 });
  await nogpu.close();
});

await test("a hand-typed link with '?' instead of '#' is read, said so, and rewritten", async () => {
  const { page, ctx, errors } = await open(b, `${server.url}?${TINY}&attn=gated&pi=0.3`);
  assert.equal(await page.$eval('#ctl-attn', (e) => e.value), 'gated');
  assert.equal(await page.$eval('#ctl-layers', (e) => e.value), '1');
  assert.match(await page.textContent('#notes'), /after '#'/);
  const url = new URL(page.url());
  assert.equal(url.search, '', 'the query is gone from the address bar');
  assert.match(url.hash, /attn=gated/);
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('a malformed link shows a message and the defaults, not a blank page', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#heads=banana&layers=abc&zzz=1&<script>=x&seed=%zz`);
  const notes = await page.textContent('#notes');
  assert.match(notes, /heads/);
  assert.match(notes, /layers/);
  assert.match(notes, /zzz/);
  assert.equal(await page.$eval('#ctl-heads', (e) => e.value), '4');
  assert.equal(await page.$eval('#ctl-layers', (e) => e.value), '2');
  assert.equal(await page.$('script:not([type]):not([src])'), null, 'nothing from the URL became a script');
  await shot(page, 'malformed-url');
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('editing a control updates the link without adding history entries', async () => {
  const { page, ctx } = await open(b, `${server.url}#${TINY}`);
  const before = await page.evaluate(() => history.length);
  await page.fill('#ctl-layers', '3');
  await page.press('#ctl-layers', 'Tab');
  await page.fill('#ctl-seed', '11');
  await page.press('#ctl-seed', 'Tab');
  const hash = await page.evaluate(() => location.hash);
  assert.match(hash, /layers=3/);
  assert.match(hash, /seed=11/);
  assert.equal(await page.evaluate(() => history.length), before);
  // An impossible value is refused with a message naming the field; the old value stays.
  await page.fill('#ctl-heads', '5');
  await page.press('#ctl-heads', 'Tab');
  assert.match(await page.textContent('#notes'), /heads|d_model|divis/i);
  assert.doesNotMatch(await page.evaluate(() => location.hash), /heads=5/);
  await ctx.close();
});


await test('an exported record imports back, and bad files are refused with a message', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#${TINY}&backend=cpu&cmp=vanilla`);
  await page.click('#run');
  await waitDone(page);
  const rec = await exportRecord(page);
  const fresh = await open(b, `${server.url}#backend=cpu`);
  const tmp = `${OUT}/record.json`;
  fs.writeFileSync(tmp, JSON.stringify(rec));
  await fresh.page.setInputFiles('#import', tmp);
  await fresh.page.waitForFunction(() => document.querySelectorAll('#summary tbody tr').length === 2);
  assert.match(await fresh.page.textContent('#notes'), /imported record/);
  assert.equal(await fresh.page.$eval('#ctl-seed', (e) => e.value), '7');
  for (const [name, bytes, re] of [['empty.json', Buffer.alloc(0), /empty/], ['bin.json', Buffer.from([0xff, 0xfe, 0, 1]), /not UTF-8/],
    ['x.json', Buffer.from('{"qtlab":1}'), /not a qtlab record/]]) {
    await fresh.page.setInputFiles('#import', { name, mimeType: 'application/json', buffer: bytes });
    await fresh.page.waitForFunction((r) => new RegExp(r).test(document.querySelector('#notes').textContent), re.source);
  }
  await fresh.ctx.close();
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('uploads: empty, binary, non-UTF-8 and tiny files get a message; a real text trains', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#${TINY}&backend=cpu&cmp=`);
  assert.match(await page.textContent('label[for=upload]'), /200 MB/);
  const cases = [
    ['empty.txt', Buffer.alloc(0), /empty/i],
    ['img.txt', Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 13, 0x49, 0x48]), /binary/i],
    ['latin1.txt', Buffer.from('caf\xe9 '.repeat(400), 'latin1'), /UTF-8/i],
    ['a.txt', Buffer.from('a'.repeat(50)), /too short|at least|characters/i],
  ];
  for (const [name, buffer, re] of cases) {
    await page.setInputFiles('#upload', { name, mimeType: 'text/plain', buffer });
    await page.waitForFunction((r) => new RegExp(r, 'i').test(document.querySelector('#notes').textContent), re.source);
  }
  // Over the cap: refused from its size alone, before it is read.
  await page.evaluate(() => {
    const dt = new DataTransfer();
    dt.items.add(new File([new Uint8Array(201 * 1024 * 1024)], 'huge.txt', { type: 'text/plain' }));
    const input = document.querySelector('#upload');
    input.files = dt.files;
    input.dispatchEvent(new Event('change', { bubbles: true }));
  });
  await page.waitForFunction(() => /limit is 200 MB/.test(document.querySelector('#notes').textContent));
  // One character repeated is valid text: it trains (there is just nothing to learn).
  await page.setInputFiles('#upload', { name: 'same.txt', mimeType: 'text/plain', buffer: Buffer.from('x'.repeat(5000)) });
  await page.waitForFunction(() => /Loaded/.test(document.querySelector('#notes').textContent));
  assert.match(await page.evaluate(() => location.hash), /data=file:same.txt/);
  await page.click('#run');
  await waitDone(page);
  const rec = await exportRecord(page);
  assert.equal(rec.lanes[0].losses.length, 4);
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('the Shakespeare preset sets its recipe; the built-in corpus downloads and trains', async () => {
  const { page, ctx, errors } = await open(b, `${server.url}#${TINY}&backend=cpu&cmp=`);
  const label = await page.$eval('#preset', (s) => [...s.options].map((o) => o.value).find((v) => /Shakespeare/.test(v)));
  assert.ok(label, 'a Shakespeare preset is listed');
  await page.selectOption('#preset', label);
  await page.waitForFunction(() => /data=tinyshakespeare/.test(location.hash) && /lr=3e-3&/.test(location.hash) && /wd=0&/.test(location.hash));
  assert.match(await page.textContent('#data-now'), /tinyshakespeare/);
  assert.deepEqual(errors, []);
  await ctx.close();
  // A link that trains the tiny model on it: the download happens on Run, then steps follow.
  const fresh = await open(b, `${server.url}#${TINY}&backend=cpu&cmp=&data=tinyshakespeare`);
  await fresh.page.click('#run');
  await waitDone(fresh.page);
  const rec = await exportRecord(fresh.page);
  assert.equal(rec.lanes[0].losses.length, 4);
  assert.match(rec.lanes[0].spec, /data=tinyshakespeare/);
  assert.ok(rec.lanes[0].losses.every(([, x]) => Number.isFinite(x)));
  assert.deepEqual(fresh.errors, []);
  await fresh.ctx.close();
});

await test('an empty link opens the first preset (BERT on Shakespeare); a Bigram-Backcopy run shows the no-op split', async () => {
  // The default: no fragment at all. The address bar then carries the whole preset.
  const { page, ctx, errors } = await open(b, `${server.url}`);
  await page.waitForFunction(() => /model=bert/.test(location.hash) && /data=tinyshakespeare/.test(location.hash) && /gate=mlp/.test(location.hash) && /steps=3000/.test(location.hash));
  assert.match(await page.textContent('#data-now'), /tinyshakespeare/);
  // The preset menu names the run on screen, and lets go of it once a setting changes.
  assert.match(await page.$eval('#preset', (e) => e.value), /^BERT on Shakespeare/);
  // Paper-scale presets are CLI work: named under the menu with where to run them, not offered.
  const offered = await page.$eval('#preset', (s) => [...s.options].map((o) => o.value).join('\n'));
  assert.doesNotMatch(offered, /Paper scale/);
  assert.match(await page.textContent('#paper-scale'), /paper-bert-base.*qtlab.*scale-out/s);
  await page.fill('#ctl-steps', '2999');
  await page.press('#ctl-steps', 'Tab');
  await page.waitForFunction(() => /steps=2999/.test(location.hash));
  assert.equal(await page.$eval('#preset', (e) => e.value), '');
  // The line follows the run: BERT's no-op tokens, and what was measured at this size.
  assert.match(await page.textContent('#look-for'), /\[SEP\].*at this size/s);
  await shot(page, 'default-preset');
  await ctx.close();
  // A tiny Bigram-Backcopy run on the CPU: the record splits first-token mass by query kind.
  const bb = await open(b, `${server.url}#${TINY}&model=opt&data=bb%3Asynthetic&bb_k=2&backend=cpu&cmp=vanilla&attn=gated`);
  await bb.page.click('#run');
  await waitDone(bb.page);
  const rec = await exportRecord(bb.page);
  assert.equal(rec.lanes.length, 2);
  for (const lane of rec.lanes) {
    const heads = lane.evals[lane.evals.length - 1].heads;
    assert.ok(heads.length >= 1);
    assert.equal(heads[0].first_mass_other.length, 2, 'per head, queries with nothing to do');
    assert.equal(heads[0].first_mass_copy.length, 2, 'per head, copy queries');
    assert.ok(lane.inspection.profiles.length >= 1, 'where the outlier sits');
    assert.ok(lane.inspection.value_norms.length >= 1, 'value norms per layer');
  }
  assert.match(await bb.page.textContent('#inspect'), /queries with nothing to do/);
  assert.match(await bb.page.textContent('#look-for'), /trigger/);
  assert.deepEqual(bb.errors, []);
  assert.deepEqual(errors, []);
  await bb.ctx.close();
});

await test('a bad download of the built-in corpus is refused with a message, not trained on', async () => {
  const { page, ctx } = await open(b, `${server.url}#${TINY}&backend=cpu&cmp=&data=tinyshakespeare`);
  // A server that answers every path with its index page (a common SPA fallback).
  await page.route('**/data/tinyshakespeare.txt', (r) => r.fulfill({ status: 200, contentType: 'text/html', body: '<!doctype html><title>x</title>'.repeat(40) }));
  await page.click('#run');
  await page.waitForFunction(() => /could not download the built-in tinyshakespeare text \(got \d+ bytes/.test(document.querySelector('#notes').textContent));
  await page.waitForFunction(() => !/downloading/.test(document.querySelector('#phase').textContent));
  assert.equal(await page.$$eval('#summary tbody tr', (rows) => rows.filter((r) => /\d+\/4/.test(r.textContent) && !/0\/4/.test(r.textContent)).length), 0, 'nothing trained');
  // Run again once the server is fixed: the download is retried and training goes ahead.
  await page.unroute('**/data/tinyshakespeare.txt');
  await page.click('#run');
  await waitDone(page);
  await ctx.close();
});

await test('divergence stops the run with a message and keeps the curves', async () => {
  // lr=10 alone does not blow up a LayerNorm'd toy model, so NaN weights are injected at step 3.
  const { page, ctx, errors } = await open(b, `${server.url}#v=1&layers=1&d=16&heads=2&ffn=32&seq=8&batch=4&eval_every=5&eval_batches=1&backend=cpu&cmp=vanilla&lr=10&steps=50`);
  await page.evaluate(() => { window.__qtlabPoisonAt = 3; });
  await page.click('#run');
  await waitDone(page);
  const rows = await page.$$eval('#summary tbody tr', (r) => r.map((x) => x.textContent));
  assert.ok(rows.every((r) => /diverged at step 3/.test(r)), rows.join(' | '));
  const rec = await exportRecord(page);
  for (const lane of rec.lanes) {
    assert.equal(lane.losses.length, 3, 'the three good steps are kept');
    assert.match(lane.error, /diverged/);
  }
  const csv = await Promise.all([page.waitForEvent('download'), page.click('#export-csv')]).then(([d]) => d.path()).then((p) => fs.readFileSync(p, 'utf8'));
  assert.equal(csv.trim().split('\n').length, 1 + 2 * 3, 'CSV has the kept steps of both runs');
  assert.deepEqual(errors, []);
  await ctx.close();
});

await test('a finished run survives a reload', async () => {
  const url = `${server.url}#${TINY}&backend=cpu&cmp=&seed=99`;
  const { page, ctx } = await open(b, url);
  await page.click('#run');
  await waitDone(page);
  await page.reload();
  await page.waitForSelector('#notes');
  await page.waitForFunction(() => /Restored/.test(document.querySelector('#notes').textContent), null, { timeout: 60000 });
  assert.match(await page.textContent('#summary tbody tr'), /4\/4/);
  await ctx.close();
});

await test('a full browser storage is reported, not silent', async () => {
  const ctx = await b.newContext({ acceptDownloads: true });
  await ctx.addInitScript(() => {
    Storage.prototype.setItem = function () { throw new DOMException('full', 'QuotaExceededError'); };
  });
  const page = await ctx.newPage();
  await page.goto(`${server.url}#${TINY}&backend=cpu&cmp=&seed=5`);
  await page.waitForFunction(() => /CPU/.test(document.querySelector('#backend')?.textContent || ''));
  await page.click('#run');
  await waitDone(page);
  await page.waitForFunction(() => /storage is full/.test(document.querySelector('#notes').textContent));
  await ctx.close();
});

await test('phone width and dark mode render', async () => {
  const ctx = await b.newContext({ viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  const page = await ctx.newPage();
  await page.goto(`${server.url}#${TINY}&backend=cpu`);
  await page.waitForSelector('#run');
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 1, `no horizontal scroll at phone width (overflow ${overflow}px)`);
  await page.keyboard.press('ArrowRight');
  await page.waitForFunction(() => document.querySelector('#summary tbody tr')?.textContent.includes('1/4'));
  await page.keyboard.press('?');
  await page.waitForSelector('#help');
  await shot(page, 'phone-dark');
  await ctx.close();
});

await b.close();
server.stop();

console.log(failed ? `${failed} e2e test(s) FAILED` : 'all e2e tests passed');
process.exit(failed ? 1 : 0);
