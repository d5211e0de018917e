"""A tiny randomly initialised Qwen2 checkpoint and its golden outputs, made with
transformers' own code (issue 24), in the layout of models/tiny-retrieval/golden.json.

Run where transformers and torch exist (the GPU machine), from the repository root:

    python3 tools/peers/make_qwen2_fixture.py OUT_DIR

It writes OUT_DIR/{config.json, model.safetensors, tokenizer.json, tokenizer_config.json,
golden.json}: Qwen2ForCausalLM with q/k/v biases (random, non-zero), tied embeddings,
RoPE theta 1e6, GQA 4 query heads over 2 KV heads, the bundled model's byte-level
tokenizer (so the fixture needs no download), and per case the prompt ids, 24 greedy
tokens and the last position's top-10 logits, in float32. Copy OUT_DIR to
models/tiny-qwen2.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, PreTrainedTokenizerFast

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "models" / "tiny-retrieval"
CASES = [
    ("short", "The old farmer painted"),
    ("passkey", "The pass key is 71432. Remember it. The pass key is"),
    ("unicode", "émigré 中文 🙂 and a newline\nhere"),
]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(24)
    tokenizer = PreTrainedTokenizerFast(tokenizer_file=str(BUNDLED / "tokenizer.json"))
    config = Qwen2Config(
        vocab_size=856,
        hidden_size=256,
        intermediate_size=768,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        rope_theta=1_000_000.0,
        rms_norm_eps=1e-6,
        tie_word_embeddings=True,
        use_sliding_window=False,
        bos_token_id=1,
        eos_token_id=2,
        torch_dtype="float32",
    )
    model = Qwen2ForCausalLM(config).eval()
    with torch.no_grad():
        # Random biases, well away from zero, so that a loader that drops them fails the golden test.
        for layer in model.model.layers:
            for proj in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj):
                proj.bias.normal_(0.0, 0.5)
    model.save_pretrained(out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(BUNDLED / name, out / name)

    cases = []
    for name, text in CASES:
        ids = tokenizer(text)["input_ids"]
        with torch.no_grad():
            generated = model.generate(torch.tensor([ids]), max_new_tokens=24, do_sample=False, eos_token_id=None, pad_token_id=0)
            logits = model(torch.tensor([ids])).logits[0, -1]
        top = torch.topk(logits, 10)
        cases.append(
            {
                "name": name,
                "text": text,
                "ids": ids,
                "greedy": generated[0, len(ids) :].tolist(),
                "last_logits_top10": {"ids": top.indices.tolist(), "values": [round(v, 5) for v in top.values.tolist()]},
            }
        )
    golden = {"model": "tiny-qwen2", "reference": "transformers Qwen2ForCausalLM, float32", "cases": cases}
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {out}: {sum(p.numel() for p in model.parameters())} parameters, {len(cases)} golden cases")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python3 tools/peers/make_qwen2_fixture.py OUT_DIR")
    main(Path(sys.argv[1]))
