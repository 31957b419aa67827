// Helpers shared by the PostgreSQL-backed stores (libpq).
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

struct pg_conn;
struct pg_result;

namespace artel::pg {

struct ResultDeleter {
  void operator()(pg_result* r) const;
};
using Result = std::unique_ptr<pg_result, ResultDeleter>;

// The URL without its password (postgres://user:secret@host/db ->
// postgres://user@host/db); a key=value string that holds a password is
// shown as "(the given connection string)".
std::string Redact(const std::string& url);

// libpq's message on one line, without trailing space.
std::string OneLine(const std::string& text);

// Connects to `url` with a 10 s connect timeout (the URL may override it).
// Unavailable, naming `where` and saying what to check, on failure.
absl::StatusOr<pg_conn*> Connect(const std::string& url, const std::string& where,
                                 const std::string& application_name);

// A Status for a failed call `what` on database `where`, from the result's
// SQLSTATE (or the connection's state when `result` is null), saying what to
// check where an operator can: Unavailable for a lost connection or a server
// shutting down, FailedPrecondition for permissions, ResourceExhausted for a
// full disk, Aborted for conflicts, Internal otherwise.
absl::Status Error(const std::string& where, const std::string& what, pg_conn* conn,
                   const pg_result* result);

}  // namespace artel::pg
