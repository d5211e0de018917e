// Causal (prefill) self-attention with grouped-query heads.
#pragma once

namespace arkvale {

enum class KeyStats { None = 0, Sum = 1, Last = 2 };

struct CausalAttention {
  const float* q;  // [tokens, heads, head_dim]
  const float* k;  // [tokens, kv_heads, head_dim], keys already rotated
  const float* v;  // [tokens, kv_heads, head_dim]
  float* out;      // [tokens, heads, head_dim], overwritten
  // [tokens], overwritten when stats != None: per-key probability averaged over
  // heads, summed over every query (Sum) or the last query's (Last).
  float* key_scores;
  int tokens, heads, kv_heads, head_dim;
  float scale;
  KeyStats stats;
};

// Query head h reads KV head h / (heads / kv_heads); heads % kv_heads == 0.
void causal_attention(const CausalAttention& a);

}  // namespace arkvale
