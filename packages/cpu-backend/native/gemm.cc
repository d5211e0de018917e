#include "gemm.h"

#include <algorithm>
#include <cstddef>

#include "buffer.h"
#include "gemm_kernels.h"
#include "isa.h"
#include "thread_pool.h"

namespace arkvale {
namespace {

// Cache blocking: an A block of kMC x kKC floats (120 KiB) stays in L2 while a
// B panel of kKC x NR (8-16 KiB) stays in L1. kNC, the width of one task's
// output tile, is a multiple of every ISA's NR.
constexpr int kMC = 120;
constexpr int kKC = 256;
constexpr int kNC = 256;
// Below this many rows of x, packing the weights costs more than it saves: dot
// products straight from the weight rows are as fast and read them only once.
constexpr int kPackMinRows = 16;
// Products smaller than this many multiply-adds run on the calling thread alone.
constexpr double kParallelMinWork = 1 << 16;

struct GemmJob {
  const float* x;
  const float* w;
  float* out;
  int m, n, k;
  float* packed_b;        // every K block of B, panel by panel
  size_t packed_b_width;  // n rounded up to NR
  float* a_scratch;       // packed A, one block per worker
  int dot_rows_per_task;  // small-m path
};

int tiles_m(const GemmJob& j) { return (j.m + kMC - 1) / kMC; }
int tiles_n(const GemmJob& j) { return (j.n + kNC - 1) / kNC; }

// Packs all K blocks of one NR-column panel of B. K block pc starts at
// packed_b + pc * packed_b_width and holds its panels one after another.
template <class I>
ARKVALE_INLINE void pack_b_panel(const GemmJob& j, int panel) {
  const int c0 = panel * I::NR;
  const int cols = std::min(I::NR, j.n - c0);
  for (int pc = 0; pc < j.k; pc += kKC) {
    const int kc = std::min(kKC, j.k - pc);
    float* dst = j.packed_b + pc * j.packed_b_width + static_cast<size_t>(panel) * I::NR * kc;
    pack_b_nk<I>(j.w + static_cast<size_t>(c0) * j.k + pc, j.k, cols, kc, dst);
  }
}

// One kMC x kNC tile of the output, all of K.
template <class I>
ARKVALE_INLINE void compute_tile(const GemmJob& j, int tile, int worker) {
  const int ic = (tile % tiles_m(j)) * kMC;
  const int jc = (tile / tiles_m(j)) * kNC;
  const int mc = std::min(kMC, j.m - ic);
  const int nc = std::min(kNC, j.n - jc);
  float* ap = j.a_scratch + static_cast<size_t>(worker) * packed_a_size<I>(kMC, kKC);
  for (int pc = 0; pc < j.k; pc += kKC) {
    const int kc = std::min(kKC, j.k - pc);
    pack_a<I>(j.x + static_cast<size_t>(ic) * j.k + pc, j.k, mc, kc, ap);
    const float* bp = j.packed_b + pc * j.packed_b_width + static_cast<size_t>(jc) * kc;
    macro_kernel<I>(mc, nc, kc, ap, bp, j.out + static_cast<size_t>(ic) * j.n + jc, j.n, pc > 0);
  }
}

// Small m: rows [r0, r0 + count) of w against every row of x. Four weight rows at
// a time stay in L1 while every row of x meets them.
template <class I>
ARKVALE_INLINE void dot_chunk(const GemmJob& j, int chunk) {
  const int r0 = chunk * j.dot_rows_per_task;
  const int r1 = std::min(j.n, r0 + j.dot_rows_per_task);
  const size_t k = j.k;
  float dots[4];
  int r = r0;
  for (; r + 4 <= r1; r += 4) {
    for (int i = 0; i < j.m; ++i) {
      dot_rows<I, 4>(j.x + i * k, j.w + r * k, k, j.k, dots);
      for (int q = 0; q < 4; ++q) j.out[static_cast<size_t>(i) * j.n + r + q] = dots[q];
    }
  }
  for (; r < r1; ++r)
    for (int i = 0; i < j.m; ++i) dot_rows<I, 1>(j.x + i * k, j.w + r * k, k, j.k, j.out + static_cast<size_t>(i) * j.n + r);
}

struct GemmKernels {
  int nr;
  void (*pack_b_panel)(const GemmJob&, int);
  void (*compute_tile)(const GemmJob&, int, int);
  void (*dot_chunk)(const GemmJob&, int);
};

void pack_b_panel_generic(const GemmJob& j, int panel) { pack_b_panel<GenericIsa>(j, panel); }
void compute_tile_generic(const GemmJob& j, int tile, int worker) { compute_tile<GenericIsa>(j, tile, worker); }
void dot_chunk_generic(const GemmJob& j, int chunk) { dot_chunk<GenericIsa>(j, chunk); }
constexpr GemmKernels kGenericKernels{GenericIsa::NR, pack_b_panel_generic, compute_tile_generic, dot_chunk_generic};

#if ARKVALE_HAVE_AVX2_PATH
ARKVALE_TARGET_AVX2 void pack_b_panel_avx2(const GemmJob& j, int panel) { pack_b_panel<Avx2Isa>(j, panel); }
ARKVALE_TARGET_AVX2 void compute_tile_avx2(const GemmJob& j, int tile, int worker) { compute_tile<Avx2Isa>(j, tile, worker); }
ARKVALE_TARGET_AVX2 void dot_chunk_avx2(const GemmJob& j, int chunk) { dot_chunk<Avx2Isa>(j, chunk); }
constexpr GemmKernels kAvx2Kernels{Avx2Isa::NR, pack_b_panel_avx2, compute_tile_avx2, dot_chunk_avx2};
#else
constexpr GemmKernels kAvx2Kernels = kGenericKernels;
#endif

void matmul_small_m(GemmJob& job, const GemmKernels& kernels, bool parallel) {
  job.dot_rows_per_task = parallel ? 16 : job.n;
  const int chunks = (job.n + job.dot_rows_per_task - 1) / job.dot_rows_per_task;
  ThreadPool::instance().run(chunks, [&](size_t chunk, int) { kernels.dot_chunk(job, static_cast<int>(chunk)); });
}

void matmul_packed(GemmJob& job, const GemmKernels& kernels, bool parallel) {
  ThreadPool& pool = ThreadPool::instance();
  job.packed_b_width = static_cast<size_t>(round_up(job.n, kernels.nr));
  FloatBuffer packed_b(job.packed_b_width * job.k);
  // Sized for the larger MR of the two ISAs (both are 6) so one size fits both.
  FloatBuffer a_scratch(static_cast<size_t>(pool.threads()) * packed_a_size<Avx2Isa>(kMC, kKC));
  job.packed_b = packed_b.data();
  job.a_scratch = a_scratch.data();
  const int panels = static_cast<int>(job.packed_b_width) / kernels.nr;
  const int tiles = tiles_m(job) * tiles_n(job);
  if (!parallel) {
    for (int p = 0; p < panels; ++p) kernels.pack_b_panel(job, p);
    for (int t = 0; t < tiles; ++t) kernels.compute_tile(job, t, 0);
    return;
  }
  pool.run(panels, [&](size_t panel, int) { kernels.pack_b_panel(job, static_cast<int>(panel)); });
  pool.run(tiles, [&](size_t tile, int worker) { kernels.compute_tile(job, static_cast<int>(tile), worker); });
}

static_assert(GenericIsa::MR == Avx2Isa::MR, "a_scratch sizing assumes one MR");
static_assert(kNC % GenericIsa::NR == 0 && kNC % Avx2Isa::NR == 0, "tiles must start on a panel");

}  // namespace

void matmul(const float* x, const float* w, float* out, int m, int n, int k) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    std::fill(out, out + static_cast<size_t>(m) * n, 0.0f);
    return;
  }
  const GemmKernels& kernels = pick_kernel(&kGenericKernels, &kAvx2Kernels)[0];
  GemmJob job{x, w, out, m, n, k, nullptr, 0, nullptr, 0};
  const bool parallel = static_cast<double>(m) * n * k >= kParallelMinWork;
  if (m < kPackMinRows) {
    matmul_small_m(job, kernels, parallel);
  } else {
    matmul_packed(job, kernels, parallel);
  }
}

}  // namespace arkvale
