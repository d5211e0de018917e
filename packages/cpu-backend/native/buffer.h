// Uninitialised, cache-line aligned float scratch memory owned by one kernel call.
#pragma once

#include <cstddef>
#include <new>

namespace arkvale {

class FloatBuffer {
 public:
  explicit FloatBuffer(size_t count)
      : data_(count ? static_cast<float*>(::operator new[](count * sizeof(float), std::align_val_t(64))) : nullptr) {}
  ~FloatBuffer() {
    if (data_) ::operator delete[](data_, std::align_val_t(64));
  }
  FloatBuffer(const FloatBuffer&) = delete;
  FloatBuffer& operator=(const FloatBuffer&) = delete;

  float* data() const { return data_; }

 private:
  float* data_;
};

}  // namespace arkvale
