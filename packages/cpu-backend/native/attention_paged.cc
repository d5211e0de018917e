// Decode attention: one query per (batch row, head) against the tokens of its
// page list. Each task handles one (row, head): scores for every listed token
// (keys of a page are contiguous, so four at a time), one softmax, then the
// weighted sum of values. With token scores requested, each task keeps its
// probabilities and a final serial pass averages them over each group's heads,
// in head order, so no two tasks write the same output.
#include "attention_paged.h"

#include <algorithm>
#include <cstddef>
#include <limits>

#include "buffer.h"
#include "isa.h"
#include "simd.h"
#include "thread_pool.h"

namespace arkvale {
namespace {

constexpr double kParallelMinWork = 1 << 15;

struct PagedJob {
  PagedAttention a;
  float* probs;        // per task or per worker, list_tokens floats each
  bool probs_per_task;  // kept for token scores, else reused per worker
  size_t list_tokens;   // max_pages * page_size
};

size_t list_index(const PagedAttention& a, int row, int group) { return static_cast<size_t>(row) * a.groups + group; }

int tokens_listed(const PagedAttention& a, size_t list) {
  return (a.page_counts[list] - 1) * a.page_size + a.last_lens[list];
}

template <class I>
ARKVALE_INLINE void attend_head(const PagedJob& j, int task, int worker) {
  const PagedAttention& a = j.a;
  const int d = a.head_dim;
  const int row = task / a.heads;
  const int head = task % a.heads;
  const size_t list = list_index(a, row, head / (a.heads / a.groups));
  const int kvh = head / (a.heads / a.kv_heads);
  const int pages = a.page_counts[list];
  const int n = tokens_listed(a, list);
  const int32_t* slots = a.page_table + list * a.max_pages;
  const size_t head_elems = static_cast<size_t>(a.page_size) * d;
  const size_t page_elems = 2 * static_cast<size_t>(a.kv_heads) * head_elems;
  const float* q = a.q + static_cast<size_t>(task) * d;
  float* probs = j.probs + (j.probs_per_task ? static_cast<size_t>(task) : static_cast<size_t>(worker)) * j.list_tokens;

  // Every page but the last is full, so listed tokens are positions [0, n).
  for (int p = 0; p < pages; ++p) {
    const float* keys = a.kv + slots[p] * page_elems + kvh * head_elems;
    const int tokens = p == pages - 1 ? n - p * a.page_size : a.page_size;
    float* dst = probs + static_cast<size_t>(p) * a.page_size;
    int t = 0;
    for (; t + 4 <= tokens; t += 4) dot_rows<I, 4>(q, keys + t * d, d, d, dst + t);
    for (; t < tokens; ++t) dot_rows<I, 1>(q, keys + t * d, d, d, dst + t);
  }
  float max = -std::numeric_limits<float>::infinity();
  for (int t = 0; t < n; ++t) {
    probs[t] *= a.scale;
    max = std::max(max, probs[t]);
  }
  for (int t = 0; t < n; ++t) probs[t] -= max;
  exp_row<I>(probs, n);
  float sum = 0.0f;
  for (int t = 0; t < n; ++t) sum += probs[t];
  const float inv = 1.0f / sum;
  for (int t = 0; t < n; ++t) probs[t] *= inv;

  float* out = a.out + static_cast<size_t>(task) * d;
  std::fill(out, out + d, 0.0f);
  for (int p = 0; p < pages; ++p) {
    const float* values = a.kv + slots[p] * page_elems + (a.kv_heads + kvh) * head_elems;
    const int tokens = p == pages - 1 ? n - p * a.page_size : a.page_size;
    const float* weights = probs + static_cast<size_t>(p) * a.page_size;
    int t = 0;
    for (; t + 4 <= tokens; t += 4) axpy_rows<I, 4>(weights + t, values + t * d, d, d, out);
    for (; t < tokens; ++t) axpy_rows<I, 1>(weights + t, values + t * d, d, d, out);
  }
}

void attend_head_generic(const PagedJob& j, int task, int worker) { attend_head<GenericIsa>(j, task, worker); }
#if ARKVALE_HAVE_AVX2_PATH
ARKVALE_TARGET_AVX2 void attend_head_avx2(const PagedJob& j, int task, int worker) { attend_head<Avx2Isa>(j, task, worker); }
#else
constexpr auto attend_head_avx2 = attend_head_generic;
#endif

// token_scores[row, group, t] = mean over the group's heads of their probabilities.
void average_group_probs(const PagedJob& j) {
  const PagedAttention& a = j.a;
  const int per_group = a.heads / a.groups;
  for (int row = 0; row < a.batch; ++row) {
    for (int g = 0; g < a.groups; ++g) {
      const size_t list = list_index(a, row, g);
      float* dst = a.token_scores + list * j.list_tokens;
      std::fill(dst, dst + j.list_tokens, 0.0f);
      const int n = tokens_listed(a, list);
      for (int h = g * per_group; h < (g + 1) * per_group; ++h) {
        const float* src = j.probs + (static_cast<size_t>(row) * a.heads + h) * j.list_tokens;
        for (int t = 0; t < n; ++t) dst[t] += src[t] / per_group;
      }
    }
  }
}

}  // namespace

std::string check_page_lists(const PagedAttention& a) {
  for (int row = 0; row < a.batch; ++row) {
    for (int g = 0; g < a.groups; ++g) {
      const size_t list = list_index(a, row, g);
      const int pages = a.page_counts[list];
      const int last = a.last_lens[list];
      const std::string where = "row " + std::to_string(row) + " group " + std::to_string(g);
      if (pages < 1 || pages > a.max_pages || last < 1 || last > a.page_size) {
        return where + " lists " + std::to_string(pages) + " page(s) with " + std::to_string(last) +
               " token(s) in the last";
      }
      for (int p = 0; p < pages; ++p) {
        const int32_t slot = a.page_table[list * a.max_pages + p];
        if (slot < 0 || static_cast<size_t>(slot) >= a.slots) {
          return where + " page " + std::to_string(p) + ": slot " + std::to_string(slot) + " outside 0.." +
                 std::to_string(a.slots - 1);
        }
      }
    }
  }
  return {};
}

void paged_attention(const PagedAttention& a) {
  if (a.batch <= 0) return;
  const auto attend = pick_kernel(attend_head_generic, attend_head_avx2);
  ThreadPool& pool = ThreadPool::instance();
  const size_t tasks = static_cast<size_t>(a.batch) * a.heads;
  double work = 0;
  for (int row = 0; row < a.batch; ++row)
    for (int g = 0; g < a.groups; ++g) work += static_cast<double>(tokens_listed(a, list_index(a, row, g)));
  work *= 2.0 * a.head_dim * (a.heads / a.groups);
  const int workers = work >= kParallelMinWork ? pool.threads() : 1;

  PagedJob job{a, nullptr, a.token_scores != nullptr, static_cast<size_t>(a.max_pages) * a.page_size};
  FloatBuffer probs((job.probs_per_task ? tasks : static_cast<size_t>(workers)) * job.list_tokens);
  job.probs = probs.data();
  auto run_task = [&](size_t task, int worker) { attend(job, static_cast<int>(task), worker); };
  if (workers > 1) {
    pool.run(tasks, run_task);
  } else {
    for (size_t t = 0; t < tasks; ++t) run_task(t, 0);
  }
  if (a.token_scores) average_group_probs(job);
}

}  // namespace arkvale
