#include "dashboard/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include "coordinator/coordinator_test_util.h"

namespace artel::dashboard {
namespace {

class HttpServerTest : public coordinator_test::CoordinatorTest {
 protected:
  metrics::Registry registry_;
  Throughput throughput_;
};

TEST_F(HttpServerTest, ServesThePageAndRefusesASecondServerOnItsPort) {
  Api api(*coord_, registry_, throughput_);
  HttpOptions options;
  options.listen = "127.0.0.1:0";
  absl::StatusOr<std::unique_ptr<HttpServer>> first = HttpServer::Start(options, api);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ((*first)->scheme(), "http");

  httplib::Client http("http://" + (*first)->address());
  httplib::Result page = http.Get("/");
  ASSERT_TRUE(page);
  EXPECT_EQ(page->status, 200);
  EXPECT_NE(page->get_header_value("Content-Type").find("text/html"), std::string::npos);
  httplib::Result missing = http.Get("/nothing.js");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  httplib::Result api_call = http.Get("/api/overview");
  ASSERT_TRUE(api_call);
  EXPECT_EQ(api_call->status, 401);

  // Two coordinators on one host must not share a dashboard port.
  options.listen = (*first)->address();
  absl::StatusOr<std::unique_ptr<HttpServer>> second = HttpServer::Start(options, api);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(second.status().message().find("--http off"), std::string::npos);
}

TEST_F(HttpServerTest, ABadAddressSaysWhatItShouldLookLike) {
  Api api(*coord_, registry_, throughput_);
  HttpOptions options;
  options.listen = "localhost";
  absl::StatusOr<std::unique_ptr<HttpServer>> s = HttpServer::Start(options, api);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.status().message().find("127.0.0.1:7780"), std::string::npos);
}

}  // namespace
}  // namespace artel::dashboard
