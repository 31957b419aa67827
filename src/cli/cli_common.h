// Shared pieces of the `artel` command line: connection flags, error exits,
// names and JSON forms of states.
#pragma once

#include <CLI/CLI.hpp>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "artel/v1/artel.pb.h"
#include "client/client.h"
#include "common/status.h"

namespace artel::cli {

struct Connection {
  std::string coordinator = "127.0.0.1:7700";
  std::string token;
  std::string ca;           // file: the CA (or self-signed certificate) to trust
  std::string fingerprint;  // SHA-256 of the coordinator's certificate
  std::string tls_name;     // with --ca: the name to check instead of the host dialed
  bool insecure = false;    // plain TCP
};

// Adds --coordinator (env ARTEL_COORDINATOR), --token (env ARTEL_TOKEN),
// --ca (ARTEL_CA), --tls-fingerprint (ARTEL_TLS_FINGERPRINT), --tls-name and
// --insecure (ARTEL_INSECURE=1).
void AddConnectionOptions(CLI::App* command, Connection* conn);
// How `conn` verifies the coordinator: --ca, --tls-fingerprint, the pin of
// the token (TOKEN#FP) or --insecure. Fails (exit 2) saying what to pass
// when none or several are given.
tls::Trust TrustOf(const Connection& conn);
std::unique_ptr<Client> Connect(const Connection& conn);

// Prints "artel: <message>" to stderr and ends the command with `code`.
[[noreturn]] void Fail(const absl::Status& status, int code = 1);
[[noreturn]] void Fail(const std::string& message, int code = 1);
template <typename T>
T OrFail(absl::StatusOr<T> value) {
  if (!value.ok()) Fail(value.status());
  return *std::move(value);
}
inline void OrFail(const absl::Status& status) {
  if (!status.ok()) Fail(status);
}

std::string StateName(v1::TaskState state);
std::string OutcomeName(v1::Outcome outcome);
std::string ReplicaStateName(v1::ReplicaState state);
std::string ResultName(v1::ResultKind kind);
absl::StatusOr<v1::TaskState> ParseState(const std::string& name);

nlohmann::json TaskJson(const v1::TaskInfo& task);
// The text of a key file named by `flag`; fails (exit 2) saying what is
// wrong when it cannot be read or is not the kind of Ed25519 key asked for.
std::string ReadPublicKeyFile(const std::string& path, const std::string& flag);
std::string ReadPrivateKeyFile(const std::string& path, const std::string& flag);
// Core-seconds with one decimal.
std::string FormatCredit(double core_seconds);
nlohmann::json WorkerJson(const v1::WorkerInfo& worker);

// Registers every subcommand on `app`.
void AddServerCommands(CLI::App& app);   // coordinator, worker
void AddAdminCommands(CLI::App& app);    // token, app
void AddTaskCommands(CLI::App& app);     // submit, status, wait, result, cancel, tasks, workers
void AddDemoCommand(CLI::App& app);      // demo (training), demo tasks
void AddTaskDemo(CLI::App& demo);        // demo tasks (demo.cc)
void AddBenchCommands(CLI::App& app);    // bench tasks, bench adaptive
void AddAdaptiveBench(CLI::App& bench);  // bench adaptive (under `bench`)
void AddDataCommands(CLI::App& app);     // data add, data list
void AddTrainCommands(CLI::App& app);    // train, jobs, job show/wait/export

}  // namespace artel::cli
