// TLS across real processes: the coordinator serves TLS by default with a
// certificate it made and kept; clients verify it by CA file, by pinned
// fingerprint or by the pin their token carries, and plain TCP needs an
// explicit --insecure on both ends.
#include <gmock/gmock.h>

#include <fstream>
#include <sstream>

#include "cluster_test_util.h"
#include "test_apps.h"
#include "tls/tls.h"

namespace artel::testing {
namespace {

using ::testing::HasSubstr;

class TlsCluster : public ClusterTest {
 protected:
  CommandResult Workers(std::vector<std::string> extra, const std::string& token) {
    std::vector<std::string> args = {"workers", "--coordinator", cluster().address(), "--token",
                                     token};
    args.insert(args.end(), extra.begin(), extra.end());
    return RunArtel(args);
  }
};

TEST_F(TlsCluster, ClientsVerifyTheCoordinatorsCertificate) {
  StartCluster();
  const auto [secret, pin] = tls::SplitToken(cluster().admin_token());
  ASSERT_FALSE(pin.empty()) << "the admin token should carry the TLS pin";
  const auto cert = cluster().root() / "coordinator" / "tls" / "cert.pem";
  std::ifstream in(cert);
  std::stringstream pem;
  pem << in.rdbuf();
  EXPECT_EQ(*tls::Fingerprint(pem.str()), pin);

  CommandResult none = Workers({}, secret);
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("--ca"));
  EXPECT_THAT(none.err, HasSubstr("--insecure"));
  EXPECT_EQ(Workers({}, cluster().admin_token()).exit_code, 0) << "the token's pin";
  EXPECT_EQ(Workers({"--ca", cert.string()}, secret).exit_code, 0);
  EXPECT_EQ(Workers({"--tls-fingerprint", pin}, secret).exit_code, 0);

  CommandResult wrong_pin = Workers({"--tls-fingerprint", std::string(64, 'a')}, secret);
  EXPECT_EQ(wrong_pin.exit_code, 1);
  EXPECT_THAT(wrong_pin.err, HasSubstr("not the pinned"));
  CommandResult plain = Workers({"--insecure"}, secret);
  EXPECT_EQ(plain.exit_code, 1) << "plain TCP must not reach a TLS coordinator";
  absl::StatusOr<tls::Identity> other = tls::MakeSelfSigned({});
  ASSERT_TRUE(other.ok());
  const auto other_cert = dir() / "other-cert.pem";
  WriteFile(other_cert, other->cert_pem);
  EXPECT_EQ(Workers({"--ca", other_cert.string()}, secret).exit_code, 1);
  const auto junk = dir() / "junk.pem";
  WriteFile(junk, "not a certificate\n");
  CommandResult bad_ca = Workers({"--ca", junk.string()}, secret);
  EXPECT_EQ(bad_ca.exit_code, 2);
  EXPECT_THAT(bad_ca.err, HasSubstr("no PEM certificate"));
  CommandResult short_pin = Workers({"--tls-fingerprint", "abcd"}, secret);
  EXPECT_EQ(short_pin.exit_code, 2);
  EXPECT_THAT(short_pin.err, HasSubstr("64 hex"));

  // Workers reach it with the pin of their token, and tasks run.
  AddScriptApp("square", kSquareApp);
  ASSERT_FALSE(AddWorker("w1").empty());
  v1::SubmitRequest req;
  v1::TaskSpec* t = req.add_tasks();
  t->set_app("square");
  t->add_args("7");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(WaitDone(resp->task_ids(0)).outcome(), v1::OUTCOME_SUCCESS);

  // The certificate is kept: a restarted coordinator serves the same one.
  ASSERT_TRUE(cluster().RestartCoordinator().ok());
  EXPECT_EQ(Workers({"--tls-fingerprint", pin}, secret).exit_code, 0);
}

TEST_F(TlsCluster, PlainTcpOnlyWithInsecureOnBothEnds) {
  StartCluster({"--insecure"});
  EXPECT_EQ(cluster().admin_token().find('#'), std::string::npos);
  CommandResult no_flag = Workers({}, cluster().admin_token());
  EXPECT_EQ(no_flag.exit_code, 2);
  EXPECT_THAT(no_flag.err, HasSubstr("plain TCP needs --insecure"));
  EXPECT_EQ(Workers({"--insecure"}, cluster().admin_token()).exit_code, 0);
  AddScriptApp("square", kSquareApp);
  ASSERT_FALSE(AddWorker("w1").empty());
  v1::SubmitRequest req;
  v1::TaskSpec* t = req.add_tasks();
  t->set_app("square");
  t->add_args("3");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
  ASSERT_TRUE(resp.ok()) << resp.status();
  EXPECT_EQ(WaitDone(resp->task_ids(0)).outcome(), v1::OUTCOME_SUCCESS);
}

}  // namespace
}  // namespace artel::testing
