// TLS for every gRPC connection to the coordinator.
//
// The coordinator serves one certificate: the operator's (--tls-cert,
// --tls-key), or a self-signed one it makes on first start and keeps in its
// data dir (so that several coordinators can be given the same files).
// Clients and workers trust it by a CA file (standard chain and host-name
// checks) or by the SHA-256 fingerprint of the certificate (a pin: no chain,
// no host name, the exact certificate). A token may carry the pin after a
// '#' ("SECRET#FINGERPRINT"), so that a volunteer needs only an address and
// a token. Plain TCP happens only when asked for (Trust::insecure).
//
// Thread-safe: plain functions.
#pragma once

#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/support/channel_arguments.h>

#include <filesystem>
#include <memory>
#include <string>

#include "common/status.h"

namespace artel::tls {

// What a client trusts. Exactly one way must be chosen (Check).
struct Trust {
  bool insecure = false;    // plain TCP, no TLS
  std::string ca_pem;       // certificates that chain to this, for the dialed host name
  std::string fingerprint;  // SHA-256 hex of the certificate's DER: this exact certificate
  std::string server_name;  // with ca_pem: the name to check instead of the dialed host
};

// The server's certificate and private key, PEM.
struct Identity {
  std::string cert_pem;
  std::string key_pem;
};

// Splits "SECRET#FINGERPRINT" into the secret and the pin ("" if none).
std::pair<std::string, std::string> SplitToken(const std::string& token);
// "SECRET#FINGERPRINT" (or SECRET alone for an empty fingerprint).
std::string JoinToken(const std::string& secret, const std::string& fingerprint);

// The pin a token carries, or plain TCP for a token without one.
Trust TrustFromToken(const std::string& token);
// True when `trust` names some way (insecure, a CA or a fingerprint).
bool Chosen(const Trust& trust);

// InvalidArgument, saying what to pass, unless exactly one of insecure,
// ca_pem and fingerprint is set, and the fingerprint is 64 hex digits.
absl::Status Check(const Trust& trust);
// Credentials for a channel to a coordinator. REQUIRES: Check(trust) ok.
std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Trust& trust);
// Adds what `trust` needs to channel `args` (the server name override).
void ApplyChannelArgs(const Trust& trust, grpc::ChannelArguments& args);

// The SHA-256 hex of a PEM certificate's DER encoding. InvalidArgument for
// anything that is not a PEM certificate.
absl::StatusOr<std::string> Fingerprint(const std::string& cert_pem);

// A new self-signed certificate (P-256, ten years) for "artel-coordinator",
// valid for localhost, 127.0.0.1, ::1, this host's name and `extra_names`
// (host names or IP addresses, e.g. the listen host).
absl::StatusOr<Identity> MakeSelfSigned(const std::vector<std::string>& extra_names);
// The identity in cert_file/key_file when both are given; else the one kept
// in `dir` (cert.pem, key.pem), made self-signed on first use. Errors say
// which file is missing or malformed.
absl::StatusOr<Identity> LoadOrCreate(const std::filesystem::path& dir,
                                      const std::filesystem::path& cert_file,
                                      const std::filesystem::path& key_file,
                                      const std::vector<std::string>& extra_names);
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Identity& identity);

}  // namespace artel::tls
