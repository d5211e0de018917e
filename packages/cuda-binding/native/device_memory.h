// Device memory for JavaScript: one CachingAllocator over cudaMalloc slabs, with
// the addon's error messages (an out-of-memory error says what was asked for,
// what is free and what the allocator holds cached).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "caching_allocator.h"

namespace arkvale {

CachingAllocator& device_allocator();

// `bytes` of device memory, 256-byte aligned, for the operation `what`.
uintptr_t device_alloc(size_t bytes, const std::string& what);
// Throws on a pointer that alloc did not return or that was already freed.
void device_free(uintptr_t ptr);

}  // namespace arkvale
