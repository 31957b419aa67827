#include "sandbox/sandbox_spec_util.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <map>

#include "absl/strings/str_cat.h"

namespace artel {

std::vector<std::string> SandboxEnvironment(const SandboxSpec& spec, const std::string& work,
                                            const std::string& output,
                                            const std::string& checkpoint) {
  std::map<std::string, std::string> vars{{"PATH", "/usr/bin:/bin"}};
  for (const auto& [name, value] : spec.env) vars[name] = value;
  vars["HOME"] = work;
  vars["ARTEL_WORK_DIR"] = work;
  vars["ARTEL_OUTPUT_DIR"] = output;
  vars["ARTEL_CHECKPOINT_DIR"] = checkpoint;
  std::vector<std::string> env;
  for (const auto& [name, value] : vars) env.push_back(absl::StrCat(name, "=", value));
  return env;
}

absl::Status ValidateSandboxSpec(const SandboxSpec& spec) {
  struct stat st {};
  if (::stat(spec.executable.c_str(), &st) != 0 || !S_ISREG(st.st_mode) ||
      ::access(spec.executable.c_str(), X_OK) != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("sandbox: app executable '", spec.executable.string(),
                     "' is missing or not an executable regular file; check the app cache"));
  }
  const std::pair<const char*, const std::filesystem::path*> dirs[] = {
      {"work_dir", &spec.work_dir},
      {"output_dir", &spec.output_dir},
      {"checkpoint_dir", &spec.checkpoint_dir}};
  for (const auto& [what, dir] : dirs) {
    std::error_code ec;
    if (dir->empty() || !std::filesystem::is_directory(*dir, ec)) {
      return absl::FailedPreconditionError(absl::StrCat(
          "sandbox: ", what, " '", dir->string(), "' is not a directory; create it before Run"));
    }
  }
  for (const auto& [name, value] : spec.env) {
    if (name.empty() || name.find('=') != std::string::npos ||
        name.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("sandbox: environment variable name '", name,
                                                     "' is invalid; use NAME without '='"));
    }
  }
  return absl::OkStatus();
}

}  // namespace artel
