#include "caching_allocator.h"

#include <algorithm>
#include <vector>

namespace arkvale {
namespace {

size_t round_up(size_t n, size_t unit) { return (n + unit - 1) / unit * unit; }

// Splitting leaves a free remainder; in the large pool a remainder of 1 MiB or
// less could only ever serve small requests, which never come to this pool, so the
// block is handed out whole instead.
bool worth_splitting(bool small, size_t remainder) {
  return small ? remainder >= CachingAllocator::kAlignment : remainder > CachingAllocator::kSmallRequest;
}

}  // namespace

CachingAllocator::~CachingAllocator() {
  for (auto& entry : blocks_) delete entry.second;
}

size_t CachingAllocator::rounded_size(size_t bytes) {
  if (bytes > SIZE_MAX - kLargeRounding) return 0;
  return round_up(std::max<size_t>(bytes, 1), kAlignment);
}

size_t CachingAllocator::slab_size_for(size_t rounded) {
  if (rounded <= kSmallRequest) return kSmallSlab;
  return std::max(kLargeSlabMin, round_up(rounded, kLargeRounding));
}

uintptr_t CachingAllocator::allocate(size_t bytes) {
  const size_t size = rounded_size(bytes);
  if (size == 0) return 0;
  const bool small = size <= kSmallRequest;
  Block* block = best_fit(small, size);
  if (block == nullptr) block = new_slab(small, size);
  if (block == nullptr) return 0;
  pool(small).erase(block);
  split(block, size);
  block->free = false;
  allocated_ += block->size;
  return block->ptr;
}

CachingAllocator::Block* CachingAllocator::best_fit(bool small, size_t size) {
  Block key{0, size, true, small, nullptr, nullptr};
  auto it = pool(small).lower_bound(&key);
  return it == pool(small).end() ? nullptr : *it;
}

bool CachingAllocator::grow(size_t bytes, uintptr_t* base) {
  source_calls_++;
  return source_.allocate(bytes, base);
}

CachingAllocator::Block* CachingAllocator::new_slab(bool small, size_t size) {
  const size_t bytes = slab_size_for(size);
  uintptr_t base = 0;
  if (!grow(bytes, &base)) {
    // Cached slabs may be what stands between this request and success: give
    // them back and try once more (pointless when there were none).
    const size_t held = reserved_;
    release_cached();
    if (reserved_ == held || !grow(bytes, &base)) return nullptr;
  }
  Block* block = new Block{base, bytes, true, small, nullptr, nullptr};
  blocks_[base] = block;
  pool(small).insert(block);
  reserved_ += bytes;
  slabs_++;
  return block;
}

void CachingAllocator::split(Block* block, size_t size) {
  const size_t remainder = block->size - size;
  if (!worth_splitting(block->small, remainder)) return;
  Block* rest = new Block{block->ptr + size, remainder, true, block->small, block, block->next};
  if (block->next != nullptr) block->next->prev = rest;
  block->next = rest;
  block->size = size;
  blocks_[rest->ptr] = rest;
  pool(rest->small).insert(rest);
}

// `right` (free, not in a pool) is absorbed into `left` (free, not in a pool).
CachingAllocator::Block* CachingAllocator::merge_into(Block* left, Block* right) {
  left->size += right->size;
  left->next = right->next;
  if (right->next != nullptr) right->next->prev = left;
  blocks_.erase(right->ptr);
  delete right;
  return left;
}

CachingAllocator::FreeResult CachingAllocator::free(uintptr_t ptr) {
  auto it = blocks_.find(ptr);
  if (it == blocks_.end()) {
    auto after = blocks_.upper_bound(ptr);
    if (after != blocks_.begin()) {
      const Block* before = std::prev(after)->second;
      if (ptr < before->ptr + before->size && !before->free) return FreeResult::Interior;
    }
    return FreeResult::Unknown;
  }
  Block* block = it->second;
  if (block->free) return FreeResult::DoubleFree;
  allocated_ -= block->size;
  block->free = true;
  FreeSet& set = pool(block->small);
  if (block->next != nullptr && block->next->free) {
    set.erase(block->next);
    block = merge_into(block, block->next);
  }
  if (block->prev != nullptr && block->prev->free) {
    Block* left = block->prev;
    set.erase(left);
    block = merge_into(left, block);
  }
  set.insert(block);
  return FreeResult::Ok;
}

void CachingAllocator::release_cached() {
  for (FreeSet* set : {&free_small_, &free_large_}) {
    std::vector<Block*> whole;
    for (Block* b : *set) {
      if (b->prev == nullptr && b->next == nullptr) whole.push_back(b);
    }
    for (Block* b : whole) {
      set->erase(b);
      blocks_.erase(b->ptr);
      source_.release(b->ptr, b->size);
      reserved_ -= b->size;
      slabs_--;
      delete b;
    }
  }
}

AllocatorStats CachingAllocator::stats() const {
  AllocatorStats s;
  s.reserved_bytes = reserved_;
  s.allocated_bytes = allocated_;
  s.slabs = slabs_;
  s.free_blocks = free_small_.size() + free_large_.size();
  s.source_calls = source_calls_;
  return s;
}

}  // namespace arkvale
