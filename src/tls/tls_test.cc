#include "tls/tls.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <fstream>

#include "artel/v1/artel.grpc.pb.h"

namespace artel::tls {
namespace {

// A real gRPC server on loopback whose one service answers UNIMPLEMENTED to
// everything: a call that gets UNIMPLEMENTED has passed the TLS handshake.
class TlsServer {
 public:
  explicit TlsServer(const Identity& id) {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", ServerCredentials(id), &port_);
    b.RegisterService(&service_);
    server_ = b.BuildAndStart();
  }
  ~TlsServer() { server_->Shutdown(); }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  // The status code of one call made with `trust`.
  grpc::StatusCode Call(const Trust& trust) const {
    grpc::ChannelArguments args;
    ApplyChannelArgs(trust, args);
    auto channel = grpc::CreateCustomChannel(address(), ChannelCredentials(trust), args);
    auto stub = v1::ClientService::NewStub(channel);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ListWorkersResponse resp;
    return stub->ListWorkers(&ctx, v1::ListWorkersRequest(), &resp).error_code();
  }

 private:
  v1::ClientService::Service service_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

TEST(Tls, PinnedFingerprintConnectsAndAnyOtherIsRefused) {
  absl::StatusOr<Identity> id = MakeSelfSigned({});
  ASSERT_TRUE(id.ok()) << id.status();
  TlsServer server(*id);
  Trust pinned;
  pinned.fingerprint = *Fingerprint(id->cert_pem);
  ASSERT_TRUE(Check(pinned).ok());
  EXPECT_EQ(server.Call(pinned), grpc::StatusCode::UNIMPLEMENTED);

  Trust wrong;
  wrong.fingerprint = *Fingerprint(MakeSelfSigned({})->cert_pem);
  EXPECT_EQ(server.Call(wrong), grpc::StatusCode::UNAVAILABLE);
  Trust plain;
  plain.insecure = true;
  EXPECT_EQ(server.Call(plain), grpc::StatusCode::UNAVAILABLE) << "plain TCP to a TLS server";
}

TEST(Tls, CaFileConnectsByHostNameAndAnotherCaIsRefused) {
  absl::StatusOr<Identity> id = MakeSelfSigned({});
  ASSERT_TRUE(id.ok());
  TlsServer server(*id);
  Trust ca;
  ca.ca_pem = id->cert_pem;  // self-signed: it is its own CA; 127.0.0.1 is in its names
  EXPECT_EQ(server.Call(ca), grpc::StatusCode::UNIMPLEMENTED);
  Trust other;
  other.ca_pem = MakeSelfSigned({})->cert_pem;
  EXPECT_EQ(server.Call(other), grpc::StatusCode::UNAVAILABLE);
  Trust wrong_name = ca;
  wrong_name.server_name = "not-this-host.example";
  EXPECT_EQ(server.Call(wrong_name), grpc::StatusCode::UNAVAILABLE);
}

TEST(Tls, TrustNeedsExactlyOneWayAndSaysWhichFlags) {
  absl::Status none = Check(Trust{});
  EXPECT_EQ(none.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(none.message().find("--insecure"), std::string::npos);
  EXPECT_NE(none.message().find("--ca"), std::string::npos);
  Trust two;
  two.insecure = true;
  two.fingerprint = std::string(64, 'a');
  EXPECT_FALSE(Check(two).ok());
  Trust short_pin;
  short_pin.fingerprint = "abc";
  EXPECT_NE(Check(short_pin).message().find("64 hex"), std::string::npos);
}

TEST(Tls, TokenCarriesThePinAfterAHash) {
  EXPECT_EQ(SplitToken("secret#abc"), std::make_pair(std::string("secret"), std::string("abc")));
  EXPECT_EQ(SplitToken("secret"), std::make_pair(std::string("secret"), std::string()));
  EXPECT_EQ(JoinToken("secret", "abc"), "secret#abc");
  EXPECT_EQ(JoinToken("secret", ""), "secret");
}

TEST(Tls, IdentityIsMadeOnceAndKeptInItsDirectory) {
  char tmpl[] = "/tmp/artel_tls_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::filesystem::path dir = std::filesystem::path(tmpl) / "tls";
  absl::StatusOr<Identity> first = LoadOrCreate(dir, "", "", {"10.0.0.7"});
  ASSERT_TRUE(first.ok()) << first.status();
  absl::StatusOr<Identity> second = LoadOrCreate(dir, "", "", {});
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(first->cert_pem, second->cert_pem);
  EXPECT_EQ(
      std::filesystem::status(dir / "key.pem").permissions() & std::filesystem::perms::group_read,
      std::filesystem::perms::none);
  // Given files take precedence; a key of another certificate is refused.
  absl::StatusOr<Identity> other = MakeSelfSigned({});
  std::ofstream(dir / "other-key.pem") << other->key_pem;
  absl::Status mismatch = LoadOrCreate(dir, dir / "cert.pem", dir / "other-key.pem", {}).status();
  EXPECT_EQ(mismatch.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(mismatch.message().find("does not belong"), std::string::npos) << mismatch;
  EXPECT_FALSE(LoadOrCreate(dir, dir / "cert.pem", "", {}).ok());
  EXPECT_FALSE(LoadOrCreate(dir, dir / "missing.pem", dir / "key.pem", {}).ok());
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace artel::tls
