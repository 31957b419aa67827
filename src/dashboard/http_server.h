// The coordinator's HTTP side: the read-only web dashboard (static files
// embedded in the binary) and the API and /metrics behind it (api.h), on
// their own port beside gRPC. Plain HTTP, or HTTPS with the coordinator's
// certificate.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <thread>

#include "common/status.h"
#include "dashboard/api.h"

namespace httplib {
class Server;
}

namespace artel::dashboard {

struct HttpOptions {
  // host:port; port 0 picks a free one (see address()).
  std::string listen = "127.0.0.1:7780";
  // Both set: serve HTTPS with this certificate and key (PEM files).
  std::filesystem::path tls_cert, tls_key;
  // Serve the page files from this directory instead of the embedded ones
  // (to work on the dashboard without rebuilding). [embedded]
  std::filesystem::path assets_dir;
};

// Thread-safe. Destruction stops the server.
class HttpServer {
 public:
  // Binds and starts serving on a thread of its own. `api` must outlive the
  // server. Unavailable, naming the address, if it cannot bind.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpOptions& options,
                                                           const Api& api);
  ~HttpServer();

  // host:port actually bound.
  const std::string& address() const { return address_; }
  // "http" or "https".
  const std::string& scheme() const { return scheme_; }
  void Stop();

 private:
  HttpServer() = default;

  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_, scheme_;
};

}  // namespace artel::dashboard
