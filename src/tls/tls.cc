#include "tls/tls.h"

#include <arpa/inet.h>
#include <grpcpp/security/tls_certificate_verifier.h>
#include <grpcpp/security/tls_credentials_options.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/openssl_util.h"
#include "common/sha256.h"

namespace artel::tls {
namespace {

using openssl::BioText;
using openssl::ReadBio;
using openssl::WriteBio;

bool IsHex64(const std::string& s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!std::isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Accepts exactly the certificate whose fingerprint it was given.
class PinVerifier final : public grpc::experimental::ExternalCertificateVerifier {
 public:
  explicit PinVerifier(std::string fingerprint) : fingerprint_(Lower(std::move(fingerprint))) {}
  bool Verify(grpc::experimental::TlsCustomVerificationCheckRequest* request,
              std::function<void(grpc::Status)>, grpc::Status* sync_status) override {
    const grpc::string_ref cert = request->peer_cert();
    absl::StatusOr<std::string> fp = Fingerprint(std::string(cert.data(), cert.size()));
    if (!fp.ok() || *fp != fingerprint_) {
      *sync_status = grpc::Status(
          grpc::StatusCode::UNAUTHENTICATED,
          "the coordinator's certificate has fingerprint " + fp.value_or("(unreadable)") +
              ", not the pinned " + fingerprint_ +
              "; check the address, or the fingerprint the coordinator printed at start");
      return true;
    }
    *sync_status = grpc::Status::OK;
    return true;
  }
  void Cancel(grpc::experimental::TlsCustomVerificationCheckRequest*) override {}

 private:
  const std::string fingerprint_;
};

std::string ReadFile(const std::filesystem::path& p, bool* ok) {
  std::ifstream in(p, std::ios::binary);
  *ok = static_cast<bool>(in);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::Status CheckKeyMatches(const Identity& id, const std::string& where) {
  openssl::Bio cb = ReadBio(id.cert_pem);
  openssl::Cert cert(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError(where + ": not a PEM certificate");
  openssl::Bio kb = ReadBio(id.key_pem);
  openssl::Pkey key(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
  if (!key) return absl::InvalidArgumentError(where + ": not a PEM private key");
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    return absl::InvalidArgumentError(where +
                                      ": the private key does not belong to the certificate");
  }
  return absl::OkStatus();
}

}  // namespace

std::pair<std::string, std::string> SplitToken(const std::string& token) {
  const size_t hash = token.find('#');
  if (hash == std::string::npos) return {token, ""};
  return {token.substr(0, hash), token.substr(hash + 1)};
}

std::string JoinToken(const std::string& secret, const std::string& fingerprint) {
  return fingerprint.empty() ? secret : secret + "#" + fingerprint;
}

Trust TrustFromToken(const std::string& token) {
  Trust trust;
  trust.fingerprint = SplitToken(token).second;
  trust.insecure = trust.fingerprint.empty();
  return trust;
}

bool Chosen(const Trust& t) { return t.insecure || !t.ca_pem.empty() || !t.fingerprint.empty(); }

absl::Status Check(const Trust& t) {
  const int ways =
      (t.insecure ? 1 : 0) + (t.ca_pem.empty() ? 0 : 1) + (t.fingerprint.empty() ? 0 : 1);
  if (ways == 0) {
    return absl::InvalidArgumentError(
        "cannot verify the coordinator: pass --ca FILE (its certificate, DATA/tls/cert.pem), "
        "--tls-fingerprint FP (printed when it starts), or a token that carries it "
        "(TOKEN#FP, as `artel token create` prints it); plain TCP needs --insecure");
  }
  if (ways > 1) {
    return absl::InvalidArgumentError(
        "choose one of --insecure, --ca and --tls-fingerprint (a token's #FP counts as a "
        "fingerprint)");
  }
  if (!t.fingerprint.empty() && !IsHex64(t.fingerprint)) {
    return absl::InvalidArgumentError("the TLS fingerprint '" + t.fingerprint +
                                      "' is not 64 hex digits (a SHA-256)");
  }
  return absl::OkStatus();
}

std::shared_ptr<grpc::ChannelCredentials> ChannelCredentials(const Trust& t) {
  if (t.insecure) return grpc::InsecureChannelCredentials();
  if (!t.ca_pem.empty()) {
    grpc::SslCredentialsOptions o;
    o.pem_root_certs = t.ca_pem;
    return grpc::SslCredentials(o);
  }
  grpc::experimental::TlsChannelCredentialsOptions o;
  o.set_verify_server_certs(false);  // the pin below is the whole check
  o.set_check_call_host(false);
  o.set_certificate_verifier(
      grpc::experimental::ExternalCertificateVerifier::Create<PinVerifier>(t.fingerprint));
  return grpc::experimental::TlsCredentials(o);
}

void ApplyChannelArgs(const Trust& t, grpc::ChannelArguments& args) {
  if (!t.ca_pem.empty() && !t.server_name.empty()) {
    args.SetSslTargetNameOverride(t.server_name);
  }
}

absl::StatusOr<std::string> Fingerprint(const std::string& cert_pem) {
  openssl::Bio bio = ReadBio(cert_pem);
  openssl::Cert cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) return absl::InvalidArgumentError("not a PEM certificate");
  unsigned char* der = nullptr;
  const int n = i2d_X509(cert.get(), &der);
  if (n <= 0) return absl::InvalidArgumentError("cannot encode the certificate");
  std::string out = Sha256Hex(std::string_view(reinterpret_cast<char*>(der), n));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<Identity> MakeSelfSigned(const std::vector<std::string>& extra_names) {
  openssl::PkeyCtx ctx(EVP_PKEY_CTX_new_id(EVP_PKEY_EC, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 ||
      EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx.get(), NID_X9_62_prime256v1) != 1 ||
      EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return absl::InternalError("OpenSSL could not make a P-256 key");
  }
  openssl::Pkey key(raw);
  openssl::Cert cert(X509_new());
  X509_set_version(cert.get(), 2);
  unsigned char serial[16];
  if (RAND_bytes(serial, sizeof(serial)) != 1) return absl::InternalError("no randomness");
  serial[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(serial, sizeof(serial), nullptr);
  BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
  BN_free(bn);
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(cert.get(), key.get());
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("artel-coordinator"), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  std::vector<std::string> names = {"localhost", "artel-coordinator", "127.0.0.1", "::1"};
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) == 0 && host[0] != '\0') names.push_back(host);
  for (const std::string& n : extra_names) {
    if (!n.empty() && n != "0.0.0.0" && n != "::" && n != "[::]") names.push_back(n);
  }
  std::string san;
  for (const std::string& n : names) {
    unsigned char buf[16];
    const bool ip =
        inet_pton(AF_INET, n.c_str(), buf) == 1 || inet_pton(AF_INET6, n.c_str(), buf) == 1;
    san += (san.empty() ? "" : ",") + std::string(ip ? "IP:" : "DNS:") + n;
  }
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, cert.get(), cert.get(), nullptr, nullptr, 0);
  for (const auto& [nid, value] : std::vector<std::pair<int, std::string>>{
           {NID_subject_alt_name, san},
           {NID_basic_constraints, "critical,CA:TRUE"},
           {NID_key_usage, "critical,digitalSignature,keyCertSign"}}) {
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, nid, value.c_str());
    if (ext == nullptr) return absl::InternalError("OpenSSL refused extension " + value);
    X509_add_ext(cert.get(), ext, -1);
    X509_EXTENSION_free(ext);
  }
  if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
    return absl::InternalError("OpenSSL could not sign the certificate");
  }
  Identity id;
  openssl::Bio cb = WriteBio();
  PEM_write_bio_X509(cb.get(), cert.get());
  id.cert_pem = BioText(cb.get());
  openssl::Bio kb = WriteBio();
  PEM_write_bio_PrivateKey(kb.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
  id.key_pem = BioText(kb.get());
  return id;
}

absl::StatusOr<Identity> LoadOrCreate(const std::filesystem::path& dir,
                                      const std::filesystem::path& cert_file,
                                      const std::filesystem::path& key_file,
                                      const std::vector<std::string>& extra_names) {
  Identity id;
  bool ok_cert = false, ok_key = false;
  if (!cert_file.empty() || !key_file.empty()) {
    if (cert_file.empty() || key_file.empty()) {
      return absl::InvalidArgumentError("give both --tls-cert and --tls-key, or neither");
    }
    id.cert_pem = ReadFile(cert_file, &ok_cert);
    if (!ok_cert)
      return absl::InvalidArgumentError("--tls-cert '" + cert_file.string() + "' cannot be read");
    id.key_pem = ReadFile(key_file, &ok_key);
    if (!ok_key)
      return absl::InvalidArgumentError("--tls-key '" + key_file.string() + "' cannot be read");
    RETURN_IF_ERROR(CheckKeyMatches(
        id, "--tls-cert " + cert_file.string() + " / --tls-key " + key_file.string()));
    return id;
  }
  const auto cert_path = dir / "cert.pem", key_path = dir / "key.pem";
  std::error_code ec;
  if (std::filesystem::exists(cert_path, ec)) {
    id.cert_pem = ReadFile(cert_path, &ok_cert);
    id.key_pem = ReadFile(key_path, &ok_key);
    if (!ok_cert || !ok_key) {
      return absl::FailedPreconditionError("cannot read " + cert_path.string() + " and " +
                                           key_path.string() +
                                           "; restore them, or delete both to make new ones "
                                           "(clients must then trust the new certificate)");
    }
    RETURN_IF_ERROR(CheckKeyMatches(id, dir.string()));
    return id;
  }
  ASSIGN_OR_RETURN(id, MakeSelfSigned(extra_names));
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError("cannot create " + dir.string() + ": " + ec.message());
  {
    std::ofstream out(key_path, std::ios::binary | std::ios::trunc);
    std::filesystem::permissions(
        key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write, ec);
    out << id.key_pem;
    if (!out) return absl::InternalError("cannot write " + key_path.string());
  }
  std::ofstream out(cert_path, std::ios::binary | std::ios::trunc);
  out << id.cert_pem;
  if (!out) return absl::InternalError("cannot write " + cert_path.string());
  return id;
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const Identity& identity) {
  grpc::SslServerCredentialsOptions o;
  o.pem_key_cert_pairs.push_back({identity.key_pem, identity.cert_pem});
  return grpc::SslServerCredentials(o);
}

}  // namespace artel::tls
