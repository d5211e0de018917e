// The addon's error types. Native code throws these; addon.cc turns them into
// JavaScript exceptions at the boundary (Failure -> Error, ArgumentError ->
// TypeError or RangeError), so the core code stays free of Node-API.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <stdexcept>
#include <string>

namespace arkvale {

// A CUDA, cuBLAS or runtime failure: becomes a plain JavaScript Error.
class Failure : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A bad argument from JavaScript: a TypeError (wrong kind) or a RangeError (bad value).
class ArgumentError : public std::runtime_error {
 public:
  enum class Kind { Type, Range };
  ArgumentError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

[[noreturn]] inline void throw_type(const std::string& message) { throw ArgumentError(ArgumentError::Kind::Type, message); }
[[noreturn]] inline void throw_range(const std::string& message) { throw ArgumentError(ArgumentError::Kind::Range, message); }

// Throws `<call> failed in <what>: <CUDA error string>`, after clearing the
// runtime's last-error slot so the error is not reported a second time by the
// next cudaGetLastError (a launch check) when it is not sticky.
[[noreturn]] void throw_cuda(const char* call, const std::string& what, cudaError_t err);

inline void check_cuda(cudaError_t err, const char* call, const std::string& what) {
  if (err != cudaSuccess) throw_cuda(call, what, err);
}

// Human-readable bytes with three or four significant digits: "1.50 GiB", "139.8 GiB", "512 B".
std::string format_bytes(double bytes);

// "0x7f12a0000000": how pointers appear in messages.
std::string format_pointer(unsigned long long address);

}  // namespace arkvale
