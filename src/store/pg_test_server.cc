#include "store/pg_test_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/subprocess.h"

namespace artel {
namespace {

// The newest /usr/lib/postgresql/VERSION/bin holding initdb.
std::filesystem::path FindBinDir() {
  std::error_code ec;
  std::filesystem::path best;
  int best_version = -1;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && std::filesystem::exists(entry.path() / "bin" / "initdb")) {
      best_version = version;
      best = entry.path() / "bin";
    }
  }
  return best;
}

// A port nobody listens on now (the kernel's pick for port 0).
absl::StatusOr<int> FreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return absl::InternalError("socket() failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return absl::InternalError("cannot find a free port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgTestServer>> PgTestServer::Start() {
  std::unique_ptr<PgTestServer> s(new PgTestServer());
  s->bin_ = FindBinDir();
  if (s->bin_.empty()) {
    return absl::FailedPreconditionError(
        "PostgreSQL is not installed (no /usr/lib/postgresql/*/bin/initdb); install Debian's "
        "postgresql package (scripts/setup.sh does)");
  }
  std::string tmpl = "/tmp/artel-pg-XXXXXX";
  if (mkdtemp(tmpl.data()) == nullptr) return absl::InternalError("mkdtemp failed");
  s->dir_ = tmpl;
  if (geteuid() == 0) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError(
          "running as root, but there is no `postgres` user to run PostgreSQL as; install "
          "Debian's postgresql package");
    }
    s->user_ = "postgres";
    if (chown(s->dir_.c_str(), pw->pw_uid, pw->pw_gid) != 0) {
      return absl::InternalError("cannot hand " + s->dir_.string() + " to postgres");
    }
  }
  ASSIGN_OR_RETURN(s->port_, FreePort());
  RETURN_IF_ERROR(s->Run({"initdb", "-D", (s->dir_ / "data").string(), "-U", "artel",
                          "--auth=trust", "-E", "UTF8", "--no-sync"},
                         "initdb"));
  RETURN_IF_ERROR(s->RunPgCtl("start"));
  return s;
}

PgTestServer::~PgTestServer() {
  if (running_) (void)Stop();
  std::error_code ec;
  if (!dir_.empty()) std::filesystem::remove_all(dir_, ec);
}

std::string PgTestServer::Url(const std::string& db) const {
  return absl::StrCat("postgres://artel@127.0.0.1:", port_, "/", db);
}

absl::StatusOr<std::string> PgTestServer::CreateDatabase(const std::string& db) {
  RETURN_IF_ERROR(
      Run({"createdb", "-h", "127.0.0.1", "-p", std::to_string(port_), "-U", "artel", db},
          "createdb " + db));
  return Url(db);
}

absl::Status PgTestServer::Stop() {
  RETURN_IF_ERROR(RunPgCtl("stop"));
  running_ = false;
  return absl::OkStatus();
}

absl::Status PgTestServer::Restart() { return RunPgCtl("start"); }

absl::Status PgTestServer::RunPgCtl(const std::string& action) {
  std::vector<std::string> args = {"pg_ctl", "-D", (dir_ / "data").string(),      "-w", "-t",
                                   "60",     "-l", (dir_ / "server.log").string()};
  if (action == "stop") {
    args.insert(args.end(), {"-m", "immediate", "stop"});
  } else {
    // Loopback only, sockets in our directory, on our port.
    args.insert(
        args.end(),
        {"-o", absl::StrCat("-p ", port_, " -k ", dir_.string(), " -c listen_addresses=127.0.0.1"),
         action});
  }
  RETURN_IF_ERROR(Run(args, "pg_ctl " + action));
  running_ = action != "stop";
  return absl::OkStatus();
}

absl::Status PgTestServer::Run(const std::vector<std::string>& args, const std::string& what) {
  std::vector<std::string> argv;
  if (!user_.empty()) argv = {"/usr/sbin/runuser", "-u", user_, "--"};
  argv.push_back((bin_ / args[0]).string());
  argv.insert(argv.end(), args.begin() + 1, args.end());
  const std::filesystem::path log = dir_ / "tools.log";
  absl::StatusOr<Subprocess> tool = Subprocess::Start(argv, log);
  const int rc = tool.ok() ? tool->Wait() : -1;
  if (rc != 0) {
    std::string tail;
    if (FILE* f = std::fopen(log.c_str(), "r")) {
      char buf[4096];
      size_t n;
      while ((n = std::fread(buf, 1, sizeof(buf), f)) > 0) tail.append(buf, n);
      std::fclose(f);
    }
    if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
    return absl::InternalError(absl::StrCat(what, " failed (exit ", rc, "): ", tail));
  }
  return absl::OkStatus();
}

}  // namespace artel
