// A caching device-memory allocator in the style of PyTorch's: memory comes from
// a few large slabs (cudaMalloc in the addon, a fake in the native tests) and is
// handed out in 256-byte aligned blocks, best fit, split on allocation and merged
// with free neighbours on release. Nothing here calls CUDA, so the bookkeeping is
// tested without a GPU (native/tests/allocator_test.cc).
//
// Pools: requests up to 1 MiB are carved from 2 MiB slabs; larger ones from
// slabs of max(20 MiB, request rounded up to 2 MiB). Keeping the pools apart stops
// small allocations from pinning large slabs. Blocks never move between slabs:
// only a slab's original base can be returned to cudaFree.
//
// Stream rule (the addon's, documented in the README): a freed block can be
// handed out again at once; work queued on the compute stream is ordered after
// the work that used it, so reuse is safe there. Memory used on another stream
// must be ordered before the free by the caller.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <set>

namespace arkvale {

// Where slabs come from.
class SlabSource {
 public:
  virtual ~SlabSource() = default;
  // Allocates `bytes` and stores the base address; false when out of memory.
  // Any other failure throws.
  virtual bool allocate(size_t bytes, uintptr_t* base) = 0;
  virtual void release(uintptr_t base, size_t bytes) = 0;
};

struct AllocatorStats {
  size_t reserved_bytes = 0;   // sum of the slabs held
  size_t allocated_bytes = 0;  // sum of the blocks handed out (rounded sizes)
  size_t slabs = 0;
  size_t free_blocks = 0;
  uint64_t source_calls = 0;   // SlabSource::allocate calls, failed ones included
};

class CachingAllocator {
 public:
  static constexpr size_t kAlignment = 256;
  static constexpr size_t kSmallRequest = size_t(1) << 20;  // <= 1 MiB: small pool
  static constexpr size_t kSmallSlab = size_t(2) << 20;
  static constexpr size_t kLargeSlabMin = size_t(20) << 20;
  static constexpr size_t kLargeRounding = size_t(2) << 20;

  enum class FreeResult { Ok, Unknown, DoubleFree, Interior };

  explicit CachingAllocator(SlabSource& source) : source_(source) {}
  // Forgets the bookkeeping but does not return slabs: at process exit the CUDA
  // runtime may already be gone.
  ~CachingAllocator();
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // A block of at least `bytes` (0 counts as 1), or 0 when the source is out of
  // memory even after every fully free slab was released.
  uintptr_t allocate(size_t bytes);
  FreeResult free(uintptr_t ptr);
  // Returns every fully free slab to the source.
  void release_cached();
  AllocatorStats stats() const;
  // Bytes held in slabs but not handed out.
  size_t cached_bytes() const { return reserved_ - allocated_; }
  // The rounded size a request of `bytes` takes (0 on overflow).
  static size_t rounded_size(size_t bytes);
  // The slab size a rounded request needs when no cached block fits.
  static size_t slab_size_for(size_t rounded);

 private:
  struct Block {
    uintptr_t ptr;
    size_t size;
    bool free;
    bool small;
    Block* prev;  // neighbours in the same slab, by address
    Block* next;
  };
  struct BySizeThenAddress {
    bool operator()(const Block* a, const Block* b) const {
      return a->size != b->size ? a->size < b->size : a->ptr < b->ptr;
    }
  };
  using FreeSet = std::set<Block*, BySizeThenAddress>;

  FreeSet& pool(bool small) { return small ? free_small_ : free_large_; }
  Block* best_fit(bool small, size_t size);
  Block* new_slab(bool small, size_t size);
  bool grow(size_t bytes, uintptr_t* base);
  void split(Block* block, size_t size);
  Block* merge_into(Block* left, Block* right);

  SlabSource& source_;
  FreeSet free_small_;
  FreeSet free_large_;
  std::map<uintptr_t, Block*> blocks_;  // every block, free or not, by address
  size_t reserved_ = 0;
  size_t allocated_ = 0;
  size_t slabs_ = 0;
  uint64_t source_calls_ = 0;
};

}  // namespace arkvale
