#include "store/pg_blobs.h"

#include <libpq-fe.h>

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "store/pg_util.h"

namespace artel {
namespace {

constexpr size_t kChunkBytes = 1 << 20;

const absl::Status& StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}

// Idempotent, so coordinators starting together may all run it.
constexpr char kSchema[] = R"sql(
  SELECT pg_advisory_xact_lock(7346002);
  CREATE TABLE IF NOT EXISTS artel_blobs(digest TEXT PRIMARY KEY, size BIGINT NOT NULL,
                                         chunks INTEGER NOT NULL);
  CREATE TABLE IF NOT EXISTS artel_blob_chunks(digest TEXT NOT NULL, idx INTEGER NOT NULL,
                                               data BYTEA NOT NULL, PRIMARY KEY(digest, idx));
)sql";

}  // namespace

PgBlobs::PgBlobs(std::string url, std::string where)
    : url_(std::move(url)), where_(std::move(where)) {}

PgBlobs::~PgBlobs() {
  absl::MutexLock lock(&mu_);
  if (conn_ != nullptr) PQfinish(conn_);
}

absl::StatusOr<std::unique_ptr<PgBlobs>> PgBlobs::Open(const std::string& url) {
  std::unique_ptr<PgBlobs> blobs(new PgBlobs(url, pg::Redact(url)));
  absl::MutexLock lock(&blobs->mu_);
  RETURN_IF_ERROR(blobs->EnsureConnectedLocked());
  return blobs;
}

absl::Status PgBlobs::EnsureConnectedLocked() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return absl::OkStatus();
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  ASSIGN_OR_RETURN(conn_, pg::Connect(url_, where_, "artel-coordinator-blobs"));
  pg::Result r(PQexec(conn_, absl::StrCat("BEGIN;", kSchema, "COMMIT;").c_str()));
  if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) {
    absl::Status s = pg::Error(where_, "create the blob tables", conn_, r.get());
    pg::Result(PQexec(conn_, "ROLLBACK"));
    return s;
  }
  return absl::OkStatus();
}

template <typename Fn>
auto PgBlobs::Retrying(Fn fn) -> decltype(fn()) {
  absl::MutexLock lock(&mu_);
  // A server that restarted leaves a connection that fails on first use:
  // reconnect and try once more.
  for (int attempt = 0;; ++attempt) {
    absl::Status connected = EnsureConnectedLocked();
    auto result = connected.ok() ? fn() : decltype(fn())(connected);
    if (attempt > 0 || StatusOf(result).code() != absl::StatusCode::kUnavailable) return result;
    if (conn_ != nullptr) PQfinish(conn_);
    conn_ = nullptr;
  }
}

absl::Status PgBlobs::Put(const std::string& digest, uint64_t size,
                          const std::filesystem::path& file) {
  return Retrying([&] { return PutLocked(digest, size, file); });
}

absl::Status PgBlobs::PutLocked(const std::string& digest, uint64_t size,
                                const std::filesystem::path& file) {
  const char* key[] = {digest.c_str()};
  pg::Result have(PQexecParams(conn_, "SELECT 1 FROM artel_blobs WHERE digest = $1", 1, nullptr,
                               key, nullptr, nullptr, 0));
  if (PQresultStatus(have.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "look up blob " + digest, conn_, have.get());
  }
  if (PQntuples(have.get()) > 0) return absl::OkStatus();

  std::ifstream in(file, std::ios::binary);
  if (!in) return absl::NotFoundError("cannot read blob file '" + file.string() + "'");
  auto exec_ok = [&](pg::Result r, const std::string& what) -> absl::Status {
    if (PQresultStatus(r.get()) != PGRES_COMMAND_OK) return pg::Error(where_, what, conn_, r.get());
    return absl::OkStatus();
  };
  absl::Status status = [&]() -> absl::Status {
    RETURN_IF_ERROR(exec_ok(pg::Result(PQexec(conn_, "BEGIN")), "begin storing a blob"));
    std::string buf(kChunkBytes, '\0');
    int chunks = 0;
    for (;;) {
      in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
      const std::streamsize n = in.gcount();
      if (n <= 0) break;
      const std::string idx = std::to_string(chunks++);
      const char* values[] = {digest.c_str(), idx.c_str(), buf.data()};
      const int lengths[] = {0, 0, static_cast<int>(n)};
      const int formats[] = {0, 0, 1};
      RETURN_IF_ERROR(
          exec_ok(pg::Result(PQexecParams(conn_,
                                          "INSERT INTO artel_blob_chunks(digest, idx, data) "
                                          "VALUES($1, $2, $3) ON CONFLICT DO NOTHING",
                                          3, nullptr, values, lengths, formats, 0)),
                  "store a chunk of blob " + digest));
    }
    if (in.bad()) return absl::DataLossError("read error on '" + file.string() + "'");
    const std::string size_text = std::to_string(size), chunks_text = std::to_string(chunks);
    const char* values[] = {digest.c_str(), size_text.c_str(), chunks_text.c_str()};
    RETURN_IF_ERROR(exec_ok(
        pg::Result(PQexecParams(conn_,
                                "INSERT INTO artel_blobs(digest, size, chunks) VALUES($1, $2, $3) "
                                "ON CONFLICT DO NOTHING",
                                3, nullptr, values, nullptr, nullptr, 0)),
        "record blob " + digest));
    return exec_ok(pg::Result(PQexec(conn_, "COMMIT")), "commit blob " + digest);
  }();
  if (!status.ok() && PQstatus(conn_) == CONNECTION_OK &&
      PQtransactionStatus(conn_) != PQTRANS_IDLE) {
    pg::Result(PQexec(conn_, "ROLLBACK"));
  }
  return status;
}

absl::StatusOr<uint64_t> PgBlobs::SizeOf(const std::string& digest) {
  return Retrying([&] { return SizeOfLocked(digest); });
}

absl::StatusOr<uint64_t> PgBlobs::SizeOfLocked(const std::string& digest) {
  const char* key[] = {digest.c_str()};
  pg::Result r(PQexecParams(conn_, "SELECT size FROM artel_blobs WHERE digest = $1", 1, nullptr,
                            key, nullptr, nullptr, 0));
  if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "look up blob " + digest, conn_, r.get());
  }
  if (PQntuples(r.get()) == 0) {
    return absl::NotFoundError("blob " + digest + " is not stored; upload it first");
  }
  return std::stoull(PQgetvalue(r.get(), 0, 0));
}

absl::Status PgBlobs::Fetch(const std::string& digest,
                            const std::function<absl::Status(std::string_view chunk)>& sink) {
  return Retrying([&] { return FetchLocked(digest, sink); });
}

absl::Status PgBlobs::FetchLocked(const std::string& digest,
                                  const std::function<absl::Status(std::string_view chunk)>& sink) {
  const char* key[] = {digest.c_str()};
  pg::Result blob(PQexecParams(conn_, "SELECT chunks FROM artel_blobs WHERE digest = $1", 1,
                               nullptr, key, nullptr, nullptr, 0));
  if (PQresultStatus(blob.get()) != PGRES_TUPLES_OK) {
    return pg::Error(where_, "look up blob " + digest, conn_, blob.get());
  }
  if (PQntuples(blob.get()) == 0) {
    return absl::NotFoundError("blob " + digest + " is not stored; upload it first");
  }
  const int chunks = std::atoi(PQgetvalue(blob.get(), 0, 0));
  // One chunk per query keeps memory at one chunk, whatever the blob's size.
  for (int i = 0; i < chunks; ++i) {
    const std::string idx = std::to_string(i);
    const char* values[] = {digest.c_str(), idx.c_str()};
    pg::Result r(PQexecParams(conn_,
                              "SELECT data FROM artel_blob_chunks WHERE digest = $1 AND idx = $2",
                              2, nullptr, values, nullptr, nullptr, /*resultFormat=*/1));
    if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) {
      return pg::Error(where_, "read blob " + digest, conn_, r.get());
    }
    if (PQntuples(r.get()) != 1) {
      return absl::DataLossError(absl::StrCat("postgres database ", where_, ": blob ", digest,
                                              " lacks chunk ", i,
                                              "; restore the database from a backup"));
    }
    RETURN_IF_ERROR(sink(std::string_view(PQgetvalue(r.get(), 0, 0), PQgetlength(r.get(), 0, 0))));
  }
  return absl::OkStatus();
}

}  // namespace artel
