// Flash-attention-style prefill: each task takes one head and one block of
// queries, walks the key blocks up to the diagonal with an online softmax
// (running max and sum per query, output rescaled as the max grows), and never
// materialises the T x T score matrix. Both products (Q K^T and P V) reuse the
// packed GEMM kernels.
//
// Per-key statistics need each query's final softmax, which the online pass only
// knows at its end, so they take a second pass over key blocks that recomputes
// the scores against the saved row max and sum. Its tasks own disjoint key
// ranges, so they add up probabilities without atomics.
#include "attention_causal.h"

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <limits>

#include "buffer.h"
#include "gemm_kernels.h"
#include "isa.h"
#include "thread_pool.h"

namespace arkvale {
namespace {

// Query rows per task (a multiple of MR) and keys per step (a multiple of NR).
constexpr int kBQ = 96;
constexpr int kBK = 64;
constexpr int kMaxNR = Avx2Isa::NR;
constexpr int kMR = Avx2Isa::MR;  // the same for both ISAs (asserted below)
constexpr double kParallelMinWork = 1 << 16;

struct CausalJob {
  CausalAttention a;
  float* row_max;    // [heads][tokens]: each query's final softmax max
  float* row_sum;    // [heads][tokens]: and normaliser
  float* scratch;    // per worker, scratch_floats each
  size_t scratch_floats;
};

// Per-worker scratch, laid out for the larger NR of the two ISAs.
struct Scratch {
  float *qp, *kp, *s, *pp, *vp, *o, *m, *l;
};

size_t scratch_floats(int d) {
  const size_t qp = static_cast<size_t>(round_up(kBQ, kMR)) * d;
  const size_t kp = static_cast<size_t>(round_up(kBK, kMaxNR)) * d;
  const size_t s = static_cast<size_t>(kBQ) * kBK;
  const size_t pp = static_cast<size_t>(round_up(kBQ, kMR)) * kBK;
  const size_t vp = static_cast<size_t>(round_up(d, kMaxNR)) * kBK;
  const size_t o = static_cast<size_t>(kBQ) * d;
  return qp + kp + s + pp + vp + o + 2 * kBQ;
}

Scratch scratch_for(const CausalJob& j, int worker) {
  const int d = j.a.head_dim;
  Scratch s;
  s.qp = j.scratch + worker * j.scratch_floats;
  s.kp = s.qp + static_cast<size_t>(round_up(kBQ, kMR)) * d;
  s.s = s.kp + static_cast<size_t>(round_up(kBK, kMaxNR)) * d;
  s.pp = s.s + kBQ * kBK;
  s.vp = s.pp + static_cast<size_t>(round_up(kBQ, kMR)) * kBK;
  s.o = s.vp + static_cast<size_t>(round_up(d, kMaxNR)) * kBK;
  s.m = s.o + static_cast<size_t>(kBQ) * d;
  s.l = s.m + kBQ;
  return s;
}

int query_blocks(const CausalAttention& a) { return (a.tokens + kBQ - 1) / kBQ; }
int kv_head_of(const CausalAttention& a, int head) { return head / (a.heads / a.kv_heads); }

// S = packed queries . packed keys^T, bq x bk, rows kBK floats apart.
template <class I>
ARKVALE_INLINE void block_scores(const CausalAttention& a, const Scratch& s, int bq, int bk) {
  macro_kernel<I>(bq, bk, a.head_dim, s.qp, s.kp, s.s, kBK, false);
}

template <class I>
ARKVALE_INLINE void pack_queries(const CausalAttention& a, int head, int q0, int bq, float* qp) {
  const size_t stride = static_cast<size_t>(a.heads) * a.head_dim;
  pack_a<I>(a.q + (static_cast<size_t>(q0) * a.heads + head) * a.head_dim, stride, bq, a.head_dim, qp);
}

template <class I>
ARKVALE_INLINE void pack_keys(const CausalAttention& a, int kv_head, int k0, int bk, float* kp) {
  const size_t stride = static_cast<size_t>(a.kv_heads) * a.head_dim;
  pack_b_nk<I>(a.k + (static_cast<size_t>(k0) * a.kv_heads + kv_head) * a.head_dim, stride, bk, a.head_dim, kp);
}

// One head, one block of queries: the online-softmax pass.
template <class I>
ARKVALE_INLINE void attend_block(const CausalJob& j, int task, int worker) {
  const CausalAttention& a = j.a;
  const int d = a.head_dim;
  // Later query blocks see more keys: hand them out first.
  const int qb = query_blocks(a) - 1 - task / a.heads;
  const int head = task % a.heads;
  const int kvh = kv_head_of(a, head);
  const int q0 = qb * kBQ;
  const int bq = std::min(kBQ, a.tokens - q0);
  const Scratch s = scratch_for(j, worker);

  pack_queries<I>(a, head, q0, bq, s.qp);
  std::fill(s.o, s.o + static_cast<size_t>(bq) * d, 0.0f);
  std::fill(s.m, s.m + bq, -std::numeric_limits<float>::infinity());
  std::fill(s.l, s.l + bq, 0.0f);

  const int key_end = q0 + bq;  // causal: no query of the block sees past this
  for (int k0 = 0; k0 < key_end; k0 += kBK) {
    const int bk = std::min(kBK, key_end - k0);
    pack_keys<I>(a, kvh, k0, bk, s.kp);
    block_scores<I>(a, s, bq, bk);
    for (int r = 0; r < bq; ++r) {
      float* row = s.s + r * kBK;
      const int valid = std::min(bk, q0 + r - k0 + 1);
      if (valid <= 0) {
        std::fill(row, row + bk, 0.0f);
        continue;
      }
      float row_max = -std::numeric_limits<float>::infinity();
      for (int c = 0; c < valid; ++c) row_max = std::max(row_max, row[c] * a.scale);
      const float m_new = std::max(s.m[r], row_max);
      for (int c = 0; c < valid; ++c) row[c] = row[c] * a.scale - m_new;
      exp_row<I>(row, valid);
      std::fill(row + valid, row + bk, 0.0f);
      float sum = 0.0f;
      for (int c = 0; c < valid; ++c) sum += row[c];
      const float correction = std::exp(s.m[r] - m_new);  // 0 on the first block
      s.l[r] = s.l[r] * correction + sum;
      s.m[r] = m_new;
      if (correction != 1.0f) {
        float* o = s.o + static_cast<size_t>(r) * d;
        for (int e = 0; e < d; ++e) o[e] *= correction;
      }
    }
    pack_a<I>(s.s, kBK, bq, bk, s.pp);
    const size_t stride = static_cast<size_t>(a.kv_heads) * d;
    pack_b_kn<I>(a.v + (static_cast<size_t>(k0) * a.kv_heads + kvh) * d, stride, bk, d, s.vp);
    macro_kernel<I>(bq, d, bk, s.pp, s.vp, s.o, d, true);
  }

  for (int r = 0; r < bq; ++r) {
    const float inv = 1.0f / s.l[r];
    const float* o = s.o + static_cast<size_t>(r) * d;
    float* dst = a.out + (static_cast<size_t>(q0 + r) * a.heads + head) * d;
    for (int e = 0; e < d; ++e) dst[e] = o[e] * inv;
    j.row_max[static_cast<size_t>(head) * a.tokens + q0 + r] = s.m[r];
    j.row_sum[static_cast<size_t>(head) * a.tokens + q0 + r] = s.l[r];
  }
}

// Key statistics for one block of keys, every head: probabilities recomputed from
// the saved softmax max/sum and added up per key.
template <class I>
ARKVALE_INLINE void key_stats_block(const CausalJob& j, int block, int worker) {
  const CausalAttention& a = j.a;
  const int k0 = block * kBK;
  const int bk = std::min(kBK, a.tokens - k0);
  const Scratch s = scratch_for(j, worker);
  float totals[kBK] = {};
  // Queries before k0 give these keys no weight; `Last` only counts the last one.
  const int first_query = a.stats == KeyStats::Last ? a.tokens - 1 : k0;
  const int heads_per_kv = a.heads / a.kv_heads;
  for (int kvh = 0; kvh < a.kv_heads; ++kvh) {
    pack_keys<I>(a, kvh, k0, bk, s.kp);
    for (int head = kvh * heads_per_kv; head < (kvh + 1) * heads_per_kv; ++head) {
      for (int q0 = first_query; q0 < a.tokens; q0 += kBQ) {
        const int bq = std::min(kBQ, a.tokens - q0);
        pack_queries<I>(a, head, q0, bq, s.qp);
        block_scores<I>(a, s, bq, bk);
        for (int r = 0; r < bq; ++r) {
          float* row = s.s + r * kBK;
          const int valid = std::min(bk, q0 + r - k0 + 1);
          if (valid <= 0) continue;
          const size_t at = static_cast<size_t>(head) * a.tokens + q0 + r;
          const float m = j.row_max[at];
          const float inv = 1.0f / j.row_sum[at];
          for (int c = 0; c < valid; ++c) row[c] = row[c] * a.scale - m;
          exp_row<I>(row, valid);
          for (int c = 0; c < valid; ++c) totals[c] += row[c] * inv;
        }
      }
    }
  }
  for (int c = 0; c < bk; ++c) a.key_scores[k0 + c] = totals[c] / a.heads;
}

struct CausalKernels {
  void (*attend_block)(const CausalJob&, int, int);
  void (*key_stats_block)(const CausalJob&, int, int);
};

void attend_block_generic(const CausalJob& j, int task, int worker) { attend_block<GenericIsa>(j, task, worker); }
void key_stats_block_generic(const CausalJob& j, int block, int worker) { key_stats_block<GenericIsa>(j, block, worker); }
constexpr CausalKernels kGenericKernels{attend_block_generic, key_stats_block_generic};

#if ARKVALE_HAVE_AVX2_PATH
ARKVALE_TARGET_AVX2 void attend_block_avx2(const CausalJob& j, int task, int worker) { attend_block<Avx2Isa>(j, task, worker); }
ARKVALE_TARGET_AVX2 void key_stats_block_avx2(const CausalJob& j, int block, int worker) {
  key_stats_block<Avx2Isa>(j, block, worker);
}
constexpr CausalKernels kAvx2Kernels{attend_block_avx2, key_stats_block_avx2};
#else
constexpr CausalKernels kAvx2Kernels = kGenericKernels;
#endif

static_assert(GenericIsa::MR == kMR, "scratch sizing assumes one MR");
static_assert(kBQ % kMR == 0, "query blocks fill whole A panels");
static_assert(kBK % GenericIsa::NR == 0 && kBK % Avx2Isa::NR == 0, "key blocks fill whole B panels");

}  // namespace

void causal_attention(const CausalAttention& a) {
  if (a.tokens <= 0) return;
  const CausalKernels& kernels = pick_kernel(&kGenericKernels, &kAvx2Kernels)[0];
  ThreadPool& pool = ThreadPool::instance();
  const double work = 0.5 * a.tokens * a.tokens * a.heads * a.head_dim;
  const int workers = work >= kParallelMinWork ? pool.threads() : 1;

  CausalJob job{a, nullptr, nullptr, nullptr, scratch_floats(a.head_dim)};
  FloatBuffer row_stats(2 * static_cast<size_t>(a.heads) * a.tokens);
  FloatBuffer scratch(static_cast<size_t>(workers) * job.scratch_floats);
  job.row_max = row_stats.data();
  job.row_sum = row_stats.data() + static_cast<size_t>(a.heads) * a.tokens;
  job.scratch = scratch.data();

  const size_t tasks = static_cast<size_t>(query_blocks(a)) * a.heads;
  auto attend = [&](size_t task, int worker) { kernels.attend_block(job, static_cast<int>(task), worker); };
  if (workers > 1) {
    pool.run(tasks, attend);
  } else {
    for (size_t t = 0; t < tasks; ++t) attend(t, 0);
  }
  if (a.stats == KeyStats::None) return;

  const size_t blocks = (a.tokens + kBK - 1) / kBK;
  auto stats = [&](size_t block, int worker) { kernels.key_stats_block(job, static_cast<int>(block), worker); };
  if (workers > 1) {
    pool.run(blocks, stats);
  } else {
    for (size_t b = 0; b < blocks; ++b) stats(b, 0);
  }
}

}  // namespace arkvale
