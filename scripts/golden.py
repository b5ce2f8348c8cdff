#!/usr/bin/env python3
"""Golden fixtures for qtlab's BERT and OPT: an independent PyTorch implementation.

In the spirit of llm.c's test_gpt2.c: a small model with weights drawn from a numpy seed, one
fixed batch, one forward and backward, and the results written to JSON. The Rust test
core/tests/golden.rs loads the JSON, puts the same weights into qtlab's models and checks that
qtlab's own forward and backward (CPU backend, f32) reproduce the logits, the loss and the
gradient of every parameter.

The math here follows the paper (Bondarenko et al. 2023; shared/reference/paper.md §1.1-1.2)
and the HF models the paper's code builds on, written out by hand in PyTorch; it is not a
transcription of qtlab's Rust. The two meet only in the fixture's names and layouts (see
`to_qtlab`). Everything is computed in float64 from float32 weights, so the fixture holds the
exact math and the Rust test measures qtlab's f32 rounding alone.

Covered: BERT (post-LN, GELU, tied MLM head with bias, masked-LM loss over the masked
positions) and OPT (pre-LN, ReLU, causal, tied LM head, mean next-token loss), each with
vanilla softmax, clipped softmax and gated attention (BERT's MLP gate, OPT's Linear gate, as
each model's presets use). No dropout.

Regenerate (from the repository root; needs only torch and numpy, which are not test
dependencies because the fixtures are committed):

    /root/.cache/qtlab/torchenv/bin/python scripts/golden.py

It rewrites core/tests/fixtures/golden/{bert,opt}.json; then run
`cargo test --release -p qtlab-core --test golden`. Same seed, same bytes.
"""

import json
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

SEED = 16
D, HEADS, LAYERS, FFN, SEQ, BATCH, VOCAB = 16, 2, 2, 32, 8, 2, 16
DH = D // HEADS
N_HID = DH // 4  # the MLP gate's hidden width, d_head // 4 as in the paper's code
LN_EPS = 1e-5

# qtlab's CharTokenizer special ids; ordinary characters start at NUM_SPECIAL.
CLS, SEP, MASK, BOS, NUM_SPECIAL = 2, 3, 4, 5, 6

# Clipped softmax: BERT uses explicit γ/ζ with ζ > 1, so both the lower and the upper clip can
# act; OPT uses the paper's α form, γ = −α/T with ζ = 1 (paper.md §1.1).
BERT_GAMMA, BERT_ZETA = -0.05, 1.05
OPT_ALPHA = 1.0

OUT_DIR = os.path.join(os.path.dirname(__file__), "..", "core", "tests", "fixtures", "golden")


# ---------------------------------------------------------------- weights (PyTorch layouts)


def draw_weights(rng, model, gate):
    """Every parameter as float32 numpy, PyTorch layouts (Linear weight is [out, in])."""
    w = {}

    def normal(name, shape, std):
        w[name] = (rng.standard_normal(shape) * std).astype(np.float32)

    def linear(name, d_in, d_out, std):
        normal(name + ".weight", (d_out, d_in), std)
        normal(name + ".bias", (d_out,), 0.1)

    def layer_norm(name):
        w[name + ".weight"] = (1.0 + 0.1 * rng.standard_normal(D)).astype(np.float32)
        w[name + ".bias"] = (0.1 * rng.standard_normal(D)).astype(np.float32)

    normal("tok_emb", (VOCAB, D), 0.5)
    normal("pos_emb", (SEQ, D), 0.5)
    if model == "bert":
        layer_norm("emb_ln")
    for i in range(LAYERS):
        p = f"layer{i}."
        if model == "opt":
            layer_norm(p + "attn_ln")
        # Q and K larger than PyTorch's default init, so that the attention is peaked enough
        # for the clipped softmax to clip (otherwise it is just a rescaled softmax).
        linear(p + "q", D, D, 0.3)
        linear(p + "k", D, D, 0.3)
        linear(p + "v", D, D, 0.25)
        linear(p + "o", D, D, 0.25)
        # Per-head gate G_h, read from head h's slice of the attention input (paper.md §1.2).
        for h in range(HEADS):
            g = p + f"gate{h}."
            if gate == "linear":
                linear(g + "fc", DH, 1, 0.5)
            else:
                linear(g + "fc1", DH, N_HID, 0.5)
                linear(g + "fc2", N_HID, 1, 0.7)
        if model == "bert":
            layer_norm(p + "attn_ln")
        else:
            layer_norm(p + "ffn_ln")
        linear(p + "fc1", D, FFN, 0.25)
        linear(p + "fc2", FFN, D, 0.18)
        if model == "bert":
            layer_norm(p + "ffn_ln")
    if model == "bert":
        linear("head_dense", D, D, 0.25)
        layer_norm("head_ln")
        normal("head_bias", (VOCAB,), 0.1)
    else:
        layer_norm("final_ln")
    return w


# ---------------------------------------------------------------- the models (paper's math)


def clipped_softmax(x, gamma, zeta):
    """Paper Eq. 4: clip((ζ − γ)·softmax(x) + γ, 0, 1) over the key axis."""
    return torch.clip((zeta - gamma) * torch.softmax(x, dim=-1) + gamma, 0.0, 1.0)


def linear(p, name, x):
    return x @ p[name + ".weight"].T + p[name + ".bias"]


def layer_norm(p, name, x):
    return F.layer_norm(x, (D,), p[name + ".weight"], p[name + ".bias"], LN_EPS)


def attention(p, i, x, variant, causal, gamma, zeta, gate, record):
    """Multi-head self-attention; `x` is the attention module's input [B, T, D]."""
    B, T, _ = x.shape
    pre = f"layer{i}."

    def split(y):  # [B, T, D] -> [B, H, T, DH]
        return y.view(B, T, HEADS, DH).transpose(1, 2)

    q, k, v = (split(linear(p, pre + n, x)) for n in "qkv")
    scores = q @ k.transpose(-1, -2) / math.sqrt(DH)  # [B, H, T, T]
    if causal:
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        scores = scores.masked_fill(future, float("-inf"))
    if variant == "clipped":
        probs = clipped_softmax(scores, gamma, zeta)
        record.append(torch.softmax(scores, dim=-1).detach())
    else:
        probs = torch.softmax(scores, dim=-1)
    context = probs @ v  # [B, H, T, DH]
    if variant == "gated":
        # Gated attention (paper Eqs. 5-7): head h's output times sigmoid(G_h(x_h)), one scalar
        # per head and token, x_h being head h's channel slice of the attention input.
        pis = []
        for h in range(HEADS):
            xh = x[..., h * DH:(h + 1) * DH]  # [B, T, DH]
            g = pre + f"gate{h}."
            if gate == "linear":
                logit = linear(p, g + "fc", xh)
            else:
                logit = linear(p, g + "fc2", torch.relu(linear(p, g + "fc1", xh)))
            pis.append(torch.sigmoid(logit))  # [B, T, 1]
        context = context * torch.stack(pis, dim=1)  # [B, H, T, DH] * [B, H, T, 1]
    merged = context.transpose(1, 2).reshape(B, T, D)
    return linear(p, pre + "o", merged)


def bert_forward(p, ids, variant, record):
    """HF BertForMaskedLM without token types or dropout: post-LN, GELU, tied decoder."""
    T = ids.shape[1]
    x = layer_norm(p, "emb_ln", p["tok_emb"][ids] + p["pos_emb"][:T])
    for i in range(LAYERS):
        pre = f"layer{i}."
        a = attention(p, i, x, variant, False, BERT_GAMMA, BERT_ZETA, "mlp", record)
        h = layer_norm(p, pre + "attn_ln", x + a)
        f = linear(p, pre + "fc2", F.gelu(linear(p, pre + "fc1", h)))
        x = layer_norm(p, pre + "ffn_ln", h + f)
    z = layer_norm(p, "head_ln", F.gelu(linear(p, "head_dense", x)))
    return z @ p["tok_emb"].T + p["head_bias"]  # [B, T, V]


def opt_forward(p, ids, variant, record):
    """HF OPTForCausalLM, pre-LN (do_layer_norm_before), ReLU, no dropout, tied LM head."""
    T = ids.shape[1]
    x = p["tok_emb"][ids] + p["pos_emb"][:T]
    gamma = -OPT_ALPHA / SEQ
    for i in range(LAYERS):
        pre = f"layer{i}."
        a_in = layer_norm(p, pre + "attn_ln", x)
        h = x + attention(p, i, a_in, variant, True, gamma, 1.0, "linear", record)
        f_in = layer_norm(p, pre + "ffn_ln", h)
        x = h + linear(p, pre + "fc2", torch.relu(linear(p, pre + "fc1", f_in)))
    return layer_norm(p, "final_ln", x) @ p["tok_emb"].T  # [B, T, V]


# ---------------------------------------------------------------- inputs


def bert_batch(rng):
    """[CLS] text [SEP] rows; masked positions get weight 1 and target the original token.

    The selected positions and their 80/10/10 treatment are fixed here so that every case
    appears: replaced by [MASK], replaced by a random ordinary token, and kept as is.
    """
    text = rng.integers(NUM_SPECIAL, VOCAB, size=(BATCH, SEQ - 2))
    ids = np.concatenate([np.full((BATCH, 1), CLS), text, np.full((BATCH, 1), SEP)], axis=1)
    targets = ids.copy()
    weights = np.zeros((BATCH, SEQ), dtype=np.float32)
    selections = [[(2, "mask"), (5, "random")], [(1, "mask"), (4, "keep"), (6, "mask")]]
    for row, picks in enumerate(selections):
        for pos, how in picks:
            weights[row, pos] = 1.0
            if how == "mask":
                ids[row, pos] = MASK
            elif how == "random":
                ids[row, pos] = NUM_SPECIAL + (ids[row, pos] - NUM_SPECIAL + 3) % (VOCAB - NUM_SPECIAL)
    return ids, targets, weights


def opt_batch(rng):
    """Input [BOS] t0..t6, target t0..t7: position t predicts the token after it."""
    text = rng.integers(NUM_SPECIAL, VOCAB, size=(BATCH, SEQ))
    ids = np.concatenate([np.full((BATCH, 1), BOS), text[:, :-1]], axis=1)
    return ids, text, np.ones((BATCH, SEQ), dtype=np.float32)


def loss_fn(logits, targets, weights):
    """Σ w·(−log p[target]) / Σ w over all positions."""
    logp = torch.log_softmax(logits.reshape(-1, VOCAB), dim=-1)
    picked = logp.gather(1, targets.reshape(-1, 1)).reshape(-1)
    return -(picked * weights.reshape(-1)).sum() / weights.sum()


# ---------------------------------------------------------------- qtlab names and layouts


def to_qtlab(model, t):
    """PyTorch-named tensors (weights or their gradients) -> qtlab's parameter paths/layouts.

    qtlab stores a Linear weight as [in, out], fuses Q, K and V into one `qkv` Linear (output
    columns Q | K | V), and stacks the per-head gates along a leading head axis: w1 [H, DH, n],
    bias1 [H, 1, n] (and w2 [H, n, 1], bias2 [H, 1, 1] for the MLP gate). All of these are linear
    rearrangements, so gradients map the same way as weights.
    """
    out = {}

    def lin(src, dst):
        out[dst + ".weight"] = t[src + ".weight"].T
        out[dst + ".bias"] = t[src + ".bias"]

    def ln(src, dst):
        out[dst + ".gamma"] = t[src + ".weight"]
        out[dst + ".beta"] = t[src + ".bias"]

    out["tokens.weight"] = t["tok_emb"]
    out["positions"] = t["pos_emb"]
    if model == "bert":
        ln("emb_ln", "emb_ln")
    for i in range(LAYERS):
        s, q = f"layer{i}.", f"layers.{i}."
        qkv = [s + n for n in "qkv"]
        out[q + "attn.qkv.weight"] = np.concatenate([t[n + ".weight"].T for n in qkv], axis=1)
        out[q + "attn.qkv.bias"] = np.concatenate([t[n + ".bias"] for n in qkv])
        lin(s + "o", q + "attn.out")
        # Linear gate: fc -> w1/bias1; MLP gate: fc1 -> w1/bias1, fc2 -> w2/bias2.
        for src, k in (("fc", "1"), ("fc1", "1"), ("fc2", "2")):
            if s + f"gate0.{src}.weight" not in t:
                continue
            heads = [s + f"gate{h}.{src}" for h in range(HEADS)]
            out[q + f"attn.gate.w{k}"] = np.stack([t[n + ".weight"].T for n in heads])
            out[q + f"attn.gate.bias{k}"] = np.stack([t[n + ".bias"][None, :] for n in heads])
        ln(s + "attn_ln", q + "attn_ln")
        ln(s + "ffn_ln", q + "ffn_ln")
        lin(s + "fc1", q + "fc1")
        lin(s + "fc2", q + "fc2")
    if model == "bert":
        lin("head_dense", "head_dense")
        ln("head_ln", "head_ln")
        out["head_bias"] = t["head_bias"]
    else:
        ln("final_ln", "final_ln")
    return out


def array(a, digits):
    a = np.asarray(a)
    return {"shape": list(a.shape), "values": [float(f"{v:.{digits}g}") for v in a.reshape(-1)]}


# ---------------------------------------------------------------- one forward and backward


def run(model, seed):
    rng = np.random.default_rng(seed)
    gate = "mlp" if model == "bert" else "linear"
    weights = draw_weights(rng, model, gate)
    ids, targets, loss_w = (bert_batch if model == "bert" else opt_batch)(rng)
    forward = bert_forward if model == "bert" else opt_forward
    base = f"model={model}&layers={LAYERS}&d={D}&heads={HEADS}&ffn={FFN}&seq={SEQ}&batch={BATCH}"
    specs = {
        "vanilla": base + "&attn=vanilla",
        "clipped": base + (f"&attn=clipped&gamma={BERT_GAMMA}&zeta={BERT_ZETA}"
                           if model == "bert" else f"&attn=clipped&alpha={OPT_ALPHA:g}"),
        "gated": base + f"&attn=gated&gate={gate}",
    }
    variants = {}
    for variant, spec in specs.items():
        # Gate weights exist only in the gated model; the rest is shared by all three.
        p = {n: torch.tensor(v, dtype=torch.float64, requires_grad=True)
             for n, v in weights.items() if variant == "gated" or ".gate" not in n}
        record = []
        logits = forward(p, torch.tensor(ids), variant, record)
        loss = loss_fn(logits, torch.tensor(targets), torch.tensor(loss_w, dtype=torch.float64))
        loss.backward()
        grads = to_qtlab(model, {n: t.grad.numpy() for n, t in p.items()})
        entry = {
            "spec": spec,
            "loss": float(f"{loss.item():.10g}"),
            "logits": array(logits.detach().numpy().reshape(BATCH * SEQ, VOCAB), 7),
            "grads": {n: array(g, 7) for n, g in grads.items()},
        }
        if variant == "clipped":
            entry["clip"] = clip_report(record, *clip_params(model))
        variants[variant] = entry
        print(f"{model}/{variant}: loss {loss.item():.6f}" +
              (f", clip {entry['clip']}" if variant == "clipped" else ""))
    return {
        "about": "Generated by scripts/golden.py (see its header); do not edit by hand.",
        "model": model,
        "seed": seed,
        "dims": {"d_model": D, "heads": HEADS, "layers": LAYERS, "ffn": FFN, "seq": SEQ,
                 "batch": BATCH, "vocab": VOCAB},
        "inputs": {"ids": ids.tolist(), "targets": targets.reshape(-1).tolist(),
                   "weights": loss_w.reshape(-1).tolist()},
        # 9 significant digits: every float32 weight reads back exactly.
        "params": {n: array(v, 9) for n, v in to_qtlab(model, weights).items()},
        "variants": variants,
    }


def clip_params(model):
    return (BERT_GAMMA, BERT_ZETA) if model == "bert" else (-OPT_ALPHA / SEQ, 1.0)


def clip_report(softmaxes, gamma, zeta):
    """How much the clip acts, and how far any probability is from a clip boundary.

    A softmax output within float32 noise of −γ/(ζ−γ) or (1−γ)/(ζ−γ) could be clipped on one
    side and not on the other, which changes its gradient: the fixture is only fair if the
    margin is well above f32 rounding (asserted). Exact 0s (masked keys) and exact 1s (a
    causal row with one key) are excluded: they sit far from, or exactly on, a boundary in
    both implementations alike, and their softmax gradient is 0 anyway.
    """
    p = torch.cat([s.reshape(-1) for s in softmaxes])
    p = p[(p > 0) & (p < 1)]
    lo, hi = -gamma / (zeta - gamma), (1 - gamma) / (zeta - gamma)
    margin = torch.minimum((p - lo).abs(), (p - hi).abs()).min().item()
    assert margin > 1e-5, f"a probability is {margin:.2e} from a clip boundary; change the seed"
    return {"low": int((p < lo).sum()), "high": int((p > hi).sum()), "total": int(p.numel()),
            "margin": float(f"{margin:.3g}")}


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    for i, model in enumerate(["bert", "opt"]):
        fixture = run(model, SEED + i)
        path = os.path.join(OUT_DIR, f"{model}.json")
        with open(path, "w") as f:
            json.dump(fixture, f, separators=(",", ":"))
            f.write("\n")
        print(f"wrote {os.path.normpath(path)} ({os.path.getsize(path) // 1024} KiB)")


if __name__ == "__main__":
    main()
