// Ed25519 signatures (OpenSSL) for app binaries: a project key pair signs
// each registered app version, and workers refuse to run what the project
// key did not sign.
//
// Keys travel as PEM text (PKCS#8 private, SubjectPublicKeyInfo public);
// signatures are the raw 64 bytes. Thread-safe (no shared state).
#pragma once

#include <string>

#include "common/status.h"

namespace artel {

struct SigningKeyPair {
  std::string private_pem;
  std::string public_pem;
};

// A fresh key pair from the system's randomness.
absl::StatusOr<SigningKeyPair> GenerateSigningKey();
// The public half of a private key. InvalidArgument if `private_pem` is not
// an Ed25519 private key.
absl::StatusOr<std::string> PublicKeyOf(const std::string& private_pem);
// Signs `message`. InvalidArgument if `private_pem` is not an Ed25519
// private key.
absl::StatusOr<std::string> Sign(const std::string& private_pem, const std::string& message);
// OK if `signature` is `public_pem`'s signature of `message`.
// InvalidArgument if `public_pem` is not an Ed25519 public key;
// PermissionDenied if the signature does not verify.
absl::Status Verify(const std::string& public_pem, const std::string& message,
                    const std::string& signature);
// A short name of a public key: the first 16 hex digits of the SHA-256 of
// its raw 32 bytes. InvalidArgument for a malformed key.
absl::StatusOr<std::string> KeyFingerprint(const std::string& public_pem);

// What is signed for an app version: its name, version and content digest,
// so that a signature cannot be moved to other bytes or another name.
std::string AppSigningMessage(const std::string& name, const std::string& version,
                              const std::string& digest);

}  // namespace artel
