// Which instruction set the kernels use, chosen at run time so one binary serves
// every x86-64 CPU: AVX2 + FMA where the CPU (and OS) support it, else the
// portable baseline path.
#pragma once

namespace arkvale {

enum class Isa { Generic, Avx2 };

// True when this CPU and OS can run the AVX2 + FMA kernels.
bool cpu_supports_avx2();

// The instruction set the kernels use now (the best supported one by default).
Isa active_isa();

// Forces an instruction set (for tests and ARKVALE_CPU_SIMD); returns false and
// changes nothing when the CPU cannot run it.
bool set_active_isa(Isa isa);

const char* isa_name(Isa isa);

// Picks the variant of a kernel that matches the active instruction set.
template <class Fn>
Fn pick_kernel(Fn generic, Fn avx2) {
  return active_isa() == Isa::Avx2 ? avx2 : generic;
}

}  // namespace arkvale
