// artel-ml as a warm executor: the worker starts it once per job and hands
// it tasks as JSON lines (docs/EXECUTORS.md); models and shards stay loaded
// in its Session between tasks.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "commands.h"
#include "model.h"

namespace artel::ml {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

std::string FromEnv(const std::string& given, const char* var) {
  if (!given.empty()) return given;
  const char* v = std::getenv(var);
  return v == nullptr ? "" : v;
}

// Sends std::cout and std::cerr to strings while it lives.
class CapturedStreams {
 public:
  CapturedStreams()
      : out_(std::cout.rdbuf(stdout_.rdbuf())), err_(std::cerr.rdbuf(stderr_.rdbuf())) {}
  ~CapturedStreams() {
    std::cout.rdbuf(out_);
    std::cerr.rdbuf(err_);
  }
  std::string out() const { return stdout_.str(); }
  std::string err() const { return stderr_.str(); }

 private:
  std::ostringstream stdout_, stderr_;
  std::streambuf* out_;
  std::streambuf* err_;
};

// Runs one request; returns its response.
json Handle(const json& request, Session& session, const fs::path& home) {
  json response = {{"id", request.value("id", uint64_t{0})}};
  std::vector<std::string> args = {"artel-ml"};
  std::map<std::string, std::string> digests;
  fs::path dir, out;
  try {
    for (const auto& a : request.at("args")) args.push_back(a.get<std::string>());
    for (const auto& in : request.value("inputs", json::array())) {
      digests[in.at("name").get<std::string>()] = in.at("digest").get<std::string>();
    }
    dir = home / request.at("dir").get<std::string>();
    out = home / request.at("out").get<std::string>();
  } catch (const json::exception& e) {
    response["exit_code"] = 2;
    response["stderr"] = std::string("artel-ml: malformed request: ") + e.what() + "\n";
    return response;
  }
  std::error_code ec;
  fs::current_path(dir, ec);
  if (ec) {
    response["exit_code"] = 1;
    response["stderr"] = "artel-ml: cannot enter " + dir.string() + ": " + ec.message() + "\n";
    return response;
  }
  session.SetInputs(std::move(digests));
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  const auto started = std::chrono::steady_clock::now();
  int code;
  std::string captured_out, captured_err;
  {
    CapturedStreams streams;
    code = RunCommand(static_cast<int>(argv.size()), argv.data(), session,
                      {.in_executor = true, .out_dir = out.string()});
    captured_out = streams.out();
    captured_err = streams.err();
  }
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started)
                      .count();
  session.SetInputs({});
  fs::current_path(home, ec);
  response["exit_code"] = code;
  response["stdout"] = captured_out;
  response["stderr"] = captured_err;
  response["compute_ms"] = ms;
  return response;
}

}  // namespace

int Serve(const std::string& requests_path, const std::string& responses_path, int threads) {
  const std::string in_path = FromEnv(requests_path, "ARTEL_EXECUTOR_REQUESTS");
  const std::string out_path = FromEnv(responses_path, "ARTEL_EXECUTOR_RESPONSES");
  if (in_path.empty() || out_path.empty()) {
    std::cerr << "artel-ml serve: give --requests and --responses, or set "
                 "ARTEL_EXECUTOR_REQUESTS and ARTEL_EXECUTOR_RESPONSES\n";
    return 2;
  }
  std::ifstream in(in_path);
  std::ofstream out(out_path);
  if (!in || !out) {
    std::cerr << "artel-ml serve: cannot open " << in_path << " and " << out_path << "\n";
    return 2;
  }
  SetTorchThreads(threads);
  const fs::path home = fs::current_path();
  Session session;
  out << json{{"ready", true}, {"protocol", 1}, {"app", "artel-ml"}}.dump() << "\n" << std::flush;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    json request = json::parse(line, nullptr, /*allow_exceptions=*/false);
    json response;
    if (!request.is_object()) {
      response = {{"id", 0}, {"exit_code", 2}, {"stderr", "artel-ml: a request is not JSON\n"}};
    } else {
      response = Handle(request, session, home);
    }
    out << response.dump(-1, ' ', false, json::error_handler_t::replace) << "\n" << std::flush;
    if (!out) return 1;  // the worker is gone
  }
  return 0;
}

}  // namespace artel::ml
