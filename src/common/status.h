// Status helpers shared by every component. Expected failures travel as
// absl::Status / absl::StatusOr<T>; these macros propagate them.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define ARTEL_CONCAT_INNER(a, b) a##b
#define ARTEL_CONCAT(a, b) ARTEL_CONCAT_INNER(a, b)

// Returns from the enclosing function if `expr` (a Status) is not OK.
#define RETURN_IF_ERROR(expr)                      \
  do {                                             \
    ::absl::Status artel_status_ = (expr);         \
    if (!artel_status_.ok()) return artel_status_; \
  } while (false)

#define ARTEL_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                \
  if (!tmp.ok()) return tmp.status();               \
  lhs = std::move(*tmp)

// `lhs = value of expr` (a StatusOr), or returns its error.
#define ASSIGN_OR_RETURN(lhs, expr) \
  ARTEL_ASSIGN_OR_RETURN_IMPL(ARTEL_CONCAT(artel_statusor_, __LINE__), lhs, expr)

// Stops the process with a message when an invariant is broken.
#define ARTEL_CHECK(cond, msg)                                           \
  do {                                                                   \
    if (!(cond)) ::artel::CheckFailed(__FILE__, __LINE__, #cond, (msg)); \
  } while (false)

namespace artel {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, std::string_view msg);
}  // namespace artel
