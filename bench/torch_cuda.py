#!/usr/bin/env python3
"""PyTorch side of bench/bench_cuda.c: the same work on the same GPU, eager, float32, TF32 off.

usage: python3 bench/torch_cuda.py MLP_STEPS CNN_STEPS GPT_STEPS SECTIONS

SECTIONS: a comma-separated subset of norm,attn,conv,mlp,cnn,gpt. Prints "BENCH <name>
<value> <unit>" lines named as bench_cuda's figures with a _torch suffix; without PyTorch or
CUDA it says so and prints none (exit 0).

Timing as on the C side: ops run `inner` times between two torch.cuda.synchronize() after
warm-up, best of 5 regions; a training step (zero_grad, forward, cross-entropy, backward,
optimizer step, loss.item()) is timed one at a time and the median is taken. The models are
bench/torch_train.py's (the same as bench_train's and bench_cuda's leibniz models), with the
causal mask made once on the GPU; data: random uint8 images scaled to [0, 1] and random
labels/tokens, made once on the GPU, NBATCH batches cycled."""
import math
import sys
import time

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except Exception as e:  # noqa: BLE001 - any import failure means: no PyTorch here
    print("torch_cuda.py: PyTorch not available (%s): skipped" % e)
    sys.exit(0)

NBATCH = 4


class Block(nn.Module):
    """torch_train.py's pre-norm block (fused qkv with bias, causal, GELU MLP of 4 D);
    sdpa=True uses F.scaled_dot_product_attention for the attention."""

    def __init__(self, d, heads, ctx, sdpa):
        super().__init__()
        self.heads = heads
        self.sdpa = sdpa
        self.norm1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.norm2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 4 * d)
        self.fc2 = nn.Linear(4 * d, d)
        self.register_buffer("mask", torch.ones(ctx, ctx, dtype=torch.bool).triu(1), persistent=False)

    def attn(self, x):
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(x).split(d, dim=2)
        q = q.view(b, t, h, d // h).transpose(1, 2)
        k = k.view(b, t, h, d // h).transpose(1, 2)
        v = v.view(b, t, h, d // h).transpose(1, 2)
        if self.sdpa:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            s = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
            s = s.masked_fill(self.mask[:t, :t], float("-inf"))
            y = F.softmax(s, dim=-1) @ v
        return self.out(y.transpose(1, 2).reshape(b, t, d))

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class GPT(nn.Module):
    def __init__(self, vocab, d, ctx, layers, heads, sdpa=False):
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(ctx, d) * 0.02)
        self.blocks = nn.Sequential(*[Block(d, heads, ctx, sdpa) for _ in range(layers)])
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, tokens):
        h = self.embed(tokens) + self.pos[: tokens.shape[1]]
        return self.head(self.norm(self.blocks(h)))


def bench(name, value, unit, digits):
    print("BENCH %s %.*f %s" % (name, digits, value, unit), flush=True)


def gpu_time(fn, warm, inner, reps=5):
    for _ in range(warm):
        fn()
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / inner)
    return best


def bench_norm(dev):
    x = torch.randn(16384, 1024, device=dev)
    w = torch.ones(1024, device=dev)
    b = torch.zeros(1024, device=dev)
    nbytes = 2.0 * x.numel() * 4
    with torch.no_grad():
        t = gpu_time(lambda: torch.softmax(x, -1), 2, 50)
        bench("cuda_softmax_GBs_torch", nbytes / t * 1e-9, "GB/s", 0)
        t = gpu_time(lambda: F.layer_norm(x, (1024,), w, b, 1e-5), 2, 50)
        bench("cuda_layer_norm_GBs_torch", nbytes / t * 1e-9, "GB/s", 0)


def bench_attn(dev):
    B, H, T, D = 16, 8, 1024, 64
    fwd = 2.0 * B * H * T * T * D  # the causal half of 4 B H T^2 D
    q, k, v = (torch.randn(B, H, T, D, device=dev) for _ in range(3))
    with torch.no_grad():
        t = gpu_time(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=True), 2, 5)
    bench("cuda_attention_fwd_TFLOPs_torch", fwd / t * 1e-12, "TFLOP/s", 2)
    qg, kg, vg = (a.clone().requires_grad_() for a in (q, k, v))

    def fb():
        loss = F.scaled_dot_product_attention(qg, kg, vg, is_causal=True).sum()
        torch.autograd.grad(loss, (qg, kg, vg))

    t = gpu_time(fb, 2, 3)
    bench("cuda_attention_fwd_bwd_TFLOPs_torch", 3.5 * fwd / t * 1e-12, "TFLOP/s", 2)


def bench_conv(dev):
    x = torch.rand(128, 1, 28, 28, device=dev)
    w1 = ((torch.rand(32, 1, 3, 3, device=dev) * 2 - 1) / 3).requires_grad_()
    b1 = ((torch.rand(32, device=dev) * 2 - 1) / 3).requires_grad_()
    w2 = ((torch.rand(64, 32, 3, 3, device=dev) * 2 - 1) / 17).requires_grad_()
    b2 = ((torch.rand(64, device=dev) * 2 - 1) / 17).requires_grad_()

    def front():
        h = F.max_pool2d(F.relu(F.conv2d(x, w1, b1, padding=1)), 2)
        return F.relu(F.conv2d(h, w2, b2, padding=1))

    def fwd():
        with torch.no_grad():
            front()

    def fb():
        torch.autograd.grad(front().sum(), (w1, b1, w2, b2))

    bench("cuda_conv_fwd_ms_torch", 1e3 * gpu_time(fwd, 3, 20), "ms", 3)
    bench("cuda_conv_fwd_bwd_ms_torch", 1e3 * gpu_time(fb, 3, 20), "ms", 3)


def images(shape, dev):
    return torch.randint(0, 256, shape, dtype=torch.uint8, device=dev).float() / 255.0


def train(which, steps, dev, sdpa=False):
    torch.manual_seed(0)
    if which == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10)).to(dev)
        opt = torch.optim.Adam(model.parameters())
        xs = [images((128, 784), dev) for _ in range(NBATCH)]
        ys = [torch.randint(0, 10, (128,), device=dev) for _ in range(NBATCH)]
    elif which == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(),
                              nn.Linear(128, 10)).to(dev)
        opt = torch.optim.Adam(model.parameters())
        xs = [images((128, 1, 28, 28), dev) for _ in range(NBATCH)]
        ys = [torch.randint(0, 10, (128,), device=dev) for _ in range(NBATCH)]
    else:
        model = GPT(65, 128, 128, 4, 4, sdpa).to(dev)
        opt = torch.optim.AdamW(model.parameters())
        xs = [torch.randint(0, 65, (32, 128), device=dev) for _ in range(NBATCH)]
        ys = [torch.randint(0, 65, (32, 128), device=dev) for _ in range(NBATCH)]

    def step(i):
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(xs[i % NBATCH])
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), ys[i % NBATCH].reshape(-1))
        loss.backward()
        opt.step()
        if not math.isfinite(loss.item()):
            sys.exit("torch_cuda.py: loss is not finite")
        return time.perf_counter() - t0

    for i in range(NBATCH + 4):
        step(i)
    times = sorted(step(i) for i in range(steps))
    return times[steps // 2]


def main():
    if len(sys.argv) < 5:
        sys.exit("usage: torch_cuda.py MLP_STEPS CNN_STEPS GPT_STEPS SECTIONS")
    steps = {"mlp": max(5, int(sys.argv[1])), "cnn": max(5, int(sys.argv[2])),
             "gpt": max(5, int(sys.argv[3]))}
    sections = [s for s in sys.argv[4].split(",") if s]
    if not torch.cuda.is_available():
        print("torch_cuda.py: PyTorch %s has no CUDA device: skipped" % torch.__version__)
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    dev = torch.device("cuda")
    print("torch_cuda.py: PyTorch %s, CUDA %s, cuDNN %s, %s" % (
        torch.__version__, torch.version.cuda, torch.backends.cudnn.version(),
        torch.cuda.get_device_name(0)), flush=True)
    t0 = time.perf_counter()
    if "norm" in sections:
        bench_norm(dev)
    if "attn" in sections:
        bench_attn(dev)
    if "conv" in sections:
        bench_conv(dev)
    if "mlp" in sections:
        bench("cuda_mlp_step_ms_torch", 1e3 * train("mlp", steps["mlp"], dev), "ms", 3)
    if "cnn" in sections:
        bench("cuda_cnn_step_ms_torch", 1e3 * train("cnn", steps["cnn"], dev), "ms", 3)
    if "gpt" in sections:
        tok = 32.0 * 128
        bench("cuda_gpt_tokens_per_s_torch", tok / train("gpt", steps["gpt"], dev), "tokens/s", 0)
        bench("cuda_gpt_tokens_per_s_torch_sdpa", tok / train("gpt", steps["gpt"], dev, sdpa=True),
              "tokens/s", 0)
    print("torch_cuda.py: %.1f s" % (time.perf_counter() - t0), flush=True)


if __name__ == "__main__":
    main()
