// TF.js (4.22) version of qtlab's reference config, for a like-for-like speed comparison with
// the app: BERT masked LM as in core/src/model/bert.rs, i.e. post-LN encoder
//   x = LN(tok_emb[ids] + pos_emb)                                  (embedding LayerNorm)
//   per layer: h = LN(x + out(attn(x))),  y = LN(h + fc2(gelu(fc1(h))))
//   head: LN(gelu(dense(y))) · tok_embᵀ + bias                      (decoder tied to tok_emb)
// with 2 layers, d_model 64, 4 heads, FFN 256 (erf GELU), seq 32, batch 16, learned positions,
// vocab 60 (the default synthetic corpus: 54 characters + 6 specials), cross-entropy weighted
// to the 15 % masked positions over all batch·seq rows (train.rs weighted_cross_entropy), and
// AdamW with PyTorch semantics + global gradient-norm clip 1.0 (train.rs AdamW), all on the
// device. Data are random token ids. One step = forward + backward + clip + AdamW update, then
// `await loss.data()`, as the app reads its loss back each step.
//
// Token embedding is a one-hot matmul rather than tf.gather: gather's gradient needs
// UnsortedSegmentSum, which the wasm backend lacks; with 60 ids the extra [512,60]x[60,64]
// matmul is negligible. It is used on every backend so all three run the same graph.
'use strict';

const CFG = { layers: 2, d: 64, heads: 4, ffn: 256, seq: 32, batch: 16, vocab: 60,
  lr: 1e-3, wd: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, clip: 1.0, initStd: 0.02, mask: 0.15 };
const MASK_ID = 4, CLS_ID = 2, SEP_ID = 3, NUM_SPECIAL = 6;

const out = document.getElementById('out');
function log(s) { out.textContent += '\n' + s; }

// mulberry32: deterministic host-side data.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function buildModel() {
  const { d, ffn, vocab, seq, layers, initStd } = CFG;
  const vars = [];
  const noDecay = new Set();
  const param = (name, t, decay = true) => {
    const v = tf.variable(t, true, name);
    vars.push(v);
    if (!decay) noDecay.add(name);
    return v;
  };
  // Seeded, so every backend starts from the same weights and their loss curves can be compared.
  let seed = 7;
  const normal = (shape) => tf.randomNormal(shape, 0, initStd, 'float32', seed++);
  const torchDefault = (fanIn, shape) =>
    tf.randomUniform(shape, -1 / Math.sqrt(fanIn), 1 / Math.sqrt(fanIn), 'float32', seed++);
  const ln = (name) => ({ g: param(name + '.gamma', tf.ones([d]), false), b: param(name + '.beta', tf.zeros([d]), false) });
  const m = {
    tok: param('tokens.weight', normal([vocab, d])),
    pos: param('positions', normal([seq, d])),
    embLn: ln('emb_ln'),
    layers: [],
  };
  for (let l = 0; l < layers; l++) {
    m.layers.push({
      // Q, K, V side by side as one Linear(d→3d), PyTorch default init (attention/mod.rs).
      wqkv: param(`l${l}.qkv.weight`, torchDefault(d, [d, 3 * d])),
      bqkv: param(`l${l}.qkv.bias`, torchDefault(d, [3 * d]), false),
      wo: param(`l${l}.out.weight`, normal([d, d])),
      bo: param(`l${l}.out.bias`, tf.zeros([d]), false),
      attnLn: ln(`l${l}.attn_ln`),
      w1: param(`l${l}.fc1.weight`, normal([d, ffn])),
      b1: param(`l${l}.fc1.bias`, tf.zeros([ffn]), false),
      w2: param(`l${l}.fc2.weight`, normal([ffn, d])),
      b2: param(`l${l}.fc2.bias`, tf.zeros([d]), false),
      ffnLn: ln(`l${l}.ffn_ln`),
    });
  }
  m.headW = param('head_dense.weight', normal([d, d]));
  m.headB = param('head_dense.bias', tf.zeros([d]), false);
  m.headLn = ln('head_ln');
  m.decB = param('head_bias', tf.zeros([vocab]), false);
  return { m, vars, noDecay };
}

const layerNorm = (x, p) => {
  const { mean, variance } = tf.moments(x, -1, true);
  return x.sub(mean).mul(tf.rsqrt(variance.add(1e-5))).mul(p.g).add(p.b);
};
// Exact (erf) GELU, as Burn's gelu.
const gelu = (x) => x.mul(0.5).mul(tf.erf(x.mul(Math.SQRT1_2)).add(1));

// batch: { ids1h [B*T, V], tgt1h [B*T, V], w [B*T], wsum } → scalar loss
function lossFn(m, batch) {
  const { d, heads, seq: T, batch: B } = CFG;
  const dh = d / heads;
  const scale = 1 / Math.sqrt(dh);
  const e = tf.matMul(batch.ids1h, m.tok).reshape([B, T, d]).add(m.pos); // [B, T, d]
  let x = layerNorm(e.reshape([B * T, d]), m.embLn); // [BT, d]
  const split = (y) => y.reshape([B, T, heads, dh]).transpose([0, 2, 1, 3]); // [B, H, T, dh]
  for (const L of m.layers) {
    const qkv = tf.matMul(x, L.wqkv).add(L.bqkv); // [BT, 3d]
    const [q, k, v] = tf.split(qkv, 3, 1).map(split);
    const probs = tf.softmax(tf.matMul(q, k, false, true).mul(scale)); // [B, H, T, T]
    const ctx = tf.matMul(probs, v).transpose([0, 2, 1, 3]).reshape([B * T, d]); // [BT, d]
    const h = layerNorm(x.add(tf.matMul(ctx, L.wo).add(L.bo)), L.attnLn);
    const f = tf.matMul(gelu(tf.matMul(h, L.w1).add(L.b1)), L.w2).add(L.b2);
    x = layerNorm(h.add(f), L.ffnLn);
  }
  const hh = layerNorm(gelu(tf.matMul(x, m.headW).add(m.headB)), m.headLn); // [BT, d]
  const logits = tf.matMul(hh, m.tok, false, true).add(m.decB); // [BT, V], tied decoder
  const picked = tf.logSoftmax(logits).mul(batch.tgt1h).sum(1); // [BT]
  return picked.mul(batch.w).sum().neg().div(batch.wsum);
}

function makeBatch(rand) {
  const { seq: T, batch: B, vocab: V, mask } = CFG;
  const n = B * T;
  const ids = new Int32Array(n), tgt = new Int32Array(n), w = new Float32Array(n);
  let wsum = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      const tok = NUM_SPECIAL + Math.floor(rand() * (V - NUM_SPECIAL));
      ids[i] = t === 0 ? CLS_ID : t === T - 1 ? SEP_ID : tok;
      tgt[i] = ids[i];
      if (t > 0 && t < T - 1 && rand() < mask) {
        w[i] = 1; wsum++;
        const r = rand(); // BERT's 80 / 10 / 10
        if (r < 0.8) ids[i] = MASK_ID;
        else if (r < 0.9) ids[i] = NUM_SPECIAL + Math.floor(rand() * (V - NUM_SPECIAL));
      }
    }
  }
  // oneHot(..., 'float32') is wrong on the wasm backend of 4.22 (it writes the int32 bits, so
  // 1 reads as 1.4e-45); make int32 and cast instead.
  return tf.tidy(() => ({
    ids1h: tf.oneHot(tf.tensor1d(ids, 'int32'), V).cast('float32'),
    tgt1h: tf.oneHot(tf.tensor1d(tgt, 'int32'), V).cast('float32'),
    w: tf.tensor1d(w),
    wsum: tf.scalar(Math.max(wsum, 1)),
  }));
}

function makeOptimizer(vars, noDecay) {
  const st = vars.map((v) => ({
    m: tf.variable(tf.zerosLike(v), false, v.name + '.m'),
    v: tf.variable(tf.zerosLike(v), false, v.name + '.v'),
  }));
  let t = 0;
  // One AdamW update with PyTorch's clip_grad_norm_ first; returns nothing (all on device).
  return (grads, lr) => {
    t++;
    const { b1, b2, eps, wd, clip } = CFG;
    const bc1 = 1 - Math.pow(b1, t), bc2 = 1 - Math.pow(b2, t);
    tf.tidy(() => {
      const gs = vars.map((v) => grads[v.name]);
      // stack + sum, not tf.addN: addN of these 33 scalars is wrong on the webgpu backend of
      // 4.22 (it returned the first term, and the whole update came out wrong; the loss then
      // barely fell on webgpu while cpu, wasm and webgl agreed to 4 digits).
      const norm = tf.sqrt(tf.stack(gs.map((g) => g.square().sum())).sum());
      const coef = tf.minimum(tf.scalar(clip).div(norm.add(1e-6)), 1);
      vars.forEach((p, i) => {
        const g = gs[i].mul(coef);
        const m = st[i].m.mul(b1).add(g.mul(1 - b1));
        const v = st[i].v.mul(b2).add(g.square().mul(1 - b2));
        st[i].m.assign(m);
        st[i].v.assign(v);
        const decayed = noDecay.has(p.name) ? p : p.mul(1 - lr * wd);
        p.assign(decayed.sub(m.div(v.div(bc2).sqrt().add(eps)).mul(lr / bc1)));
      });
    });
  };
}

async function adapterInfo(backend) {
  try {
    if (backend === 'webgpu') {
      const a = await navigator.gpu.requestAdapter();
      const i = a && (a.info || (a.requestAdapterInfo && await a.requestAdapterInfo()));
      return i ? `${i.vendor} ${i.architecture} ${i.device} ${i.description}`.replace(/\s+/g, ' ').trim() : 'no adapter';
    }
    if (backend === 'webgl') {
      const gl = document.createElement('canvas').getContext('webgl2');
      const ext = gl && gl.getExtension('WEBGL_debug_renderer_info');
      return ext ? gl.getParameter(ext.UNMASKED_RENDERER_WEBGL) : (gl ? gl.getParameter(gl.RENDERER) : 'no webgl2');
    }
    if (backend === 'wasm') {
      const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
      const threads = await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT');
      return `simd ${simd}, threads ${threads} (crossOriginIsolated ${self.crossOriginIsolated})`;
    }
  } catch (e) { return `info failed: ${e}`; }
  return '';
}

async function main() {
  const q = new URLSearchParams(location.search);
  const want = q.get('backend') || 'webgpu';
  const warmup = Number(q.get('warmup') || 3);
  const steps = Number(q.get('steps') || 10);
  if (want === 'wasm') tf.wasm.setWasmPaths(new URL('./', location.href).href);
  let ok = false;
  try { ok = await tf.setBackend(want); } catch (e) { log(`setBackend(${want}) threw: ${e}`); }
  await tf.ready();
  const backend = tf.getBackend();
  log(`requested ${want}, setBackend ok=${ok}, using ${backend}, tfjs ${tf.version.tfjs}`);
  const info = await adapterInfo(backend);

  const { m, vars, noDecay } = buildModel();
  const params = vars.reduce((s, v) => s + v.size, 0);
  const update = makeOptimizer(vars, noDecay);
  // data=fixed (default) re-uploads one random batch every step, so the loss is a clean
  // "is it learning" signal (it falls as the batch is memorised); data=random draws a new one.
  const fixed = (q.get('data') || 'fixed') === 'fixed';
  const lr = Number(q.get('lr') || CFG.lr);
  // Debugging aid: mode=grads reports per-parameter gradient norms of step 0 (the init is
  // seeded, so these can be compared between backends).
  if (q.get('mode') === 'grads') {
    const batch = makeBatch(rng(1234));
    const { value, grads } = tf.variableGrads(() => lossFn(m, batch), vars);
    const norms = {};
    for (const v of vars) norms[v.name] = (await grads[v.name].norm().data())[0];
    window.__result = { backend, loss: (await value.data())[0], norms };
    return;
  }
  const tensorsBefore = tf.memory().numTensors;
  const times = [], losses = [];
  for (let s = 0; s < warmup + steps; s++) {
    const t0 = performance.now();
    const batch = makeBatch(rng(fixed ? 1234 : 1234 + s)); // host data + upload, timed as in the app
    const loss = tf.tidy(() => {
      const { value, grads } = tf.variableGrads(() => lossFn(m, batch), vars);
      update(grads, lr);
      return value;
    });
    const [lv] = await loss.data();
    times.push(performance.now() - t0);
    losses.push(lv);
    loss.dispose();
    Object.values(batch).forEach((t) => t.dispose());
    log(`step ${s}${s < warmup ? ' (warm-up)' : ''}: ${times[s].toFixed(1)} ms, loss ${lv.toFixed(4)}`);
  }
  const timed = times.slice(warmup);
  const mean = timed.reduce((a, b) => a + b, 0) / Math.max(timed.length, 1);
  window.__result = {
    requested: want, data: fixed ? 'fixed' : 'random', lr, setBackendOk: ok, backend, info, tfjs: tf.version.tfjs, params,
    warmup, steps, firstMs: times[0], warmupMs: times.slice(0, warmup), timedMs: timed, meanMs: mean,
    minMs: Math.min(...timed), losses, leakedTensors: tf.memory().numTensors - tensorsBefore,
  };
  log(JSON.stringify(window.__result));
}

main().catch((e) => { window.__error = String(e && e.stack || e); log('ERROR ' + window.__error); });
