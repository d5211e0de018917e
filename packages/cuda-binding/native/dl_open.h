// Opening a run-time dependency (cuBLAS, NCCL) from a list of candidate files.
#pragma once

#include <dlfcn.h>

#include <string>
#include <vector>

namespace arkvale {

// dlopens the first candidate that opens (RTLD_NOW | RTLD_LOCAL) and names it in
// `library`; when none does, returns nullptr and says why in `reason`: the first
// failure's dlerror, then every name tried.
void* open_first(const std::vector<std::string>& candidates, std::string* library, std::string* reason);

// Points `fn` at the library's symbol `name`; false when it has none.
template <class F>
bool bind_symbol(void* lib, const char* name, F* fn) {
  *fn = reinterpret_cast<F>(dlsym(lib, name));
  return *fn != nullptr;
}

}  // namespace arkvale
