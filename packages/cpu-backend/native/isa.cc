#include "isa.h"

#include <atomic>

#include "simd.h"

namespace arkvale {

bool cpu_supports_avx2() {
#if ARKVALE_HAVE_AVX2_PATH
  // libgcc's checks also confirm the OS saves the YMM registers (XCR0).
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

namespace {

Isa best_isa() { return cpu_supports_avx2() ? Isa::Avx2 : Isa::Generic; }

std::atomic<Isa>& current() {
  static std::atomic<Isa> isa{best_isa()};
  return isa;
}

}  // namespace

Isa active_isa() { return current().load(std::memory_order_relaxed); }

bool set_active_isa(Isa isa) {
  if (isa == Isa::Avx2 && !cpu_supports_avx2()) return false;
  current().store(isa, std::memory_order_relaxed);
  return true;
}

const char* isa_name(Isa isa) { return isa == Isa::Avx2 ? "avx2-fma" : "generic"; }

}  // namespace arkvale
