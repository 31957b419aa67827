// Signed apps across real processes: a worker that holds the project key
// runs only apps that key signed, whatever the coordinator hands it, and
// reports the rest as host faults without running them.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "artel/v1/artel.grpc.pb.h"
#include "cluster_test_util.h"
#include "common/signing.h"
#include "test_apps.h"
#include "tls/tls.h"

namespace artel::testing {
namespace {

using ::testing::HasSubstr;

std::string Slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class SignedApps : public ClusterTest {
 protected:
  // Registers `file` as `name` 1 with exactly `signature` (whatever it
  // signs), as a coordinator that does not check would store it.
  void AddRaw(const std::string& name, const std::filesystem::path& file,
              const std::string& signature) {
    absl::StatusOr<std::string> digest = client().blobs().UploadFile(file);
    ASSERT_TRUE(digest.ok()) << digest.status();
    auto stub = v1::ClientService::NewStub(
        grpc::CreateChannel(cluster().address(),
                            tls::ChannelCredentials(tls::TrustFromToken(cluster().admin_token()))));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + cluster().admin_token());
    v1::AddAppRequest req;
    req.mutable_app()->set_name(name);
    req.mutable_app()->set_version("1");
    req.mutable_app()->set_digest(*digest);
    req.mutable_app()->set_signature(signature);
    v1::AddAppResponse resp;
    grpc::Status s = stub->AddApp(&ctx, req, &resp);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  uint64_t SubmitApp(const std::string& app) {
    v1::SubmitRequest req;
    req.add_tasks()->set_app(app);
    absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
    EXPECT_TRUE(resp.ok()) << resp.status();
    return resp.ok() ? resp->task_ids(0) : 0;
  }

  std::vector<std::string> Conn() {
    return {"--coordinator", cluster().address(), "--token", cluster().admin_token()};
  }
};

TEST_F(SignedApps, WorkerRefusesUnsignedReSignedAndAlteredApps) {
  // A coordinator without the project key stores whatever it is given.
  StartCluster({}, /*sign_apps=*/false);
  const auto keys = dir() / "keys";
  CommandResult created = RunArtel({"keys", "create", "--out", keys.string()});
  ASSERT_EQ(created.exit_code, 0) << created.err;
  EXPECT_THAT(created.out, HasSubstr("fingerprint"));
  CommandResult again = RunArtel({"keys", "create", "--out", keys.string()});
  EXPECT_EQ(again.exit_code, 2);
  EXPECT_THAT(again.err, HasSubstr("refusing to overwrite"));
  const std::string project = Slurp(keys / "artel-app.key");
  absl::StatusOr<SigningKeyPair> other = GenerateSigningKey();
  ASSERT_TRUE(other.ok());

  const auto good = dir() / "good.sh", evil = dir() / "evil.sh";
  WriteExecutable(good, "#!/bin/sh\necho good\n");
  WriteExecutable(evil, "#!/bin/sh\necho evil > \"$ARTEL_OUTPUT_DIR/ran\"\n");
  const std::string good_digest = *client().blobs().UploadFile(good);
  const std::string evil_digest = *client().blobs().UploadFile(evil);
  ASSERT_TRUE(client().AddApp("good", "1", good, project).ok());
  ASSERT_NO_FATAL_FAILURE(AddRaw("unsigned", evil, ""));
  // Properly signed, but by another key.
  ASSERT_NO_FATAL_FAILURE(
      AddRaw("resigned", evil,
             *Sign(other->private_pem, AppSigningMessage("resigned", "1", evil_digest))));
  // The project's signature of the good file, attached to other bytes.
  ASSERT_NO_FATAL_FAILURE(
      AddRaw("altered", evil, *Sign(project, AppSigningMessage("altered", "1", good_digest))));

  const std::string worker =
      AddWorker("careful", {"--app-key", (keys / "artel-app.pub").string()}, "alice");
  ASSERT_FALSE(worker.empty());
  v1::TaskInfo ok = WaitDone(SubmitApp("good"));
  EXPECT_EQ(ok.outcome(), v1::OUTCOME_SUCCESS) << ok.reason();
  for (const std::string app : {"unsigned", "resigned", "altered"}) {
    const uint64_t id = SubmitApp(app);
    std::optional<v1::TaskInfo> t = WaitTask(
        id,
        [](const v1::TaskInfo& t) {
          return t.replicas_size() > 0 && t.replicas(0).result() == v1::RESULT_KIND_HOST_ERROR;
        },
        std::chrono::seconds(30));
    ASSERT_TRUE(t.has_value()) << app << " was never refused";
    EXPECT_THAT(t->replicas(0).error(), HasSubstr("not signed by the project key")) << app;
    EXPECT_NE(t->outcome(), v1::OUTCOME_SUCCESS) << app;
  }
  CommandResult workers = RunArtel([&] {
    std::vector<std::string> a = {"workers", "--json"};
    for (const std::string& c : Conn()) a.push_back(c);
    return a;
  }());
  ASSERT_EQ(workers.exit_code, 0) << workers.err;
  EXPECT_EQ(nlohmann::json::parse(Lines(workers.out).at(0)).at("errors").get<int>(), 3)
      << "each refusal is a host fault";
}

TEST_F(SignedApps, CoordinatorWithAKeyTakesOnlySignedAppsAndWorkersPinIt) {
  StartCluster();  // the cluster's coordinator has --app-key
  const std::string worker = AddWorker("pinner", {}, "alice");
  ASSERT_FALSE(worker.empty());
  const auto pinned = cluster().root() / "pinner" / "app-key.pub";
  PollUntil([&] { return std::filesystem::exists(pinned); }, std::chrono::seconds(10));
  EXPECT_EQ(Slurp(pinned), Slurp(cluster().root() / "project-key" / "artel-app.pub"));

  const auto app = dir() / "app.sh";
  WriteExecutable(app, "#!/bin/sh\necho hi\n");
  std::vector<std::string> add = {"app", "add", "hi", "--version", "1", app.string()};
  for (const std::string& c : Conn()) add.push_back(c);
  CommandResult unsigned_add = RunArtel(add);
  EXPECT_EQ(unsigned_add.exit_code, 1);
  EXPECT_THAT(unsigned_add.err, HasSubstr("runs only signed apps"));
  EXPECT_THAT(unsigned_add.err, HasSubstr("--sign"));

  const auto other = dir() / "other";
  ASSERT_EQ(RunArtel({"keys", "create", "--out", other.string()}).exit_code, 0);
  std::vector<std::string> wrong = add;
  wrong.insert(wrong.end(), {"--sign", (other / "artel-app.key").string()});
  CommandResult wrong_key = RunArtel(wrong);
  EXPECT_EQ(wrong_key.exit_code, 1);
  EXPECT_THAT(wrong_key.err, HasSubstr("does not verify with the project key"));

  std::vector<std::string> not_a_key = add;
  not_a_key.insert(not_a_key.end(), {"--sign", (other / "artel-app.pub").string()});
  CommandResult bad_file = RunArtel(not_a_key);
  EXPECT_EQ(bad_file.exit_code, 2);
  EXPECT_THAT(bad_file.err, HasSubstr("not an Ed25519 private key"));

  std::vector<std::string> right = add;
  right.insert(right.end(), {"--sign", cluster().signing_key_path().string()});
  CommandResult signed_add = RunArtel(right);
  ASSERT_EQ(signed_add.exit_code, 0) << signed_add.err;
  EXPECT_THAT(signed_add.out, HasSubstr("signed"));
  v1::TaskInfo t = WaitDone(SubmitApp("hi"));
  EXPECT_EQ(t.outcome(), v1::OUTCOME_SUCCESS) << t.reason();
}

}  // namespace
}  // namespace artel::testing
