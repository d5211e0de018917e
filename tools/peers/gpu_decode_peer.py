"""The PyTorch peers of tools/bench/decode-bench.mjs, at the same model shape with
random weights. Peers only: never part of the product.

- `sdpa-eager`: a lean decode loop, a preallocated KV cache per layer, flash
  scaled_dot_product_attention over all of it (Full), one step per Python call;
- `sdpa-graph`: the same step at a fixed context captured once as a CUDA graph and
  replayed, so launches cost nothing (the fairest Full peer: it is bandwidth-bound);
- `transformers`: Hugging Face LlamaForCausalLM (sdpa attention), prefilled then
  decoded with its own cache (only with --transformers; it prefills every context).

Every step ends with the token ids on the host, as generation needs them. Times are the
median of CUDA-event intervals.

    python3 tools/peers/gpu_decode_peer.py [--shape llama2-7b] [--batch 4]
        [--contexts 10240,20480,30720] [--steps 16] [--transformers] [--out FILE]
"""
import argparse
import json
import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

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


# Untimed steps before each timed run (--warmup), set by main.
WARMUP = 0


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2]


def timed(fn, steps):
    """Median ms of `fn` between CUDA events, each ending with the tokens on the host, after `--warmup` untimed steps."""
    for _ in range(WARMUP):
        fn().cpu()
    times = []
    for _ in range(steps):
        e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        e0.record()
        tok = fn()
        e1.record()
        tok.cpu()
        times.append(e0.elapsed_time(e1))
    return median(times[2:])


def param_count(c):
    E, H, KV, D = c['hidden'], c['heads'], c['kv_heads'], c['head_dim']
    per_layer = E * H * D * 2 + E * KV * D * 2 + 3 * E * c['mlp'] + 2 * E
    return c['layers'] * per_layer + 2 * c['vocab'] * E + E


def lean_peers(c, a, dev, dt):
    torch.manual_seed(0)
    H, KV, D, E = c['heads'], c['kv_heads'], c['head_dim'], c['hidden']
    new = lambda *s: (torch.rand(*s, device=dev, dtype=dt) * 2 - 1) * 0.0346
    layers = [dict(q=new(H * D, E), k=new(KV * D, E), v=new(KV * D, E), o=new(E, H * D), g=new(c['mlp'], E), u=new(c['mlp'], E), d=new(E, c['mlp']),
                   n1=torch.ones(E, device=dev, dtype=dt), n2=torch.ones(E, device=dev, dtype=dt)) for _ in range(c['layers'])]
    embed, head, norm = new(c['vocab'], E), new(c['vocab'], E), torch.ones(E, device=dev, dtype=dt)
    inv = 1.0 / (c['theta'] ** (torch.arange(0, D, 2, device=dev).float() / D))
    weight_bytes = param_count(c) * 2
    rows = []
    for ctx in [int(x) for x in a.contexts.split(',')]:
        B, L = a.batch, ctx + WARMUP + a.steps + 1
        kcache = [torch.randn(B, KV, L, D, device=dev, dtype=dt) for _ in range(c['layers'])]
        vcache = [torch.randn(B, KV, L, D, device=dev, dtype=dt) for _ in range(c['layers'])]
        kv_bytes = 2 * c['layers'] * B * KV * ctx * D * 2

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

        with torch.no_grad(), sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION]):
            tok = torch.randint(0, c['vocab'], (B,), device=dev)
            state = {'pos': ctx, 'tok': tok}

            def eager():
                state['tok'] = step(state['pos'], state['tok'])
                state['pos'] += 1
                return state['tok']

            eager_ms = timed(eager, a.steps)
            # The graph: one step at context `ctx` (the same position each replay).
            static_tok = tok.clone()
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    static_out = step(ctx, static_tok)
            torch.cuda.current_stream().wait_stream(side)
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                static_out = step(ctx, static_tok)

            def replay():
                graph.replay()
                return static_out

            graph_ms = timed(replay, a.steps)
        for peer, ms in (('sdpa-eager', eager_ms), ('sdpa-graph', graph_ms)):
            rows.append(dict(peer=peer, context=ctx, batch=B, decodeMsPerStep=round(ms, 2), tokensPerSecond=round(B * 1000 / ms, 1),
                             bytesPerStepGB=round((kv_bytes + weight_bytes) / 1e9, 1), effectiveTBps=round((kv_bytes + weight_bytes) / ms / 1e9, 2)))
            print(f"{peer}: context {ctx}, batch {B}: {ms:.2f} ms/step ({(kv_bytes + weight_bytes) / ms / 1e9:.2f} TB/s of KV and weights)", flush=True)
        del kcache, vcache, graph
        torch.cuda.empty_cache()
    del layers, embed, head
    torch.cuda.empty_cache()
    return rows


def transformers_peer(c, a, dev, dt):
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=c['vocab'], hidden_size=c['hidden'], intermediate_size=c['mlp'], num_hidden_layers=c['layers'],
                      num_attention_heads=c['heads'], num_key_value_heads=c['kv_heads'], rope_theta=c['theta'],
                      max_position_embeddings=max(int(x) for x in a.contexts.split(',')) + WARMUP + a.steps + 8)
    cfg._attn_implementation = 'sdpa'
    torch.manual_seed(0)
    with torch.device(dev):
        model = LlamaForCausalLM._from_config(cfg, torch_dtype=dt).eval()
    rows = []
    for ctx in [int(x) for x in a.contexts.split(',')]:
        B = a.batch
        ids = torch.randint(0, c['vocab'], (B, ctx), device=dev)
        with torch.no_grad():
            out = model(input_ids=ids, use_cache=True, logits_to_keep=1)
            state = {'cache': out.past_key_values, 'tok': out.logits[:, -1].argmax(-1)}

            def step():
                o = model(input_ids=state['tok'][:, None], past_key_values=state['cache'], use_cache=True)
                state['cache'], state['tok'] = o.past_key_values, o.logits[:, -1].argmax(-1)
                return state['tok']

            ms = timed(step, a.steps)
        rows.append(dict(peer='transformers', context=ctx, batch=B, decodeMsPerStep=round(ms, 2), tokensPerSecond=round(B * 1000 / ms, 1)))
        print(f"transformers LlamaForCausalLM: context {ctx}, batch {B}: {ms:.2f} ms/step", flush=True)
        del out, state
        torch.cuda.empty_cache()
    return rows


def copy_bandwidth(dev):
    """Device-to-device copy rate, counting bytes read and written (TB/s)."""
    src = torch.empty(2 << 30, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    e0.record()
    for _ in range(10):
        dst.copy_(src)
    e1.record()
    e1.synchronize()
    rate = 2 * 10 * src.numel() / (e0.elapsed_time(e1) / 1000) / 1e12
    del src, dst
    torch.cuda.empty_cache()
    return round(rate, 2)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--shape', default='llama2-7b')
    ap.add_argument('--batch', type=int, default=4)
    ap.add_argument('--contexts', default='10240,20480,30720')
    ap.add_argument('--steps', type=int, default=16)
    ap.add_argument('--warmup', type=int, default=0, help='untimed steps before the timed ones (the engine bench takes the same number)')
    ap.add_argument('--transformers', action='store_true')
    ap.add_argument('--out')
    a = ap.parse_args()
    global WARMUP
    WARMUP = a.warmup
    c = SHAPES[a.shape]
    dev, dt = 'cuda', torch.float16
    report = dict(warmup=a.warmup, shape=a.shape, device=torch.cuda.get_device_name(), torch=torch.__version__, copyTBps=copy_bandwidth(dev))
    print(f"{report['device']}: device-to-device copy {report['copyTBps']} TB/s", flush=True)
    report['results'] = lean_peers(c, a, dev, dt)
    if a.transformers:
        try:
            report['results'] += transformers_peer(c, a, dev, dt)
        except Exception as e:  # the peer is optional: record why it did not run
            report['transformersError'] = f'{type(e).__name__}: {e}'
            print(f"transformers peer failed: {report['transformersError']}", flush=True)
    if a.out:
        json.dump(report, open(a.out, 'w'), indent=2)


if __name__ == '__main__':
    main()
