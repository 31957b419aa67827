#include "dashboard/http_server.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "dashboard/assets.h"

namespace artel::dashboard {
namespace {

// The page loads only its own files: no inline script, no framing.
void SecurityHeaders(httplib::Response& res) {
  res.set_header("Content-Security-Policy",
                 "default-src 'self'; img-src 'self' data: blob:; frame-ancestors 'none'");
  res.set_header("X-Content-Type-Options", "nosniff");
  res.set_header("Referrer-Policy", "no-referrer");
}

void Send(httplib::Response& res, const HttpResponse& r) {
  SecurityHeaders(res);
  res.status = r.status;
  res.set_content(r.body, r.content_type);
  // API answers change all the time and may be private.
  res.set_header("Cache-Control", "no-store");
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpOptions& options,
                                                              const Api& api) {
  const size_t colon = options.listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(options.listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError("--http '" + options.listen +
                                      "' is not HOST:PORT; e.g. 127.0.0.1:7780 (port 0: any free "
                                      "port), or `off`");
  }
  std::string host = options.listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  std::unique_ptr<HttpServer> s(new HttpServer());
  if (!options.tls_cert.empty()) {
    auto ssl =
        std::make_unique<httplib::SSLServer>(options.tls_cert.c_str(), options.tls_key.c_str());
    if (!ssl->is_valid()) {
      return absl::InvalidArgumentError("cannot serve HTTPS with " + options.tls_cert.string() +
                                        " and " + options.tls_key.string() +
                                        "; check that they are a PEM certificate and its key");
    }
    s->server_ = std::move(ssl);
    s->scheme_ = "https";
  } else {
    s->server_ = std::make_unique<httplib::Server>();
    s->scheme_ = "http";
  }
  httplib::Server& server = *s->server_;
  // SO_REUSEADDR only: the library's default adds SO_REUSEPORT, which lets a
  // second coordinator bind the same port and take half the requests.
  server.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_keep_alive_max_count(100);
  server.set_payload_max_length(1 << 16);  // GET only: no bodies
  auto api_handler = [&api](const httplib::Request& req, httplib::Response& res) {
    std::map<std::string, std::string> query;
    for (const auto& [k, v] : req.params) query.emplace(k, v);
    Send(res, api.Get(req.path, query, req.get_header_value("Authorization")));
  };
  server.Get("/metrics", api_handler);
  server.Get("/api/.*", api_handler);
  if (!options.assets_dir.empty() && !server.set_mount_point("/", options.assets_dir.string())) {
    return absl::InvalidArgumentError("--http-assets '" + options.assets_dir.string() +
                                      "' is not a directory");
  }
  server.Get(".*", [](const httplib::Request& req, httplib::Response& res) {
    const Asset* asset = FindAsset(req.path == "/" ? "/index.html" : req.path);
    if (asset == nullptr) {
      res.status = 404;
      res.set_content("no such page; the dashboard is at /\n", "text/plain");
      return;
    }
    SecurityHeaders(res);
    res.set_content(std::string(asset->data, asset->size), asset->content_type);
    res.set_header("Cache-Control", "no-cache");
  });
  if (port == 0) {
    port = server.bind_to_any_port(host);
  } else if (!server.bind_to_port(host, port)) {
    port = -1;
  }
  if (port <= 0) {
    return absl::UnavailableError("cannot serve the dashboard on " + options.listen +
                                  ": the address is in use or not this host's; pass another "
                                  "--http (port 0 picks a free one) or --http off");
  }
  s->address_ =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  s->thread_ = std::thread([&server] { server.listen_after_bind(); });
  return s;
}

void HttpServer::Stop() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
}

HttpServer::~HttpServer() { Stop(); }

}  // namespace artel::dashboard
