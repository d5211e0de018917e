#include "errors.h"

#include <cstdio>

namespace arkvale {

void throw_cuda(const char* call, const std::string& what, cudaError_t err) {
  (void)cudaGetLastError();
  throw Failure(std::string(call) + " failed in " + what + ": " + cudaGetErrorString(err));
}

std::string format_bytes(double bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  double value = bytes;
  while (value >= 1024.0 && unit < 6) {
    value /= 1024.0;
    unit++;
  }
  char text[48];
  if (unit == 0) {
    std::snprintf(text, sizeof text, "%.0f B", value);
  } else {
    std::snprintf(text, sizeof text, value >= 100.0 ? "%.1f %s" : "%.2f %s", value, units[unit]);
  }
  return text;
}

std::string format_pointer(unsigned long long address) {
  char text[24];
  std::snprintf(text, sizeof text, "0x%llx", address);
  return text;
}

}  // namespace arkvale
