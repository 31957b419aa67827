// Bad requests to a real coordinator are refused with the right gRPC code and
// a message that says what to fix, and leave nothing behind.
#include <gmock/gmock.h>
#include <grpcpp/grpcpp.h>

#include <nlohmann/json.hpp>

#include "cluster_test_util.h"
#include "common/sha256.h"
#include "tls/tls.h"

namespace artel::testing {
namespace {

using ::testing::HasSubstr;

class MalformedRequests : public ClusterTest {
 protected:
  void SetUp() override {
    StartCluster();
    AddScriptApp("echo", "#!/bin/sh\necho \"$@\"\n");
  }

  // Submits `req` and expects it refused with `code` and a message holding `hint`.
  void ExpectRefused(const v1::SubmitRequest& req, absl::StatusCode code, const std::string& hint) {
    absl::StatusOr<v1::SubmitResponse> resp = client().Submit(req);
    ASSERT_FALSE(resp.ok()) << "accepted: " << req.DebugString();
    EXPECT_EQ(resp.status().code(), code) << resp.status();
    EXPECT_THAT(std::string(resp.status().message()), HasSubstr(hint));
    ExpectNoTasks();
  }

  void ExpectNoTasks() {
    absl::StatusOr<v1::ListTasksResponse> tasks = client().ListTasks({});
    ASSERT_TRUE(tasks.ok()) << tasks.status();
    EXPECT_EQ(tasks->tasks_size(), 0) << "a refused request left a task behind";
  }

  // Sends one Upload stream: a header chunk declaring `digest` and `size`,
  // then `data`.
  grpc::Status RawUpload(const std::string& digest, uint64_t size, const std::string& data) {
    auto stub = v1::BlobService::NewStub(
        grpc::CreateChannel(cluster().address(),
                            tls::ChannelCredentials(tls::TrustFromToken(cluster().admin_token()))));
    grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", "Bearer " + cluster().admin_token());
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    v1::UploadResponse resp;
    auto writer = stub->Upload(&ctx, &resp);
    v1::UploadChunk chunk;
    chunk.set_digest(digest);
    chunk.set_size(size);
    chunk.set_data(data);
    writer->Write(chunk);
    writer->WritesDone();
    return writer->Finish();
  }
};

TEST_F(MalformedRequests, UnknownAppOrVersionPointsToAppList) {
  ExpectRefused(OneTask("no-such-app"), absl::StatusCode::kNotFound, "artel app list");
  v1::SubmitRequest req = OneTask("echo");
  req.mutable_tasks(0)->set_version("9");
  ExpectRefused(req, absl::StatusCode::kNotFound, "artel app list");
  // One bad task rejects the whole request: the good one is not stored either.
  v1::SubmitRequest mixed = OneTask("echo", {"fine"});
  mixed.add_tasks()->set_app("no-such-app");
  ExpectRefused(mixed, absl::StatusCode::kNotFound, "task 2 of 2");
}

TEST_F(MalformedRequests, QuorumAboveMaxTotalPointsToTheFlag) {
  v1::SubmitRequest req = OneTask("echo");
  req.mutable_tasks(0)->mutable_policy()->set_min_quorum(3);
  req.mutable_tasks(0)->mutable_policy()->set_max_total_replicas(2);
  ExpectRefused(req, absl::StatusCode::kInvalidArgument, "--max-total");
}

TEST_F(MalformedRequests, InputNeverUploadedIsRefused) {
  v1::SubmitRequest req = OneTask("echo");
  v1::InputFile* in = req.mutable_tasks(0)->add_inputs();
  in->set_name("data.bin");
  in->set_digest(Sha256Hex("bytes that were never uploaded"));
  ExpectRefused(req, absl::StatusCode::kFailedPrecondition, "upload");
  in->set_digest("not-a-digest");
  ExpectRefused(req, absl::StatusCode::kFailedPrecondition, "upload");
}

TEST_F(MalformedRequests, UploadWhoseDataDoesNotMatchItsDigestIsNotStored) {
  const std::string declared = Sha256Hex("expected data");
  grpc::Status s = RawUpload(declared, 13, "tampered data");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("upload it again"));
  absl::StatusOr<std::vector<bool>> has = client().blobs().Has({declared});
  ASSERT_TRUE(has.ok()) << has.status();
  EXPECT_FALSE(has->at(0)) << "a blob with the wrong content was stored";
  // A task cannot use the digest either.
  v1::SubmitRequest req = OneTask("echo");
  v1::InputFile* in = req.mutable_tasks(0)->add_inputs();
  in->set_name("data.bin");
  in->set_digest(declared);
  ExpectRefused(req, absl::StatusCode::kFailedPrecondition, "upload");
}

TEST_F(MalformedRequests, UploadDeclaringMoreThanTheBlobLimitIsRefused) {
  grpc::Status s = RawUpload(Sha256Hex("big"), 5ull << 30, "");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("smaller"));
  // A header without a well-formed digest says what the first chunk must hold.
  s = RawUpload("xyz", 3, "abc");
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("digest"));
}

TEST_F(MalformedRequests, CorruptedStoredBlobIsNeverHandedOut) {
  absl::StatusOr<std::string> digest = client().blobs().UploadBytes("precious data");
  ASSERT_TRUE(digest.ok()) << digest.status();
  const auto stored = cluster().root() / "coordinator" / "blobs" / digest->substr(0, 2) / *digest;
  ASSERT_TRUE(std::filesystem::exists(stored)) << stored;
  std::filesystem::permissions(
      stored, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  WriteFile(stored, "precious dat4");  // same size, one byte flipped: bit rot
  const auto dest = dir() / "downloaded";
  absl::Status s = client().blobs().DownloadToFile(*digest, dest);
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr("digest mismatch"));
  EXPECT_FALSE(std::filesystem::exists(dest)) << "a corrupted download was left in place";
}

TEST_F(MalformedRequests, TokensAreCheckedForIdentityAndRole) {
  const tls::Trust trust = tls::TrustFromToken(cluster().admin_token());
  Client bogus(cluster().address(), "artel_not_a_real_token", trust);
  absl::StatusOr<v1::ListTasksResponse> listed = bogus.ListTasks({});
  EXPECT_EQ(listed.status().code(), absl::StatusCode::kUnauthenticated) << listed.status();
  EXPECT_THAT(std::string(listed.status().message()), HasSubstr("token"));
  absl::StatusOr<v1::SubmitResponse> sub = bogus.Submit(OneTask("echo"));
  EXPECT_EQ(sub.status().code(), absl::StatusCode::kUnauthenticated) << sub.status();
  Client anonymous(cluster().address(), "", trust);
  sub = anonymous.Submit(OneTask("echo"));
  EXPECT_EQ(sub.status().code(), absl::StatusCode::kUnauthenticated) << sub.status();
  EXPECT_THAT(std::string(sub.status().message()), HasSubstr("token"));

  Client worker(cluster().address(), cluster().worker_token());
  sub = worker.Submit(OneTask("echo"));
  EXPECT_EQ(sub.status().code(), absl::StatusCode::kPermissionDenied) << sub.status();
  EXPECT_THAT(std::string(sub.status().message()), HasSubstr("token"));
  ExpectNoTasks();

  absl::StatusOr<std::string> submitter_token = client().CreateToken(v1::ROLE_SUBMITTER);
  ASSERT_TRUE(submitter_token.ok()) << submitter_token.status();
  Client submitter(cluster().address(), *submitter_token);
  const auto app = dir() / "sneaky.sh";
  WriteExecutable(app, "#!/bin/sh\necho sneaky\n");
  absl::StatusOr<v1::AppVersion> added = submitter.AddApp("sneaky", "1", app);
  EXPECT_EQ(added.status().code(), absl::StatusCode::kPermissionDenied) << added.status();
  EXPECT_THAT(std::string(added.status().message()), HasSubstr("admin token"));
  absl::StatusOr<std::string> token = submitter.CreateToken(v1::ROLE_ADMIN);
  EXPECT_EQ(token.status().code(), absl::StatusCode::kPermissionDenied) << token.status();
  absl::StatusOr<v1::ListAppsResponse> apps = client().ListApps();
  ASSERT_TRUE(apps.ok()) << apps.status();
  for (const auto& a : apps->apps()) EXPECT_NE(a.name(), "sneaky");
  // The submitter token itself works for what it is for.
  sub = submitter.Submit(OneTask("echo"));
  EXPECT_TRUE(sub.ok()) << sub.status();
}

// `artel token create|list|revoke` as an operator uses them: the secret is
// printed once, the list never shows it, and a revoked token's next call
// fails with a message that says so and what to do.
TEST_F(MalformedRequests, RevokedTokenFailsItsNextCallAndTheListShowsWhy) {
  const std::vector<std::string> admin = {"ARTEL_COORDINATOR=" + cluster().address(),
                                          "ARTEL_TOKEN=" + cluster().admin_token()};
  CommandResult created = RunArtel(
      {"token", "create", "--role", "submitter", "--owner", "dana", "--expires", "30d"}, admin);
  ASSERT_EQ(created.exit_code, 0) << created.err;
  const std::string secret = Lines(created.out).at(0);
  // The printed token carries the coordinator's TLS pin after '#'; its id
  // names the secret alone.
  ASSERT_NE(secret.find('#'), std::string::npos) << secret;
  const std::string id = Sha256Hex(tls::SplitToken(secret).first).substr(0, 12);
  EXPECT_THAT(created.err, HasSubstr("token " + id));
  EXPECT_THAT(created.err, HasSubstr("owner dana"));

  const std::vector<std::string> dana = {"ARTEL_COORDINATOR=" + cluster().address(),
                                         "ARTEL_TOKEN=" + secret};
  EXPECT_EQ(RunArtel({"tasks"}, dana).exit_code, 0);

  CommandResult listed = RunArtel({"token", "list", "--json"}, admin);
  ASSERT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_EQ(listed.out.find(secret), std::string::npos) << "a secret was listed";
  bool found = false;
  for (const std::string& line : Lines(listed.out)) {
    const auto t = nlohmann::json::parse(line);
    if (t.at("id") != id) continue;
    found = true;
    EXPECT_EQ(t.at("role"), "submitter");
    EXPECT_EQ(t.at("owner"), "dana");
    EXPECT_EQ(t.at("expires_at_ms").get<int64_t>() - t.at("created_at_ms").get<int64_t>(),
              30LL * 24 * 3600 * 1000);
    EXPECT_EQ(t.at("revoked_at_ms"), 0);
  }
  EXPECT_TRUE(found) << listed.out;

  // Only an admin may revoke; an unknown id says where to look.
  EXPECT_NE(RunArtel({"token", "revoke", id}, dana).exit_code, 0);
  CommandResult unknown = RunArtel({"token", "revoke", "0123456789ab"}, admin);
  EXPECT_NE(unknown.exit_code, 0);
  EXPECT_THAT(unknown.err, HasSubstr("artel token list"));
  CommandResult revoked = RunArtel({"token", "revoke", id}, admin);
  ASSERT_EQ(revoked.exit_code, 0) << revoked.err;
  EXPECT_THAT(revoked.out, HasSubstr("revoked"));

  CommandResult refused = RunArtel({"tasks"}, dana);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_THAT(refused.err, HasSubstr("token " + id + " was revoked"));
  CommandResult table = RunArtel({"token", "list"}, admin);
  ASSERT_EQ(table.exit_code, 0) << table.err;
  EXPECT_THAT(table.out, HasSubstr(id));
  EXPECT_THAT(table.out, HasSubstr("REVOKED"));

  // Malformed flags are refused before anything is created.
  CommandResult bad_owner =
      RunArtel({"token", "create", "--role", "worker", "--owner", "a b"}, admin);
  EXPECT_NE(bad_owner.exit_code, 0);
  EXPECT_THAT(bad_owner.err, HasSubstr("owner"));
  CommandResult bad_expiry =
      RunArtel({"token", "create", "--role", "worker", "--expires", "soon"}, admin);
  EXPECT_EQ(bad_expiry.exit_code, 2);
  EXPECT_THAT(bad_expiry.err, HasSubstr("--expires"));
}

}  // namespace
}  // namespace artel::testing
