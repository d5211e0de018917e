// Tests of the addon's bookkeeping that needs no GPU: the caching allocator (over
// a fake slab source), the staging ring's placement, page runs and byte
// formatting. Built beside the addon (build/Release/arkvale_native_tests) and run
// by src/native-logic.test.ts. Prints one line per failed check; exit code 1 on
// any failure.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "../caching_allocator.h"
#include "../errors.h"
#include "../page_runs.h"
#include "../ring_space.h"

using arkvale::AllocatorStats;
using arkvale::CachingAllocator;

namespace {

int failures = 0;
int checks = 0;

void check(bool ok, const std::string& what) {
  checks++;
  if (!ok) {
    failures++;
    std::printf("FAIL %s\n", what.c_str());
  }
}

constexpr size_t MiB = size_t(1) << 20;

// Hands out address ranges (no memory behind them) up to a capacity.
class FakeSlabs final : public arkvale::SlabSource {
 public:
  explicit FakeSlabs(size_t capacity) : capacity_(capacity) {}
  bool allocate(size_t bytes, uintptr_t* base) override {
    if (used_ + bytes > capacity_) return false;
    *base = next_;
    next_ += bytes + 4096;  // gaps, so no two slabs touch
    used_ += bytes;
    live_[*base] = bytes;
    return true;
  }
  void release(uintptr_t base, size_t bytes) override {
    check(live_.count(base) == 1 && live_[base] == bytes, "release returns a live slab whole");
    live_.erase(base);
    used_ -= bytes;
  }
  size_t used() const { return used_; }

 private:
  size_t capacity_;
  size_t used_ = 0;
  uintptr_t next_ = uintptr_t(1) << 40;
  std::map<uintptr_t, size_t> live_;
};

void test_rounding_and_slabs() {
  FakeSlabs slabs(1024 * MiB);
  CachingAllocator a(slabs);
  std::vector<uintptr_t> small;
  for (int i = 0; i < 100; i++) small.push_back(a.allocate(1000));
  bool aligned = true;
  for (uintptr_t p : small) aligned = aligned && p % 256 == 0 && p != 0;
  check(aligned, "small blocks are 256-byte aligned");
  AllocatorStats s = a.stats();
  check(s.slabs == 1 && s.reserved_bytes == 2 * MiB, "100 small blocks share one 2 MiB slab");
  check(s.allocated_bytes == 100 * 1024, "a 1000-byte request takes 1024 bytes");
  check(a.allocate(0) % 256 == 0, "a 0-byte request gets a block");
  const uintptr_t five = a.allocate(5 * MiB);
  check(a.stats().reserved_bytes == 22 * MiB, "a 5 MiB request opens a 20 MiB slab");
  a.allocate(5 * MiB);
  check(a.stats().slabs == 2, "a second 5 MiB block shares that slab");
  a.allocate(50 * MiB + 1);
  check(a.stats().reserved_bytes == (22 + 52) * MiB, "a request over 20 MiB gets a slab rounded up to 2 MiB");
  check(CachingAllocator::slab_size_for(CachingAllocator::rounded_size(MiB)) == 2 * MiB, "1 MiB is still small");
  check(CachingAllocator::slab_size_for(CachingAllocator::rounded_size(MiB + 1)) == 20 * MiB, "1 MiB + 1 is large");
  check(a.free(five) == CachingAllocator::FreeResult::Ok, "free of a live block");
  check(a.stats().source_calls == 3, "three slabs, three source calls");
}

void test_coalescing_and_release() {
  FakeSlabs slabs(1024 * MiB);
  CachingAllocator a(slabs);
  const uintptr_t x = a.allocate(4096);
  const uintptr_t y = a.allocate(4096);
  const uintptr_t z = a.allocate(4096);
  check(y == x + 4096 && z == y + 4096, "blocks are carved in address order");
  a.free(y);
  a.free(x);
  check(a.stats().free_blocks == 2, "x and y merge; the slab's tail stays a separate free block");
  a.free(z);
  AllocatorStats s = a.stats();
  check(s.free_blocks == 1 && s.allocated_bytes == 0, "everything merges back into one block");
  check(a.allocate(3 * 4096) == x, "a merged block is reused from its start");
  a.free(x);
  a.release_cached();
  s = a.stats();
  check(s.slabs == 0 && s.reserved_bytes == 0 && slabs.used() == 0, "releaseCached returns fully free slabs");
}

void test_best_fit_and_reuse() {
  FakeSlabs slabs(1024 * MiB);
  CachingAllocator a(slabs);
  const uintptr_t p1 = a.allocate(10 * 1024);
  const uintptr_t guard1 = a.allocate(256);
  const uintptr_t p2 = a.allocate(3 * 1024);
  const uintptr_t guard2 = a.allocate(256);
  (void)guard1;
  (void)guard2;
  a.free(p1);
  a.free(p2);
  check(a.allocate(2 * 1024) == p2, "best fit takes the smallest hole that fits");
  const uint64_t calls = a.stats().source_calls;
  const uintptr_t big = a.allocate(64 * MiB);
  a.free(big);
  check(a.allocate(64 * MiB) == big, "a freed large block is reused");
  check(a.stats().source_calls == calls + 1, "reuse costs no new slab");
}

void test_bad_frees() {
  FakeSlabs slabs(1024 * MiB);
  CachingAllocator a(slabs);
  const uintptr_t p = a.allocate(1000);
  const uintptr_t q = a.allocate(1000);
  check(a.free(p + 256) == CachingAllocator::FreeResult::Interior, "a pointer inside a block is refused");
  check(a.free(12345) == CachingAllocator::FreeResult::Unknown, "an unknown pointer is refused");
  check(a.free(p) == CachingAllocator::FreeResult::Ok, "free");
  check(a.free(p) == CachingAllocator::FreeResult::DoubleFree, "a double free is refused");
  check(a.free(q) == CachingAllocator::FreeResult::Ok, "free of the neighbour after a refused double free");
}

void test_out_of_memory_retry() {
  FakeSlabs slabs(40 * MiB);
  CachingAllocator a(slabs);
  a.allocate(1000);                          // 2 MiB slab, stays in use
  const uintptr_t large = a.allocate(20 * MiB);  // 20 MiB slab
  a.free(large);                             // cached
  check(a.allocate(22 * MiB) != 0, "out of memory releases cached slabs and retries");
  check(a.stats().reserved_bytes == 24 * MiB, "the cached 20 MiB slab went back before the retry");
  check(a.allocate(30 * MiB) == 0, "a request nothing can satisfy fails with 0");
  check(a.allocate(SIZE_MAX - 10) == 0, "an absurd request fails with 0, without overflow");
}

void test_churn() {
  FakeSlabs slabs(size_t(64) << 30);
  CachingAllocator a(slabs);
  std::mt19937 rng(7);
  std::map<uintptr_t, size_t> live;
  bool disjoint = true;
  bool all_succeeded = true;
  for (int step = 0; step < 20000; step++) {
    if (live.empty() || rng() % 3 != 0) {
      const size_t bytes = rng() % 4 == 0 ? (rng() % (40 * MiB)) : (rng() % (64 * 1024));
      const uintptr_t p = a.allocate(bytes);
      if (p == 0) {
        all_succeeded = false;
        continue;
      }
      const size_t size = CachingAllocator::rounded_size(bytes);
      auto next = live.lower_bound(p);
      if (next != live.end() && next->first < p + size) disjoint = false;
      if (next != live.begin() && std::prev(next)->first + std::prev(next)->second > p) disjoint = false;
      live[p] = size;
    } else {
      auto it = live.begin();
      std::advance(it, rng() % live.size());
      a.free(it->first);
      live.erase(it);
    }
    if (live.size() > 400) {
      for (auto& entry : live) a.free(entry.first);
      live.clear();
    }
  }
  check(all_succeeded, "every churn allocation succeeds");
  check(disjoint, "live blocks never overlap under churn");
  size_t sum = 0;
  for (auto& entry : live) sum += entry.second;
  // A large block is handed out whole when splitting would leave 1 MiB or less.
  check(a.stats().allocated_bytes >= sum && a.stats().allocated_bytes <= sum + live.size() * MiB,
        "allocatedBytes covers the live blocks, within the no-split slack");
  for (auto& entry : live) a.free(entry.first);
  check(a.stats().allocated_bytes == 0 && a.stats().free_blocks == a.stats().slabs, "freeing everything merges every slab back whole");
  check(a.stats().source_calls < 400, "20000 operations need few slabs (got " + std::to_string(a.stats().source_calls) + ")");
}

void test_ring_space() {
  arkvale::RingSpace ring(100);
  std::vector<uint64_t> wait;
  check(ring.place(40, &wait) == 0 && wait.empty(), "the first piece goes at 0");
  ring.commit(0, 40, 1);
  check(ring.place(40, &wait) == 40 && wait.empty(), "the second after it");
  ring.commit(40, 40, 2);
  check(ring.place(30, &wait) == 0 && wait.size() == 1 && wait[0] == 1, "a piece that does not fit wraps and waits for what it overlaps");
  ring.commit(0, 30, 3);
  wait.clear();
  check(ring.place(20, &wait) == 30 && wait.size() == 1 && wait[0] == 2, "overlap with the second piece only");
  ring.commit(30, 20, 4);
  wait.clear();
  check(ring.place(100, &wait) == 0 && wait.size() == 2, "a whole-ring piece waits for everything in flight");
  check(ring.in_flight() == 0, "waited pieces are forgotten");
}

void test_page_runs() {
  const int32_t dst[] = {4, 5, 6, 9, 10, 2, 3};
  const int32_t src[] = {0, 1, 2, 3, 7, 8, 9};
  const auto runs = arkvale::page_runs(dst, src, 7);
  check(runs.size() == 4, "runs break where either side is not consecutive (got " + std::to_string(runs.size()) + ")");
  check(runs.size() == 4 && runs[0].pages == 3 && runs[0].dst_slot == 4 && runs[0].src_slot == 0, "first run: 3 pages 4<-0");
  check(runs.size() == 4 && runs[1].pages == 1 && runs[2].pages == 1 && runs[3].pages == 2, "then 1, 1 and 2 pages");
  check(arkvale::page_runs(dst, src, 0).empty(), "no slots, no runs");
}

void test_format_bytes() {
  check(arkvale::format_bytes(1.5 * 1024 * MiB) == "1.50 GiB", "1.50 GiB");
  check(arkvale::format_bytes(139.8 * 1024 * MiB) == "139.8 GiB", "139.8 GiB");
  check(arkvale::format_bytes(512) == "512 B", "512 B");
  check(arkvale::format_bytes(20 * MiB) == "20.00 MiB", "20.00 MiB");
}

}  // namespace

int main() {
  test_rounding_and_slabs();
  test_coalescing_and_release();
  test_best_fit_and_reuse();
  test_bad_frees();
  test_out_of_memory_retry();
  test_churn();
  test_ring_space();
  test_page_runs();
  test_format_bytes();
  std::printf("%d of %d native checks passed\n", checks - failures, checks);
  return failures == 0 ? 0 : 1;
}
