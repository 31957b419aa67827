#include "server/rpc_metrics.h"

#include <chrono>
#include <string>

#include "absl/status/status.h"

namespace artel {
namespace {

class RpcMetricsInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcMetricsInterceptor(metrics::Registry& registry, const char* full_method)
      : registry_(registry), start_(std::chrono::steady_clock::now()) {
    // "/artel.v1.ClientService/Submit" -> service "ClientService", method "Submit".
    const std::string m = full_method == nullptr ? "" : full_method;
    const size_t slash = m.rfind('/');
    method_ = slash == std::string::npos ? m : m.substr(slash + 1);
    const std::string service = slash == std::string::npos ? "" : m.substr(0, slash);
    const size_t dot = service.rfind('.');
    service_ = dot == std::string::npos ? service.substr(service.empty() ? 0 : 1)
                                        : service.substr(dot + 1);
  }

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
      const metrics::Labels labels = {{"service", service_}, {"method", method_}};
      registry_
          .GetHistogram("artel_rpc_duration_seconds",
                        "Time from receiving a gRPC call to sending its status.",
                        metrics::LatencyBuckets(), labels)
          .Observe(seconds);
      const grpc::Status status = methods->GetSendStatus();
      if (!status.ok()) {
        metrics::Labels with_code = labels;
        with_code.emplace_back(
            "code", absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())));
        registry_
            .GetCounter("artel_rpc_errors_total", "gRPC calls answered with an error status.",
                        with_code)
            .Add();
      }
    }
    methods->Proceed();
  }

 private:
  metrics::Registry& registry_;
  const std::chrono::steady_clock::time_point start_;
  std::string service_, method_;
};

}  // namespace

grpc::experimental::Interceptor* RpcMetricsFactory::CreateServerInterceptor(
    grpc::experimental::ServerRpcInfo* info) {
  return new RpcMetricsInterceptor(registry_, info->method());
}

}  // namespace artel
