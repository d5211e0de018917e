"""The PyTorch peer of tools/scripts/decode-bench.mjs: a lean decode loop at the same model
shape with random weights, a preallocated KV cache per layer and
scaled_dot_product_attention over all of it (Full), timed with CUDA events. Peer only:
never part of the product.

    python3 tools/scripts/gpu_decode_peer.py [--shape llama2-7b] [--batch 4]
        [--contexts 10240,20480,30720] [--steps 16] [--out FILE]
"""
import argparse
import json
import torch
import torch.nn.functional as F

SHAPES = {
    'llama2-7b': dict(layers=32, hidden=4096, heads=32, kv_heads=32, head_dim=128, mlp=11008, vocab=32000, theta=10000.0),
    'llama3-8b': dict(layers=32, hidden=4096, heads=32, kv_heads=8, head_dim=128, mlp=14336, vocab=128256, theta=500000.0),
}


def rms_norm(x, w, eps=1e-5):
    v = x.float().pow(2).mean(-1, keepdim=True)
    return (x.float() * torch.rsqrt(v + eps)).to(x.dtype) * w


def rotate(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shape', default='llama2-7b')
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--contexts', default='10240,20480,30720')
    ap.add_argument('--steps', type=int, default=16)
    ap.add_argument('--out')
    a = ap.parse_args()
    c = SHAPES[a.shape]
    dev, dt = 'cuda', torch.float16
    torch.manual_seed(0)
    H, KV, D, E = c['heads'], c['kv_heads'], c['head_dim'], c['hidden']
    new = lambda *s: (torch.rand(*s, device=dev, dtype=dt) * 2 - 1) * 0.0346
    layers = [dict(q=new(H * D, E), k=new(KV * D, E), v=new(KV * D, E), o=new(E, H * D), g=new(c['mlp'], E), u=new(c['mlp'], E), d=new(E, c['mlp']),
                   n1=torch.ones(E, device=dev, dtype=dt), n2=torch.ones(E, device=dev, dtype=dt)) for _ in range(c['layers'])]
    embed, head, norm = new(c['vocab'], E), new(c['vocab'], E), torch.ones(E, device=dev, dtype=dt)
    inv = 1.0 / (c['theta'] ** (torch.arange(0, D, 2, device=dev).float() / D))
    results = []
    for ctx in [int(x) for x in a.contexts.split(',')]:
        B, L = a.batch, ctx + a.steps + 1
        kcache = [torch.randn(B, KV, L, D, device=dev, dtype=dt) for _ in range(c['layers'])]
        vcache = [torch.randn(B, KV, L, D, device=dev, dtype=dt) for _ in range(c['layers'])]
        tok = torch.randint(0, c['vocab'], (B,), device=dev)

        def step(pos, tok):
            ang = pos * inv
            cos, sin = torch.cos(ang).to(dt), torch.sin(ang).to(dt)
            x = embed[tok]
            for l, w in enumerate(layers):
                h = rms_norm(x, w['n1'])
                q = rotate((h @ w['q'].T).view(B, H, 1, D), cos, sin)
                k = rotate((h @ w['k'].T).view(B, KV, 1, D), cos, sin)
                kcache[l][:, :, pos] = k[:, :, 0]
                vcache[l][:, :, pos] = (h @ w['v'].T).view(B, KV, D)
                o = F.scaled_dot_product_attention(q, kcache[l][:, :, : pos + 1], vcache[l][:, :, : pos + 1], enable_gqa=KV != H)
                x = x + o.reshape(B, H * D) @ w['o'].T
                h2 = rms_norm(x, w['n2'])
                x = x + (F.silu(h2 @ w['g'].T) * (h2 @ w['u'].T)) @ w['d'].T
            return (rms_norm(x, norm) @ head.T).float().argmax(-1)

        times = []
        with torch.no_grad():
            for s in range(a.steps):
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                tok = step(ctx + s, tok)
                e1.record()
                tok.cpu()  # the token back on the host, as generation needs it
                times.append(e0.elapsed_time(e1))
        ms = sorted(times[2:])[len(times[2:]) // 2]
        kv_bytes = 2 * c['layers'] * B * KV * ctx * D * 2
        results.append(dict(context=ctx, batch=B, peer='pytorch-sdpa', decodeMsPerStep=round(ms, 2), kvGB=round(kv_bytes / 1e9, 1)))
        print(f"pytorch sdpa: context {ctx}, batch {B}: {ms:.2f} ms/step (KV {kv_bytes / 1e9:.1f} GB)", flush=True)
        del kcache, vcache
        torch.cuda.empty_cache()
    report = dict(shape=a.shape, device=torch.cuda.get_device_name(), torch=torch.__version__, results=results)
    if a.out:
        json.dump(report, open(a.out, 'w'), indent=2)


if __name__ == '__main__':
    main()
