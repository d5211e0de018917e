#include "dl_open.h"

#include <dlfcn.h>

namespace arkvale {

void* open_first(const std::vector<std::string>& candidates, std::string* library, std::string* reason) {
  std::string first_error;
  std::string tried;
  for (const std::string& name : candidates) {
    if (void* lib = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL); lib != nullptr) {
      *library = name;
      return lib;
    }
    const char* err = dlerror();
    if (first_error.empty()) first_error = name + " not found (dlopen: " + (err ? err : "unknown error") + ")";
    tried += (tried.empty() ? "" : ", ") + name;
  }
  *reason = first_error + "; tried " + tried;
  return nullptr;
}

}  // namespace arkvale
