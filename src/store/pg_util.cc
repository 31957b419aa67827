#include "store/pg_util.h"

#include <libpq-fe.h>

#include "absl/strings/str_cat.h"

namespace artel::pg {

void ResultDeleter::operator()(pg_result* r) const { PQclear(r); }

std::string Redact(const std::string& url) {
  const size_t scheme = url.find("://");
  if (scheme == std::string::npos) {
    return url.find("password") == std::string::npos ? "'" + url + "'"
                                                     : "(the given connection string)";
  }
  const size_t at = url.find('@', scheme + 3);
  if (at == std::string::npos) return url;
  const size_t colon = url.find(':', scheme + 3);
  if (colon == std::string::npos || colon > at) return url;
  return url.substr(0, colon) + url.substr(at);
}

std::string OneLine(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\n' || c == '\t') {
      if (!out.empty() && out.back() != ' ') out += ' ';
    } else {
      out += c;
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

absl::StatusOr<pg_conn*> Connect(const std::string& url, const std::string& where,
                                 const std::string& application_name) {
  // The URL's own settings win over these defaults (later keywords win).
  const char* keys[] = {"connect_timeout", "application_name", "dbname", nullptr};
  const char* values[] = {"10", application_name.c_str(), url.c_str(), nullptr};
  PGconn* conn = PQconnectdbParams(keys, values, /*expand_dbname=*/1);
  if (conn == nullptr) return absl::ResourceExhaustedError("cannot allocate a libpq connection");
  if (PQstatus(conn) != CONNECTION_OK) {
    const std::string detail = PQerrorMessage(conn);
    PQfinish(conn);
    return absl::UnavailableError(absl::StrCat(
        "postgres database ", where, ": cannot connect: ", OneLine(detail),
        "; check --store (postgres://USER[:PASSWORD]@HOST[:PORT]/DB) and that the server is "
        "running and reachable"));
  }
  // Notices ("relation ... already exists, skipping") are not for operators.
  PQsetNoticeProcessor(
      conn, [](void*, const char*) {}, nullptr);
  return conn;
}

absl::Status Error(const std::string& where, const std::string& what, pg_conn* conn,
                   const pg_result* result) {
  std::string detail = result != nullptr ? PQresultErrorMessage(result) : "";
  if (detail.empty() && conn != nullptr) detail = PQerrorMessage(conn);
  detail = OneLine(detail);
  const std::string msg = absl::StrCat("postgres database ", where, ": ", what, ": ", detail);
  const char* state = result != nullptr ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  const std::string sqlstate = state != nullptr ? state : "";
  if ((conn != nullptr && PQstatus(conn) == CONNECTION_BAD) || sqlstate.rfind("08", 0) == 0 ||
      sqlstate.rfind("57P", 0) == 0) {
    return absl::UnavailableError(
        absl::StrCat(msg, "; check that the server is running and reachable"));
  }
  if (sqlstate == "42501" || sqlstate.rfind("28", 0) == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat(msg, "; the user needs to log in and to create tables in that database"));
  }
  if (sqlstate.rfind("53", 0) == 0) {
    return absl::ResourceExhaustedError(absl::StrCat(msg, "; free disk space on the server"));
  }
  if (sqlstate == "40001" || sqlstate == "40P01" || sqlstate.rfind("55P", 0) == 0) {
    return absl::AbortedError(absl::StrCat(msg, "; retry"));
  }
  return absl::InternalError(msg);
}

}  // namespace artel::pg
