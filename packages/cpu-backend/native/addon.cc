// The JS face of the addon: positional-argument functions that run the kernels
// in place on the caller's typed arrays (outputs are allocated by the caller), and
// a few functions to inspect and configure the thread pool and instruction set.
// The calls are synchronous, like the Backend interface they serve.
#include <napi.h>

#include <string>

#include "attention_causal.h"
#include "attention_paged.h"
#include "gemm.h"
#include "isa.h"
#include "napi_args.h"
#include "thread_pool.h"

namespace arkvale {
namespace {

// matmul(x, w, out, m, n, k): out[m, n] = x[m, k] . w[n, k]^T
Napi::Value Matmul(const Napi::CallbackInfo& info) {
  const Args args(info, "matmul");
  const int m = args.integer(3, "m", 0);
  const int n = args.integer(4, "n", 0);
  const int k = args.integer(5, "k", 0);
  const float* x = args.f32(0, "x", args.product({m, k}));
  const float* w = args.f32(1, "w", args.product({n, k}));
  float* out = args.f32(2, "out", args.product({m, n}));
  matmul(x, w, out, m, n, k);
  return info.Env().Undefined();
}

// causalAttention(q, k, v, out, keyScores | null, tokens, heads, kvHeads, headDim,
// scale, stats) with stats 0 (none), 1 (sum) or 2 (last).
Napi::Value CausalAttentionFn(const Napi::CallbackInfo& info) {
  const Args args(info, "causalAttention");
  CausalAttention a{};
  a.tokens = args.integer(5, "tokens", 0);
  a.heads = args.integer(6, "heads", 1);
  a.kv_heads = args.integer(7, "kvHeads", 1);
  a.head_dim = args.integer(8, "headDim", 1);
  a.scale = static_cast<float>(args.number(9, "scale"));
  const int stats = args.integer(10, "stats", 0);
  if (a.heads % a.kv_heads != 0) args.fail<Napi::RangeError>("kvHeads must divide heads");
  if (stats > 2) args.fail<Napi::RangeError>("stats must be 0 (none), 1 (sum) or 2 (last)");
  a.stats = static_cast<KeyStats>(stats);
  a.q = args.f32(0, "q", args.product({a.tokens, a.heads, a.head_dim}));
  a.k = args.f32(1, "k", args.product({a.tokens, a.kv_heads, a.head_dim}));
  a.v = args.f32(2, "v", args.product({a.tokens, a.kv_heads, a.head_dim}));
  a.out = args.f32(3, "out", args.product({a.tokens, a.heads, a.head_dim}));
  a.key_scores = args.optional_f32(4, "keyScores", static_cast<size_t>(a.tokens));
  if ((a.key_scores != nullptr) != (a.stats != KeyStats::None)) {
    args.fail<Napi::TypeError>("keyScores must be given exactly when stats is requested");
  }
  causal_attention(a);
  return info.Env().Undefined();
}

// pagedAttention(q, kv, pageTable, pageCounts, lastPageLens, out, tokenScores | null,
// batch, groups, maxPages, heads, kvHeads, headDim, pageSize, scale)
Napi::Value PagedAttentionFn(const Napi::CallbackInfo& info) {
  const Args args(info, "pagedAttention");
  PagedAttention a{};
  a.batch = args.integer(7, "batch", 0);
  a.groups = args.integer(8, "groups", 1);
  a.max_pages = args.integer(9, "maxPages", 1);
  a.heads = args.integer(10, "heads", 1);
  a.kv_heads = args.integer(11, "kvHeads", 1);
  a.head_dim = args.integer(12, "headDim", 1);
  a.page_size = args.integer(13, "pageSize", 1);
  a.scale = static_cast<float>(args.number(14, "scale"));
  if (a.heads % a.groups != 0) args.fail<Napi::RangeError>("groups must divide heads");
  if (a.heads % a.kv_heads != 0) args.fail<Napi::RangeError>("kvHeads must divide heads");
  a.q = args.f32(0, "q", args.product({a.batch, a.heads, a.head_dim}));
  size_t pool_floats = 0;
  a.kv = args.f32_multiple(1, "kv", args.product({2, a.kv_heads, a.page_size, a.head_dim}), &pool_floats);
  a.slots = pool_floats / args.product({2, a.kv_heads, a.page_size, a.head_dim});
  a.page_table = args.i32(2, "pageTable", args.product({a.batch, a.groups, a.max_pages}));
  a.page_counts = args.i32(3, "pageCounts", args.product({a.batch, a.groups}));
  a.last_lens = args.i32(4, "lastPageLens", args.product({a.batch, a.groups}));
  a.out = args.f32(5, "out", args.product({a.batch, a.heads, a.head_dim}));
  a.token_scores = args.optional_f32(6, "tokenScores", args.product({a.batch, a.groups, a.max_pages, a.page_size}));
  const std::string problem = check_page_lists(a);
  if (!problem.empty()) args.fail<Napi::RangeError>(problem);
  paged_attention(a);
  return info.Env().Undefined();
}

Napi::Value Threads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ThreadPool::instance().threads());
}

Napi::Value DefaultThreads(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), ThreadPool::default_threads());
}

// setThreads(n): n threads in all (the caller included); returns the count. Meant
// for start-up, before kernels run from several JS threads.
Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  const Args args(info, "setThreads");
  const int threads = args.integer(0, "threads", 1);
  if (threads > 256) args.fail<Napi::RangeError>("threads must be at most 256");
  ThreadPool::instance().resize(threads);
  return Threads(info);
}

Napi::Value Simd(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), isa_name(active_isa())); }

// setSimd('auto' | 'generic' | 'avx2-fma'): returns the instruction set now used.
Napi::Value SetSimd(const Napi::CallbackInfo& info) {
  const Args args(info, "setSimd");
  if (info.Length() < 1 || !info[0].IsString()) args.fail<Napi::TypeError>("expected 'auto', 'generic' or 'avx2-fma'");
  const std::string name = info[0].As<Napi::String>().Utf8Value();
  if (name == "auto") {
    set_active_isa(cpu_supports_avx2() ? Isa::Avx2 : Isa::Generic);
  } else if (name == "generic") {
    set_active_isa(Isa::Generic);
  } else if (name == "avx2-fma") {
    if (!set_active_isa(Isa::Avx2)) args.fail<Napi::Error>("this CPU does not support AVX2 and FMA");
  } else {
    args.fail<Napi::TypeError>("expected 'auto', 'generic' or 'avx2-fma', got '" + name + "'");
  }
  return Simd(info);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("matmul", Napi::Function::New(env, Matmul, "matmul"));
  exports.Set("causalAttention", Napi::Function::New(env, CausalAttentionFn, "causalAttention"));
  exports.Set("pagedAttention", Napi::Function::New(env, PagedAttentionFn, "pagedAttention"));
  exports.Set("threads", Napi::Function::New(env, Threads, "threads"));
  exports.Set("defaultThreads", Napi::Function::New(env, DefaultThreads, "defaultThreads"));
  exports.Set("setThreads", Napi::Function::New(env, SetThreads, "setThreads"));
  exports.Set("simd", Napi::Function::New(env, Simd, "simd"));
  exports.Set("setSimd", Napi::Function::New(env, SetSimd, "setSimd"));
  return exports;
}

}  // namespace
}  // namespace arkvale

// The macro pastes the name into an identifier, so it needs an unqualified one.
static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return arkvale::Init(env, exports); }
NODE_API_MODULE(arkvale_cpu, InitModule)
