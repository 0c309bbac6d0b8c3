#!/usr/bin/python3
"""PyTorch side of bench/bench_train.c: the same models, batches and optimizers, on the CPU.

usage: /usr/bin/python3 bench/torch_train.py {mnist_mlp|mnist_cnn|gpt} THREADS STEPS [serve]

Prints "TORCH <model> <median step wall seconds> <median step CPU seconds>" (CPU time of
the process, all threads: steadier than wall time on a shared machine). With "serve", the
model is built once and a round (one untimed step, then STEPS timed ones, then the TORCH
line) runs for every line read on stdin, until end of input: bench_train alternates these
rounds with its own, so that both sides sample the same stretches of the machine's speed. Data: random uint8 images scaled to [0, 1] and
random labels/tokens, made once and held in memory, a few batches cycled (as the C side).
Each step: zero_grad, forward, cross-entropy, backward, optimizer step, loss.item()."""
import math
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NBATCH = 4


class Block(nn.Module):
    """Pre-norm block as lz_nn_transformer_block: fused qkv with bias, causal attention,
    GELU (erf) MLP of 4 D."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)

    def attn(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
        mask = torch.ones(t, t, dtype=torch.bool).triu(1)
        s = s.masked_fill(mask, float("-inf"))
        y = F.softmax(s, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, d, ctx, layers, heads):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(ctx, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):
        h = self.embed(tokens) + self.pos[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(h)))


def images(shape, g):
    return torch.randint(0, 256, shape, dtype=torch.uint8, generator=g).float() / 255.0


def main():
    which, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if which == "mnist_mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        opt = torch.optim.Adam(model.parameters())
        xs = [images((128, 784), g) for _ in range(NBATCH)]
        ys = [torch.randint(0, 10, (128,), generator=g) for _ in range(NBATCH)]
        warmup = 5
    elif which == "mnist_cnn":
        model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                              nn.Linear(128, 10))
        opt = torch.optim.Adam(model.parameters())
        xs = [images((128, 1, 28, 28), g) for _ in range(NBATCH)]
        ys = [torch.randint(0, 10, (128,), generator=g) for _ in range(NBATCH)]
        warmup = 3
    elif which == "gpt":
        model = GPT(65, 128, 128, 4, 4)
        opt = torch.optim.AdamW(model.parameters())
        xs = [torch.randint(0, 65, (32, 128), generator=g) for _ in range(NBATCH)]
        ys = [torch.randint(0, 65, (32, 128), generator=g) for _ in range(NBATCH)]
        warmup = 3
    else:
        sys.exit("torch_train.py: unknown model " + which)

    def step(i):
        t0, c0 = time.perf_counter(), time.process_time()
        opt.zero_grad(set_to_none=True)
        logits = model(xs[i % NBATCH])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ys[i % NBATCH].reshape(-1))
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            sys.exit("torch_train.py: loss is not finite")
        return time.perf_counter() - t0, time.process_time() - c0

    def measure():
        runs = [step(i) for i in range(steps)]
        wall = sorted(r[0] for r in runs)[steps // 2]
        cpu = sorted(r[1] for r in runs)[steps // 2]
        print("TORCH %s %.6f %.6f" % (which, wall, cpu), flush=True)

    for i in range(warmup):
        step(i)
    if len(sys.argv) > 4 and sys.argv[4] == "serve":
        for _ in sys.stdin:
            step(0)
            measure()
    else:
        measure()


if __name__ == "__main__":
    main()
