#include "common/status.h"

#include <cstdio>
#include <cstdlib>
#include <string>

namespace artel {

void CheckFailed(const char* file, int line, const char* cond, std::string_view msg) {
  std::fprintf(stderr, "artel: internal error at %s:%d: check '%s' failed: %s\n", file, line, cond,
               std::string(msg).c_str());
  std::fflush(stderr);
  std::abort();
}

}  // namespace artel
