#include "cli/cli_common.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include "common/signing.h"

namespace artel::cli {

void AddConnectionOptions(CLI::App* command, Connection* conn) {
  command->add_option("--coordinator", conn->coordinator, "coordinator address host:port")
      ->envname("ARTEL_COORDINATOR")
      ->capture_default_str();
  command->add_option("--token", conn->token, "access token (default: $ARTEL_TOKEN)")
      ->envname("ARTEL_TOKEN");
  command
      ->add_option("--ca", conn->ca,
                   "trust the coordinator's certificate through this CA file (its own "
                   "DATA/tls/cert.pem for a self-signed one)")
      ->envname("ARTEL_CA");
  command
      ->add_option("--tls-fingerprint", conn->fingerprint,
                   "trust exactly the coordinator certificate with this SHA-256 (printed at "
                   "its start; a token's #FP suffix gives it too)")
      ->envname("ARTEL_TLS_FINGERPRINT");
  command->add_option("--tls-name", conn->tls_name,
                      "with --ca: the certificate name to expect instead of the host dialed");
  command
      ->add_flag("--insecure", conn->insecure,
                 "plain TCP to a coordinator started with --insecure (no encryption)")
      ->envname("ARTEL_INSECURE");
}

tls::Trust TrustOf(const Connection& conn) {
  tls::Trust trust;
  trust.insecure = conn.insecure;
  trust.server_name = conn.tls_name;
  if (!conn.ca.empty()) {
    std::ifstream in(conn.ca, std::ios::binary);
    if (!in) Fail("--ca '" + conn.ca + "' cannot be read; give the coordinator's certificate", 2);
    std::stringstream ss;
    ss << in.rdbuf();
    trust.ca_pem = ss.str();
    if (!tls::Fingerprint(trust.ca_pem).ok()) {
      Fail("--ca '" + conn.ca + "' holds no PEM certificate", 2);
    }
  }
  trust.fingerprint = conn.fingerprint;
  const std::string pinned = tls::SplitToken(conn.token).second;
  if (trust.fingerprint.empty() && trust.ca_pem.empty() && !trust.insecure) {
    trust.fingerprint = pinned;
  }
  if (absl::Status s = tls::Check(trust); !s.ok()) Fail(std::string(s.message()), 2);
  return trust;
}

std::unique_ptr<Client> Connect(const Connection& conn) {
  if (conn.token.empty()) {
    Fail(
        "no token given; pass --token or set ARTEL_TOKEN (the coordinator wrote an admin token "
        "to DATA/admin.token on first start; `artel token create` makes others)",
        2);
  }
  return std::make_unique<Client>(conn.coordinator, conn.token, TrustOf(conn));
}

void Fail(const absl::Status& status, int code) { Fail(std::string(status.message()), code); }

void Fail(const std::string& message, int code) {
  std::cerr << "artel: " << message << std::endl;
  throw CLI::RuntimeError(code);
}

std::string StateName(v1::TaskState state) {
  switch (state) {
    case v1::TASK_STATE_PENDING:
      return "pending";
    case v1::TASK_STATE_RUNNING:
      return "running";
    case v1::TASK_STATE_DONE:
      return "done";
    default:
      return "unknown";
  }
}

std::string OutcomeName(v1::Outcome outcome) {
  switch (outcome) {
    case v1::OUTCOME_SUCCESS:
      return "success";
    case v1::OUTCOME_APP_ERROR:
      return "app_error";
    case v1::OUTCOME_SYSTEM_ERROR:
      return "system_error";
    default:
      return "none";
  }
}

std::string ReplicaStateName(v1::ReplicaState state) {
  switch (state) {
    case v1::REPLICA_STATE_IN_PROGRESS:
      return "in_progress";
    case v1::REPLICA_STATE_REPORTED:
      return "reported";
    case v1::REPLICA_STATE_LOST:
      return "lost";
    case v1::REPLICA_STATE_CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

std::string ResultName(v1::ResultKind kind) {
  switch (kind) {
    case v1::RESULT_KIND_SUCCESS:
      return "success";
    case v1::RESULT_KIND_APP_ERROR:
      return "app_error";
    case v1::RESULT_KIND_HOST_ERROR:
      return "host_error";
    default:
      return "";
  }
}

absl::StatusOr<v1::TaskState> ParseState(const std::string& name) {
  if (name == "pending") return v1::TASK_STATE_PENDING;
  if (name == "running") return v1::TASK_STATE_RUNNING;
  if (name == "done") return v1::TASK_STATE_DONE;
  return absl::InvalidArgumentError("unknown state '" + name + "'; use pending, running or done");
}

nlohmann::json TaskJson(const v1::TaskInfo& t) {
  nlohmann::json j = {
      {"id", t.id()},
      {"job", t.job_id()},
      {"app", t.spec().app()},
      {"version", t.resolved_version()},
      {"state", StateName(t.state())},
      {"outcome", OutcomeName(t.outcome())},
      {"reason", t.reason()},
      {"created_at_ms", t.created_at_ms()},
      {"finished_at_ms", t.finished_at_ms()},
      // False only for a result accepted from one trusted replica (adaptive
      // replication) that no other replica has confirmed yet.
      {"verified", !t.unverified()},
      {"spot_check_pending", t.spot_check()},
      {"reopened", t.reopened()},
  };
  nlohmann::json outputs = nlohmann::json::array();
  for (const auto& f : t.outputs()) {
    outputs.push_back({{"name", f.name()}, {"digest", f.digest()}, {"size", f.size()}});
  }
  j["outputs"] = outputs;
  nlohmann::json replicas = nlohmann::json::array();
  for (const auto& r : t.replicas()) {
    nlohmann::json rj = {{"id", r.id()},
                         {"worker", r.worker_id()},
                         {"owner", r.owner()},
                         {"credit", r.credit()},
                         {"state", ReplicaStateName(r.state())},
                         {"result", ResultName(r.result())},
                         {"exit_code", r.exit_code()},
                         {"error", r.error()},
                         {"runtime_ms", r.runtime_ms()}};
    rj["validity"] = r.validity() == v1::VALIDITY_VALID     ? "valid"
                     : r.validity() == v1::VALIDITY_INVALID ? "invalid"
                                                            : "unknown";
    replicas.push_back(rj);
  }
  if (!t.replicas().empty()) j["replicas"] = replicas;
  return j;
}

namespace {
std::string ReadKeyText(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) Fail(flag + " '" + path + "' cannot be read; give the path of a key file", 2);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

std::string ReadPublicKeyFile(const std::string& path, const std::string& flag) {
  std::string pem = ReadKeyText(path, flag);
  if (absl::StatusOr<std::string> fp = KeyFingerprint(pem); !fp.ok()) {
    Fail(flag + " '" + path + "': " + std::string(fp.status().message()), 2);
  }
  return pem;
}

std::string ReadPrivateKeyFile(const std::string& path, const std::string& flag) {
  std::string pem = ReadKeyText(path, flag);
  if (absl::StatusOr<std::string> pub = PublicKeyOf(pem); !pub.ok()) {
    Fail(flag + " '" + path + "': " + std::string(pub.status().message()), 2);
  }
  return pem;
}

std::string FormatCredit(double core_seconds) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f", core_seconds);
  return buf;
}

nlohmann::json WorkerJson(const v1::WorkerInfo& w) {
  nlohmann::json reliability = nlohmann::json::array();
  nlohmann::json trusted = nlohmann::json::array();
  uint32_t streak = 0;
  for (const auto& r : w.reliability()) {
    reliability.push_back({{"app", r.app()},
                           {"consecutive_valid", r.consecutive_valid()},
                           {"valid", r.valid()},
                           {"invalid", r.invalid()},
                           {"trusted", r.trusted()}});
    if (r.trusted()) trusted.push_back(r.app());
    streak = std::max(streak, r.consecutive_valid());
  }
  return {{"id", w.id()},
          {"name", w.name()},
          {"owner", w.owner()},
          {"alive", w.alive()},
          {"cores", w.cores()},
          {"memory_bytes", w.memory_bytes()},
          {"disk_bytes", w.disk_bytes()},
          {"sandboxed", w.sandboxed()},
          {"running", w.running()},
          {"completed", w.completed()},
          {"invalid", w.invalid()},
          {"errors", w.errors()},
          {"last_heartbeat_ms", w.last_heartbeat_ms()},
          {"credit", w.credit()},
          {"reliability", reliability},
          {"consecutive_valid", streak},
          {"trusted", trusted}};
}

}  // namespace artel::cli
