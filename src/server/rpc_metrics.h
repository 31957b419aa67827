// A gRPC server interceptor that times every RPC into the histogram
// artel_rpc_duration_seconds{service, method} and counts failed ones in
// artel_rpc_errors_total{service, method, code}.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include "metrics/metrics.h"

namespace artel {

// Thread-safe; `registry` must outlive the server it is installed in.
class RpcMetricsFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcMetricsFactory(metrics::Registry& registry) : registry_(registry) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(
      grpc::experimental::ServerRpcInfo* info) override;

 private:
  metrics::Registry& registry_;
};

}  // namespace artel
