#include "metrics/metrics.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace artel::metrics {
namespace {

// Backslashes and newlines escaped, and double quotes too in label values
// (the exposition format leaves them alone in help text).
std::string Escape(const std::string& v, bool quotes) {
  std::string out;
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

// name{a="x",b="y"} (just the name without labels).
std::string Series(const std::string& name, const Labels& labels) {
  if (labels.empty()) return name;
  std::string out = name + "{";
  for (size_t i = 0; i < labels.size(); ++i) {
    if (i > 0) out += ",";
    out += labels[i].first + "=\"" + Escape(labels[i].second, /*quotes=*/true) + "\"";
  }
  return out + "}";
}

void Header(std::string& out, const std::string& name, const std::string& help,
            const std::string& type) {
  out += "# HELP " + name + " " + Escape(help, /*quotes=*/false) + "\n";
  out += "# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.0f", v);
    return buf;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Prefer the shortest representation that reads back the same.
  for (int precision = 6; precision < 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof(shorter), "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  const size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::Cumulative() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

void Exposition::Gauge(const std::string& name, const std::string& help, const Labels& labels,
                       double value) {
  Add(name, help, "gauge", labels, value);
}

void Exposition::Counter(const std::string& name, const std::string& help, const Labels& labels,
                         double value) {
  Add(name, help, "counter", labels, value);
}

void Exposition::Add(const std::string& name, const std::string& help, const std::string& type,
                     const Labels& labels, double value) {
  Family& f = families_[name];
  if (f.type.empty()) {
    f.help = help;
    f.type = type;
  }
  f.samples.emplace_back(labels, value);
}

metrics::Counter& Registry::GetCounter(const std::string& name, const std::string& help,
                                       const Labels& labels) {
  absl::MutexLock lock(&mu_);
  CounterFamily& f = counters_[name];
  if (f.help.empty()) f.help = help;
  std::unique_ptr<metrics::Counter>& c = f.series[labels];
  if (c == nullptr) c = std::make_unique<metrics::Counter>();
  return *c;
}

Histogram& Registry::GetHistogram(const std::string& name, const std::string& help,
                                  const std::vector<double>& bounds, const Labels& labels) {
  absl::MutexLock lock(&mu_);
  HistogramFamily& f = histograms_[name];
  if (f.help.empty()) f.help = help;
  std::unique_ptr<Histogram>& h = f.series[labels];
  if (h == nullptr) h = std::make_unique<Histogram>(bounds);
  return *h;
}

void Registry::AddCollector(Collector collector) {
  absl::MutexLock lock(&mu_);
  collectors_.push_back(std::move(collector));
}

std::string Registry::Render() const {
  Exposition collected;
  std::vector<Collector> collectors;
  {
    absl::MutexLock lock(&mu_);
    collectors = collectors_;
  }
  for (const Collector& c : collectors) c(collected);

  // Every family by name, whatever its source, so the output is sorted.
  std::map<std::string, std::string> rendered;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [name, f] : counters_) {
      std::string& out = rendered[name];
      Header(out, name, f.help, "counter");
      for (const auto& [labels, c] : f.series) {
        out += Series(name, labels) + " " + FormatValue(c->value()) + "\n";
      }
    }
    for (const auto& [name, f] : histograms_) {
      std::string& out = rendered[name];
      Header(out, name, f.help, "histogram");
      for (const auto& [labels, h] : f.series) {
        const std::vector<uint64_t> cumulative = h->Cumulative();
        for (size_t i = 0; i < cumulative.size(); ++i) {
          Labels with_le = labels;
          with_le.emplace_back("le", i < h->bounds().size() ? FormatValue(h->bounds()[i]) : "+Inf");
          out += Series(name + "_bucket", with_le) + " " + std::to_string(cumulative[i]) + "\n";
        }
        out += Series(name + "_sum", labels) + " " + FormatValue(h->sum()) + "\n";
        out += Series(name + "_count", labels) + " " + std::to_string(cumulative.back()) + "\n";
      }
    }
  }
  for (const auto& [name, f] : collected.families_) {
    std::string& out = rendered[name];
    if (!out.empty()) continue;  // a registered metric of that name wins
    Header(out, name, f.help, f.type);
    for (const auto& [labels, value] : f.samples) {
      out += Series(name, labels) + " " + FormatValue(value) + "\n";
    }
  }
  std::string all;
  for (const auto& [name, text] : rendered) all += text;
  return all;
}

}  // namespace artel::metrics
