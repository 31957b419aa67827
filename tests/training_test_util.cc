#include "training_test_util.h"

#include <memory>

#include "ml/dataset.h"
#include "ml/idx.h"

namespace artel::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kPython[] = "/usr/bin/python3";
constexpr char kFashionMnist[] = "/usr/share/datasets/fashion-mnist";

// Suite-wide state, set by SetUpTestSuite.
std::unique_ptr<TempDir>& SuiteDir() {
  static std::unique_ptr<TempDir> dir;
  return dir;
}
std::string& SkipReason() {
  static std::string reason;
  return reason;
}
std::string& SetupError() {
  static std::string error;
  return error;
}

fs::path ReferenceScript() { return fs::path(ARTEL_TESTS_SOURCE_DIR) / "training_reference.py"; }

// The first `n` samples of an IDX array (first dimension = samples).
ml::IdxArray FirstSamples(const ml::IdxArray& a, int64_t n) {
  ml::IdxArray out = a;
  out.shape[0] = n;
  out.u8.resize(static_cast<size_t>(out.numel()));
  return out;
}

// Writes the first `n` samples of an IDX image/label pair as one safetensors
// file (x F32 [n, 1, 28, 28] scaled to [0, 1], y I64 [n]).
absl::Status WriteSubset(const std::string& images, const std::string& labels, int64_t n,
                         const fs::path& out) {
  ASSIGN_OR_RETURN(ml::IdxArray x, ml::ReadIdx(fs::path(kFashionMnist) / images));
  ASSIGN_OR_RETURN(ml::IdxArray y, ml::ReadIdx(fs::path(kFashionMnist) / labels));
  ASSIGN_OR_RETURN(std::vector<ml::Shard> shards,
                   ml::ShardIdx(FirstSamples(x, n), FirstSamples(y, n), n));
  if (shards.size() != 1) return absl::InternalError("expected one shard");
  WriteFile(out, shards[0].bytes);
  return absl::OkStatus();
}

}  // namespace

CommandResult RunReference(const std::vector<std::string>& args,
                           std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {kPython, ReferenceScript().string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return RunProgram(argv, {}, timeout);
}

nlohmann::json ReferenceJson(const CommandResult& result) {
  const std::vector<std::string> lines = Lines(result.out);
  nlohmann::json j = nlohmann::json::parse(lines.empty() ? "" : lines.back(), nullptr, false);
  if (result.exit_code != 0 || j.is_discarded()) {
    ADD_FAILURE() << "training_reference.py exited " << result.exit_code
                  << "\nstdout: " << result.out << "\nstderr: " << result.err;
    return nullptr;
  }
  return j;
}

void TrainingTest::SetUpTestSuite() {
  SkipReason().clear();
  SetupError().clear();
  if (!fs::exists(ArtelMlBinary())) {
    SkipReason() = ArtelMlBinary().string() + " is not built (libtorch missing)";
    return;
  }
  for (const char* f : {"train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                        "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"}) {
    if (!fs::exists(fs::path(kFashionMnist) / f)) {
      SkipReason() = std::string("Fashion-MNIST is missing: no ") + kFashionMnist + "/" + f;
      return;
    }
  }
  SuiteDir() = std::make_unique<TempDir>();
  CommandResult model = RunReference({"model", ModelFile().string()});
  if (model.exit_code == 127 || model.err.find("No module named 'torch'") != std::string::npos) {
    SkipReason() = std::string(kPython) + " cannot import torch: " + model.err;
    return;
  }
  if (model.exit_code != 0) {
    SetupError() = "training_reference.py model failed: " + model.err;
    return;
  }
  absl::Status s = WriteSubset("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                               kTrainSamples, TrainFile());
  if (s.ok()) {
    s = WriteSubset("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz", kTestSamples,
                    TestFile());
  }
  if (!s.ok()) SetupError() = "cannot write the small data set: " + s.ToString();
}

void TrainingTest::TearDownTestSuite() { SuiteDir().reset(); }

void TrainingTest::SetUp() {
  if (!SkipReason().empty()) GTEST_SKIP() << SkipReason();
  ASSERT_TRUE(SetupError().empty()) << SetupError();
}

fs::path TrainingTest::ModelFile() { return SuiteDir()->path() / "net.pt"; }
fs::path TrainingTest::TrainFile() { return SuiteDir()->path() / "train.safetensors"; }
fs::path TrainingTest::TestFile() { return SuiteDir()->path() / "test.safetensors"; }
fs::path TrainingTest::ArtelMlBinary() { return ArtelBinary().parent_path() / "artel-ml"; }

std::vector<std::string> TrainingTest::Env() {
  return {"ARTEL_COORDINATOR=" + cluster().address(), "ARTEL_TOKEN=" + cluster().admin_token()};
}

void TrainingTest::StartTrainingCluster(int workers, std::vector<std::string> coordinator_args) {
  ASSERT_NO_FATAL_FAILURE(StartCluster(std::move(coordinator_args)));
  absl::StatusOr<v1::AppVersion> app =
      client().AddApp("artel-ml", "1", ArtelMlBinary(), cluster().signing_key());
  ASSERT_TRUE(app.ok()) << app.status();
  for (int i = 0; i < workers; ++i) {
    const std::string id = AddWorker("w" + std::to_string(i));
    ASSERT_FALSE(id.empty());
    worker_ids_.push_back(id);
  }
  CommandResult add =
      RunArtel({"data", "add", "small", "--safetensors", TrainFile().string(), "--test",
                TestFile().string(), "--shard-size", std::to_string(kShardSize), "--json"},
               Env());
  ASSERT_EQ(add.exit_code, 0) << add.out << add.err;
  nlohmann::json d = nlohmann::json::parse(Lines(add.out).at(0));
  ASSERT_EQ(d.at("train_samples"), kTrainSamples) << add.out;
  ASSERT_EQ(d.at("train_shards"), kTrainSamples / kShardSize) << add.out;
  ASSERT_EQ(d.at("test_samples"), kTestSamples) << add.out;
}

uint64_t TrainingTest::StartJob(v1::TrainingSpec spec) {
  absl::StatusOr<std::string> model = client().blobs().UploadFile(ModelFile());
  EXPECT_TRUE(model.ok()) << model.status();
  if (!model.ok()) return 0;
  spec.set_model_digest(*model);
  spec.set_dataset("small");
  absl::StatusOr<v1::TrainingJob> job = client().StartTraining(spec);
  EXPECT_TRUE(job.ok()) << job.status();
  return job.ok() ? job->id() : 0;
}

uint64_t TrainingTest::TrainWithCli(const std::vector<std::string>& args, CommandResult* result,
                                    std::chrono::milliseconds timeout) {
  std::vector<std::string> all = {"train",  "--model", ModelFile().string(),
                                  "--data", "small",   "--json"};
  all.insert(all.end(), args.begin(), args.end());
  CommandResult r = RunArtel(all, Env(), timeout);
  const std::vector<std::string> lines = Lines(r.out);
  nlohmann::json first = nlohmann::json::parse(lines.empty() ? "" : lines[0], nullptr, false);
  uint64_t id = 0;
  if (first.is_object() && first.contains("id")) id = first["id"].get<uint64_t>();
  EXPECT_NE(id, 0u) << "artel train printed no job id; exit " << r.exit_code << "\n"
                    << r.out << r.err;
  if (result != nullptr) *result = std::move(r);
  return id;
}

std::optional<v1::TrainingJob> TrainingTest::WaitJob(
    uint64_t id, const std::function<bool(const v1::TrainingJob&)>& condition,
    std::chrono::milliseconds timeout) {
  std::optional<v1::TrainingJob> found;
  PollUntil(
      [&] {
        absl::StatusOr<v1::TrainingJob> j = client().GetTrainingJob(id);
        if (j.ok() && condition(*j)) found = *j;
        return found.has_value();
      },
      timeout);
  return found;
}

v1::TrainingJob TrainingTest::WaitJobDone(uint64_t id, std::chrono::milliseconds timeout) {
  std::optional<v1::TrainingJob> j = WaitJob(
      id,
      [](const v1::TrainingJob& j) {
        return j.state() == v1::TRAINING_STATE_DONE || j.state() == v1::TRAINING_STATE_FAILED;
      },
      timeout);
  if (!j.has_value()) {
    absl::StatusOr<v1::TrainingJob> last = client().GetTrainingJob(id);
    ADD_FAILURE() << "training job " << id << " did not finish within " << timeout.count()
                  << " ms; last seen: "
                  << (last.ok() ? last->ShortDebugString() : last.status().ToString());
    return last.ok() ? *last : v1::TrainingJob();
  }
  EXPECT_EQ(j->state(), v1::TRAINING_STATE_DONE) << "job " << id << " failed: " << j->reason();
  return *j;
}

}  // namespace artel::testing
