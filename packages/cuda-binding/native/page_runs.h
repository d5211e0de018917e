// copyPages moves pages between slot-indexed pools; consecutive slots on both
// sides move as one copy, so a recall of 12 adjacent pages is one cudaMemcpyAsync.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace arkvale {

struct PageRun {
  int64_t dst_slot;
  int64_t src_slot;
  int64_t pages;
};

inline std::vector<PageRun> page_runs(const int32_t* dst, const int32_t* src, size_t count) {
  std::vector<PageRun> runs;
  for (size_t i = 0; i < count; i++) {
    if (!runs.empty()) {
      PageRun& last = runs.back();
      if (dst[i] == last.dst_slot + last.pages && src[i] == last.src_slot + last.pages) {
        last.pages++;
        continue;
      }
    }
    runs.push_back({dst[i], src[i], 1});
  }
  return runs;
}

}  // namespace arkvale
