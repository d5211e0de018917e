// Decode attention over a paged KV pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace arkvale {

struct PagedAttention {
  const float* q;             // [batch, heads, head_dim]
  const float* kv;            // pool: [slot][K|V][kv_head][token][head_dim]
  const int32_t* page_table;  // [batch, groups, max_pages] slots, in order
  const int32_t* page_counts; // [batch, groups] pages used per list
  const int32_t* last_lens;   // [batch, groups] tokens in each list's last page
  float* out;                 // [batch, heads, head_dim], overwritten
  // [batch, groups, max_pages * page_size] or null: each listed token's
  // probability averaged over the heads of the list's group; overwritten.
  float* token_scores;
  int batch, groups, max_pages, heads, kv_heads, head_dim, page_size;
  size_t slots;  // pages in the pool
  float scale;
};

// Empty when every list is well formed (1..max_pages pages, 1..page_size tokens
// in the last, slots inside the pool), else what is wrong. Reading a bad slot
// would touch memory outside the pool, so callers check before running.
std::string check_page_lists(const PagedAttention& a);

// The heads of group g are [g * heads / groups, (g + 1) * heads / groups); head
// h reads KV head h / (heads / kv_heads).
void paged_attention(const PagedAttention& a);

}  // namespace arkvale
