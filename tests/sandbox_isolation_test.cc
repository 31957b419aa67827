// A submitted app cannot reach the network or write outside its directories
// on a real worker.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cluster_test_util.h"

namespace artel::testing {
namespace {

// A TCP socket listening on 127.0.0.1 (any free port), non-blocking.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) != 0 ||
        ::listen(fd_, 8) != 0 ||
        ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      ADD_FAILURE() << "cannot listen on 127.0.0.1";
      return;
    }
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() {
    if (fd_ >= 0) ::close(fd_);
  }
  int port() const { return port_; }
  // True if a connection is waiting (and accepts it).
  bool Accepted() {
    const int c = ::accept(fd_, nullptr, nullptr);
    if (c >= 0) ::close(c);
    return c >= 0;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
};

class SandboxIsolation : public ClusterTest {};

TEST_F(SandboxIsolation, AppCannotReachNetworkOrWriteOutsideItsDirectories) {
  Listener listener;
  ASSERT_GT(listener.port(), 0);
  StartCluster();
  const auto host_file = dir() / "escaped";
  // Each attempt prints what happened; the app exits 7 if any was refused.
  std::string script = R"(#!/bin/sh
refused=0
bash -c 'echo bash-runs'
if bash -c 'echo hello > /dev/tcp/127.0.0.1/@PORT@' 2>/dev/null; then echo net:connected; else echo net:refused; refused=1; fi
if echo x > '@HOST_FILE@' 2>/dev/null; then echo host:written; else echo host:refused; refused=1; fi
if echo x > /usr/x 2>/dev/null; then echo usr:written; else echo usr:refused; refused=1; fi
if echo x > /etc/x 2>/dev/null; then echo etc:written; else echo etc:refused; refused=1; fi
echo inside > "$ARTEL_OUTPUT_DIR/allowed"
[ $refused -eq 0 ] || exit 7
)";
  script.replace(script.find("@PORT@"), 6, std::to_string(listener.port()));
  script.replace(script.find("@HOST_FILE@"), 11, host_file.string());
  AddScriptApp("escape", script);
  AddWorker("w1");
  absl::StatusOr<v1::SubmitResponse> resp = client().Submit(OneTask("escape"));
  ASSERT_TRUE(resp.ok()) << resp.status();
  const uint64_t id = resp->task_ids(0);
  v1::TaskInfo t = WaitDone(id);

  EXPECT_EQ(t.outcome(), v1::OUTCOME_APP_ERROR) << t.reason();
  ASSERT_EQ(t.replicas_size(), 1);
  EXPECT_EQ(t.replicas(0).exit_code(), 7);
  const std::string out = Output(id, "stdout");
  EXPECT_NE(out.find("bash-runs"), std::string::npos)
      << "bash did not run: the test proves nothing\n"
      << out;
  EXPECT_NE(out.find("net:refused"), std::string::npos) << out;
  EXPECT_NE(out.find("usr:refused"), std::string::npos) << out;
  EXPECT_NE(out.find("etc:refused"), std::string::npos) << out;
  // Its own output directory is writable.
  EXPECT_EQ(Output(id, "allowed"), "inside\n");

  EXPECT_FALSE(listener.Accepted()) << "the app connected to the host's loopback";
  std::error_code ec;
  EXPECT_FALSE(std::filesystem::exists(host_file, ec)) << "the app wrote " << host_file;
  EXPECT_FALSE(std::filesystem::exists("/usr/x", ec));
  EXPECT_FALSE(std::filesystem::exists("/etc/x", ec));
}

}  // namespace
}  // namespace artel::testing
