// Data-set commands: `artel data add` cuts a data set into safetensors shards
// locally, uploads them as blobs and registers the data set; `artel data list`.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "cli/cli_common.h"
#include "common/units.h"
#include "ml/dataset.h"
#include "ml/idx.h"
#include "ml/safetensors.h"

namespace artel::cli {
namespace {

struct DataAddFlags {
  Connection conn;
  std::string name;
  std::string idx_images, idx_labels, test_images, test_labels;
  std::string safetensors, test;
  int64_t shard_size = 2000;
  bool json = false;
};

// The shards of one split plus the shape of one sample ("x" without its first
// dimension), read from the first shard so both input formats agree.
struct Split {
  std::vector<ml::Shard> shards;
  std::vector<int64_t> sample_shape;
  uint64_t samples = 0;
};

absl::StatusOr<Split> MakeSplit(absl::StatusOr<std::vector<ml::Shard>> shards) {
  if (!shards.ok()) return shards.status();
  Split split;
  split.shards = *std::move(shards);
  if (split.shards.empty()) return absl::InvalidArgumentError("the data set has no samples");
  ASSIGN_OR_RETURN(ml::TensorMap first, ml::ParseSafetensors(split.shards[0].bytes));
  const std::vector<int64_t>& x_shape = first.tensors.at("x").shape;
  split.sample_shape.assign(x_shape.begin() + 1, x_shape.end());
  for (const ml::Shard& s : split.shards) split.samples += static_cast<uint64_t>(s.samples);
  return split;
}

// Errors name the file(s): the readers' messages do; sharding errors get them
// prefixed.
absl::StatusOr<Split> ShardIdxFiles(const std::string& images, const std::string& labels,
                                    int64_t shard_size) {
  ASSIGN_OR_RETURN(ml::IdxArray x, ml::ReadIdx(images));
  ASSIGN_OR_RETURN(ml::IdxArray y, ml::ReadIdx(labels));
  absl::StatusOr<Split> split = MakeSplit(ml::ShardIdx(x, y, shard_size));
  if (!split.ok()) {
    return absl::Status(split.status().code(),
                        images + " and " + labels + ": " + std::string(split.status().message()));
  }
  return split;
}

absl::StatusOr<Split> ShardSafetensorsFile(const std::string& file, int64_t shard_size) {
  ASSIGN_OR_RETURN(ml::TensorMap data, ml::ReadSafetensors(file));
  absl::StatusOr<Split> split = MakeSplit(ml::ShardSafetensors(data, shard_size));
  if (!split.ok()) {
    return absl::Status(split.status().code(), file + ": " + std::string(split.status().message()));
  }
  return split;
}

// "[1, 28, 28]" for a vector or a repeated proto field.
template <typename Shape>
std::string ShapeString(const Shape& shape) {
  std::string s = "[";
  for (int64_t dim : shape) s += (s.size() > 1 ? ", " : "") + std::to_string(dim);
  return s + "]";
}

// Uploads every shard of `split`, printing "uploading <what> shard i/n" to
// stderr (one line rewritten in place on a terminal).
std::vector<v1::ShardRef> Upload(Client& client, const Split& split, const std::string& what) {
  const bool tty = isatty(STDERR_FILENO) != 0;
  std::vector<v1::ShardRef> refs;
  for (size_t i = 0; i < split.shards.size(); ++i) {
    const ml::Shard& shard = split.shards[i];
    std::cerr << (tty ? "\r" : "") << "uploading " << what << " shard " << i + 1 << "/"
              << split.shards.size() << " (" << FormatBytes(shard.bytes.size()) << ")"
              << (tty ? "   " : "\n") << std::flush;
    v1::ShardRef ref;
    ref.set_digest(OrFail(client.blobs().UploadBytes(shard.bytes)));
    ref.set_samples(static_cast<uint64_t>(shard.samples));
    ref.set_size(shard.bytes.size());
    refs.push_back(ref);
  }
  if (tty) std::cerr << "\n";
  return refs;
}

nlohmann::json DatasetJson(const v1::Dataset& d) {
  uint64_t bytes = 0;
  for (const auto& s : d.train()) bytes += s.size();
  for (const auto& s : d.test()) bytes += s.size();
  return {{"name", d.name()},
          {"train_samples", d.train_samples()},
          {"test_samples", d.test_samples()},
          {"train_shards", d.train_size()},
          {"test_shards", d.test_size()},
          {"sample_shape", std::vector<int64_t>(d.sample_shape().begin(), d.sample_shape().end())},
          {"bytes", bytes},
          {"created_at_ms", d.created_at_ms()}};
}

void Add(const DataAddFlags& f) {
  const bool idx = !f.idx_images.empty() || !f.idx_labels.empty();
  const bool st = !f.safetensors.empty();
  if (idx && st) Fail("give either --idx-images/--idx-labels or --safetensors, not both", 2);
  if (!idx && !st) {
    Fail(
        "give the training data: --idx-images F --idx-labels F (MNIST format) or "
        "--safetensors F (tensors \"x\" F32 and \"y\" I64)",
        2);
  }
  if (idx && (f.idx_images.empty() || f.idx_labels.empty())) {
    Fail("--idx-images and --idx-labels go together; give both", 2);
  }
  if (f.test_images.empty() != f.test_labels.empty()) {
    Fail("--test-images and --test-labels go together; give both or neither", 2);
  }
  if (st && !f.test_images.empty()) {
    Fail("--test-images/--test-labels are for IDX data; with --safetensors use --test F", 2);
  }
  if (idx && !f.test.empty()) {
    Fail("--test is for --safetensors data; with IDX data use --test-images/--test-labels", 2);
  }
  if (f.shard_size < 1) Fail("--shard-size must be at least 1", 2);
  for (const std::string* file :
       {&f.idx_images, &f.idx_labels, &f.test_images, &f.test_labels, &f.safetensors, &f.test}) {
    std::error_code ec;
    if (!file->empty() && !std::filesystem::is_regular_file(*file, ec)) {
      Fail("data file '" + *file + "' does not exist or is not a file", 2);
    }
  }
  auto client = Connect(f.conn);

  std::cerr << "reading and sharding " << (idx ? f.idx_images : f.safetensors) << std::endl;
  Split train = OrFail(idx ? ShardIdxFiles(f.idx_images, f.idx_labels, f.shard_size)
                           : ShardSafetensorsFile(f.safetensors, f.shard_size));
  Split test;
  const bool has_test = !f.test_images.empty() || !f.test.empty();
  if (has_test) {
    test = OrFail(idx ? ShardIdxFiles(f.test_images, f.test_labels, f.shard_size)
                      : ShardSafetensorsFile(f.test, f.shard_size));
    if (test.sample_shape != train.sample_shape) {
      Fail("test samples have shape " + ShapeString(test.sample_shape) + " but training samples " +
               ShapeString(train.sample_shape) + "; give test data of the same kind",
           2);
    }
  }

  v1::Dataset d;
  d.set_name(f.name);
  for (auto& ref : Upload(*client, train, "train")) *d.add_train() = ref;
  if (has_test) {
    for (auto& ref : Upload(*client, test, "test")) *d.add_test() = ref;
  }
  d.mutable_sample_shape()->Add(train.sample_shape.begin(), train.sample_shape.end());
  d.set_train_samples(train.samples);
  d.set_test_samples(test.samples);
  v1::Dataset added = OrFail(client->AddDataset(d));
  if (f.json) {
    std::cout << DatasetJson(added).dump() << std::endl;
    return;
  }
  std::cout << "data set " << added.name() << ": " << added.train_samples()
            << " training samples in " << added.train_size() << " shard(s), "
            << added.test_samples() << " test samples in " << added.test_size()
            << " shard(s), sample shape " << ShapeString(added.sample_shape()) << std::endl;
  if (!has_test) {
    std::cout << "note: no test data; training jobs on it report no test accuracy" << std::endl;
  }
}

void List(const Connection& conn, bool json) {
  v1::ListDatasetsResponse resp = OrFail(Connect(conn)->ListDatasets());
  if (!json) {
    std::printf("%-20s %-10s %-10s %-12s %-10s %s\n", "NAME", "TRAIN", "TEST", "SHARDS", "SIZE",
                "SAMPLE SHAPE");
  }
  for (const v1::Dataset& d : resp.datasets()) {
    if (json) {
      std::cout << DatasetJson(d).dump() << "\n";
      continue;
    }
    const nlohmann::json j = DatasetJson(d);
    const std::string shards = std::to_string(d.train_size()) + "+" + std::to_string(d.test_size());
    std::printf("%-20s %-10llu %-10llu %-12s %-10s %s\n", d.name().c_str(),
                static_cast<unsigned long long>(d.train_samples()),
                static_cast<unsigned long long>(d.test_samples()), shards.c_str(),
                FormatBytes(j["bytes"].get<uint64_t>()).c_str(),
                ShapeString(d.sample_shape()).c_str());
  }
  std::cout.flush();
}

}  // namespace

void AddDataCommands(CLI::App& app) {
  CLI::App* data = app.add_subcommand("data", "register and list training data sets");
  data->require_subcommand(1);

  auto af = std::make_shared<DataAddFlags>();
  CLI::App* add =
      data->add_subcommand("add", "cut a data set into shards here, upload and register them");
  add->footer(
      "Give the training data in one of two forms:\n"
      "  MNIST-style IDX files: --idx-images F --idx-labels F [--test-images F --test-labels F]\n"
      "  safetensors (\"x\" F32 [n, ...], \"y\" I64 [n]): --safetensors F [--test F]\n"
      "Test data is optional; without it training reports no test accuracy.");
  AddConnectionOptions(add, &af->conn);
  add->add_option("name", af->name, "name of the data set (used by `artel train --data`)")
      ->required();
  add->add_option("--idx-images", af->idx_images, "training images, IDX format (.gz or plain)");
  add->add_option("--idx-labels", af->idx_labels, "training labels, IDX format (.gz or plain)");
  add->add_option("--test-images", af->test_images, "test images, IDX format");
  add->add_option("--test-labels", af->test_labels, "test labels, IDX format");
  add->add_option("--safetensors", af->safetensors, "training data as one safetensors file");
  add->add_option("--test", af->test, "test data as one safetensors file");
  add->add_option("--shard-size", af->shard_size, "samples per shard")->capture_default_str();
  add->add_flag("--json", af->json, "print the registered data set as JSON");
  add->callback([af] { Add(*af); });

  struct ListFlags {
    Connection conn;
    bool json = false;
  };
  auto lf = std::make_shared<ListFlags>();
  CLI::App* list = data->add_subcommand("list", "list registered data sets");
  AddConnectionOptions(list, &lf->conn);
  list->add_flag("--json", lf->json, "one JSON object per line");
  list->callback([lf] { List(lf->conn, lf->json); });
}

}  // namespace artel::cli
