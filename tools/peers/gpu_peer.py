"""PyTorch on the same shapes as the kernel harness's timed jobs (the peer to beat).

Run on the GPU machine next to `.gpu/kernels/harness`; prints one JSON line. Shapes:
paged decode, batch 8, 32 query / 8 KV heads, head dim 128, 4096 cached tokens, f16;
causal prefill, 4096 tokens, 32 / 8 heads, head dim 128, f16. Times are the mean of
`reps` back-to-back launches between CUDA events, as the harness measures.
"""
import json

import torch
import torch.nn.functional as F


def mean_us(fn, reps):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(reps):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) * 1000 / reps


def best_sdpa(q, k, v, causal, reps):
    """Best of SDPA with native GQA and with K/V expanded to every query head."""
    group = q.shape[1] // k.shape[1]
    ke, ve = k.repeat_interleave(group, 1), v.repeat_interleave(group, 1)
    return min(
        mean_us(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal, enable_gqa=True), reps),
        mean_us(lambda: F.scaled_dot_product_attention(q, ke, ve, is_causal=causal), reps),
    )


dev, f16 = "cuda", torch.float16
b, h, kv, d, t = 8, 32, 8, 128, 4096
decode = best_sdpa(torch.randn(b, h, 1, d, dtype=f16, device=dev), torch.randn(b, kv, t, d, dtype=f16, device=dev),
                   torch.randn(b, kv, t, d, dtype=f16, device=dev), False, 50)
prefill = best_sdpa(torch.randn(1, h, t, d, dtype=f16, device=dev), torch.randn(1, kv, t, d, dtype=f16, device=dev),
                    torch.randn(1, kv, t, d, dtype=f16, device=dev), True, 10)
print(json.dumps({"peer": f"torch {torch.__version__} sdpa", "card": torch.cuda.get_device_name(),
                  "paged_decode_us": round(decode, 3), "causal_prefill_us": round(prefill, 3)}))
