#!/usr/bin/env python3
"""PyTorch eager twin of `qtlab bench`'s reference config, for a side-by-side ms/step.

The same model and step as qtlab's reference config (core: `bench::reference_spec`): BERT,
post-LN, 2 layers, d_model 64, 4 heads, FFN 256 (GELU), learned positions, tied MLM decoder
behind a dense-GELU-LayerNorm head; batch 16 × seq 32; masked-LM loss on 15 % of positions;
AdamW (lr 1e-3, β 0.9/0.999, ε 1e-8, weight decay 0.01 on matrices) after global-norm
clipping at 1. A step is forward + backward + clip + AdamW, timed around the whole thing.

PyTorch is never a test dependency: `scripts/bench-vs-torch.sh` installs it on demand into
the cache and runs this beside `qtlab bench --backend cpu`, interleaved, so both see the
same machine load.

    python scripts/torch-bench.py [--threads 2] [--steps 200] [--vocab 70]
"""

import argparse
import math
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Layer(nn.Module):
    def __init__(self, d, heads, d_ff):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.attn_ln = nn.LayerNorm(d, eps=1e-12)
        self.fc1 = nn.Linear(d, d_ff)
        self.fc2 = nn.Linear(d_ff, d)
        self.ffn_ln = nn.LayerNorm(d, eps=1e-12)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # 3 × [b, h, t, dh]
        # Eager softmax, as qtlab computes it (no fused SDPA kernel on either side).
        s = (q @ k.transpose(-1, -2)) / math.sqrt(d // h)  # [b, h, t, t]
        a = s.softmax(-1) @ v  # [b, h, t, dh]
        a = self.out(a.transpose(1, 2).reshape(b, t, d))  # [b, t, d]
        x = self.attn_ln(x + a)
        return self.ffn_ln(x + self.fc2(F.gelu(self.fc1(x))))


class Bert(nn.Module):
    def __init__(self, vocab, d=64, heads=4, d_ff=256, layers=2, seq=32):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.02)
        self.emb_ln = nn.LayerNorm(d, eps=1e-12)
        self.layers = nn.ModuleList(Layer(d, heads, d_ff) for _ in range(layers))
        self.head_dense = nn.Linear(d, d)
        self.head_ln = nn.LayerNorm(d, eps=1e-12)
        self.head_bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, tokens):
        x = self.emb_ln(self.tok(tokens) + self.pos)  # [b, t, d]
        for layer in self.layers:
            x = layer(x)
        x = self.head_ln(F.gelu(self.head_dense(x)))
        return x @ self.tok.weight.t() + self.head_bias  # [b, t, vocab]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--vocab", type=int, default=70)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=32)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Bert(a.vocab, seq=a.seq)
    decay = [q for n, q in model.named_parameters() if q.dim() >= 2]
    rest = [q for n, q in model.named_parameters() if q.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.01}, {"params": rest, "weight_decay": 0.0}],
        lr=1e-3, betas=(0.9, 0.999), eps=1e-8, foreach=True,
    )
    g = torch.Generator().manual_seed(1)

    def step():
        tokens = torch.randint(6, a.vocab, (a.batch, a.seq), generator=g)
        w = (torch.rand(a.batch, a.seq, generator=g) < 0.15).float()
        logits = model(tokens)
        nll = F.cross_entropy(logits.view(-1, a.vocab), tokens.view(-1), reduction="none")
        loss = (nll * w.view(-1)).sum() / w.sum().clamp(min=1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()  # the readback qtlab's step also does

    t0 = time.perf_counter()
    step()
    first = (time.perf_counter() - t0) * 1e3
    for _ in range(3):
        step()
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    mean = sum(times) / len(times)
    print(
        f"torch threads {a.threads}  ms/step mean {mean:7.2f}  median {times[len(times) // 2]:7.2f}  "
        f"min {times[0]:7.2f}  first step {first:8.1f} ms  (PyTorch {torch.__version__}, eager)"
    )


if __name__ == "__main__":
    main()
