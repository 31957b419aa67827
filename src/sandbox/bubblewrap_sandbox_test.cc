// Isolation that only BubblewrapSandbox promises: no network, nothing of the
// host writable or visible beyond the three directories.
#include "sandbox/bubblewrap_sandbox.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "gtest/gtest.h"
#include "sandbox/plain_process_sandbox.h"
#include "sandbox/sandbox_test_util.h"

namespace artel {
namespace {

using testing::MakeSpec;
using testing::TempDir;
using testing::UniqueSleepToken;
using testing::WriteScript;

class BubblewrapSandboxTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto sandbox = BubblewrapSandbox::Create();
    ASSERT_TRUE(sandbox.ok()) << sandbox.status();
    sandbox_ = *std::move(sandbox);
  }

  SandboxResult Run(Sandbox& sandbox, const std::string& body,
                    const std::string& interpreter = "/bin/sh") {
    SandboxSpec spec = MakeSpec(dir_.path(), WriteScript(dir_.path(), "app.sh", body, interpreter));
    auto result = sandbox.Run(spec, CancelFlag());
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : SandboxResult{};
  }
  SandboxResult Run(const std::string& body, const std::string& interpreter = "/bin/sh") {
    return Run(*sandbox_, body, interpreter);
  }

  TempDir dir_;
  std::unique_ptr<BubblewrapSandbox> sandbox_;
};

TEST_F(BubblewrapSandboxTest, CreateFailsClearlyWithoutBwrap) {
  auto sandbox = BubblewrapSandbox::Create("/nonexistent/bwrap");
  ASSERT_FALSE(sandbox.ok());
  EXPECT_NE(sandbox.status().message().find("bubblewrap not found"), std::string::npos);
}

TEST_F(BubblewrapSandboxTest, IsIsolated) { EXPECT_TRUE(sandbox_->isolated()); }

TEST_F(BubblewrapSandboxTest, InternetIsUnreachable) {
  SandboxResult result = Run("exec 3<>/dev/tcp/1.1.1.1/80 && echo connected", "/bin/bash");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.stdout_data, "");
}

TEST_F(BubblewrapSandboxTest, HostLoopbackIsUnreachable) {
  int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(listener, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener, 8), 0);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  const std::string connect =
      "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(ntohs(addr.sin_port)) + " && echo connected";

  PlainProcessSandbox plain;  // control: the port is reachable from the host
  EXPECT_EQ(Run(plain, connect, "/bin/bash").stdout_data, "connected\n");
  SandboxResult result = Run(connect, "/bin/bash");
  EXPECT_NE(result.exit_code, 0);
  EXPECT_EQ(result.stdout_data, "");
  ::close(listener);
}

TEST_F(BubblewrapSandboxTest, SystemDirectoriesAndTheAppAreReadOnly) {
  const std::string token = UniqueSleepToken();
  const std::string usr_file = "/usr/artel_probe_" + token;
  const std::string etc_file = "/etc/artel_probe_" + token;
  SandboxResult result =
      Run("for f in " + usr_file + " " + etc_file +
          " \"$0\"; do (echo x >> \"$f\") 2>/dev/null && echo \"wrote $f\"; done; exit 0");
  EXPECT_EQ(result.exit_code, 0) << result.stderr_data;
  EXPECT_EQ(result.stdout_data, "");
  EXPECT_FALSE(std::filesystem::exists(usr_file));
  EXPECT_FALSE(std::filesystem::exists(etc_file));
}

TEST_F(BubblewrapSandboxTest, HostTempDirectoriesAreNeitherVisibleNorWritable) {
  // dir_ holds the bound directories, but is not bound itself.
  const std::string host_dir = dir_.path().string();
  const std::string host_tmp_file = "/tmp/artel_probe_" + UniqueSleepToken();
  SandboxResult result = Run("[ -e " + host_dir +
                             " ] && echo visible\n"
                             "(echo x > " +
                             host_dir +
                             "/escape) 2>/dev/null && echo wrote\n"
                             "echo x > " +
                             host_tmp_file + " || echo tmp-not-writable\nexit 0");
  EXPECT_EQ(result.stdout_data, "") << "the sandbox's own /tmp is writable but private";
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "escape"));
  EXPECT_FALSE(std::filesystem::exists(host_tmp_file));
}

TEST_F(BubblewrapSandboxTest, HostHomeAndOtherDirectoriesAreNotVisible) {
  SandboxResult result =
      Run("for d in /root /home /work /var /srv /mnt /opt; do [ -e $d ] && echo $d; done; exit 0");
  EXPECT_EQ(result.stdout_data, "");
}

TEST_F(BubblewrapSandboxTest, EtcSecretsAreMasked) {
  ASSERT_TRUE(std::filesystem::exists("/etc/shadow"));
  SandboxResult result = Run("cat /etc/shadow; exit 0");
  EXPECT_EQ(result.stdout_data, "");
}

TEST_F(BubblewrapSandboxTest, AppRunsFromArtelAppDirInItsOwnPidNamespace) {
  SandboxResult result = Run("echo \"$0\"; ls /proc | grep -c '^[0-9]'");
  EXPECT_EQ(result.stdout_data.substr(0, result.stdout_data.find('\n')), "/artel/app/app.sh");
  // bwrap's pid 1, the shell, ls and grep: a handful, not the host's list.
  EXPECT_LT(std::stoi(result.stdout_data.substr(result.stdout_data.find('\n') + 1)), 8);
}

}  // namespace
}  // namespace artel
