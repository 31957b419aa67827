#include "common/signing.h"

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <memory>

#include "common/openssl_util.h"
#include "common/sha256.h"

namespace artel {
namespace {

using openssl::BioText;
using openssl::Pkey;
using openssl::ReadBio;
using openssl::WriteBio;

struct MdCtxFree {
  void operator()(EVP_MD_CTX* c) const { EVP_MD_CTX_free(c); }
};

absl::StatusOr<Pkey> LoadPrivate(const std::string& pem) {
  auto bio = ReadBio(pem);
  Pkey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        "not an Ed25519 private key in PEM form; make one with `artel keys create --out DIR`");
  }
  return key;
}

absl::StatusOr<Pkey> LoadPublic(const std::string& pem) {
  auto bio = ReadBio(pem);
  Pkey key(PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr));
  if (!key || EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError(
        "not an Ed25519 public key in PEM form; use the .pub file `artel keys create` wrote");
  }
  return key;
}

std::string PublicPem(EVP_PKEY* key) {
  openssl::Bio bio = WriteBio();
  PEM_write_bio_PUBKEY(bio.get(), key);
  return BioText(bio.get());
}

}  // namespace

absl::StatusOr<SigningKeyPair> GenerateSigningKey() {
  openssl::PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return absl::InternalError("OpenSSL could not generate an Ed25519 key");
  }
  Pkey key(raw);
  openssl::Bio bio = WriteBio();
  if (PEM_write_bio_PrivateKey(bio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return absl::InternalError("OpenSSL could not write the private key");
  }
  return SigningKeyPair{BioText(bio.get()), PublicPem(key.get())};
}

absl::StatusOr<std::string> PublicKeyOf(const std::string& private_pem) {
  ASSIGN_OR_RETURN(Pkey key, LoadPrivate(private_pem));
  return PublicPem(key.get());
}

absl::StatusOr<std::string> Sign(const std::string& private_pem, const std::string& message) {
  ASSIGN_OR_RETURN(Pkey key, LoadPrivate(private_pem));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  std::string sig(64, '\0');
  size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1) {
    return absl::InternalError("OpenSSL could not sign");
  }
  sig.resize(len);
  return sig;
}

absl::Status Verify(const std::string& public_pem, const std::string& message,
                    const std::string& signature) {
  ASSIGN_OR_RETURN(Pkey key, LoadPublic(public_pem));
  std::unique_ptr<EVP_MD_CTX, MdCtxFree> ctx(EVP_MD_CTX_new());
  if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key.get()) != 1) {
    return absl::InternalError("OpenSSL could not start a verification");
  }
  if (EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                       signature.size(), reinterpret_cast<const unsigned char*>(message.data()),
                       message.size()) != 1) {
    return absl::PermissionDeniedError("the signature does not match this key and content");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> KeyFingerprint(const std::string& public_pem) {
  ASSIGN_OR_RETURN(Pkey key, LoadPublic(public_pem));
  std::string raw(32, '\0');
  size_t len = raw.size();
  if (EVP_PKEY_get_raw_public_key(key.get(), reinterpret_cast<unsigned char*>(raw.data()), &len) !=
      1) {
    return absl::InternalError("OpenSSL could not read the public key");
  }
  raw.resize(len);
  return Sha256Hex(raw).substr(0, 16);
}

std::string AppSigningMessage(const std::string& name, const std::string& version,
                              const std::string& digest) {
  return "artel app v1\n" + name + "\n" + version + "\n" + digest + "\n";
}

}  // namespace artel
