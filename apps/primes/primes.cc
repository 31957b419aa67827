// artel-primes LO HI
//
// Counts the primes in [LO, HI) by trial division: real, deterministic work
// for the demo. Prints "LO HI COUNT" to stdout and writes COUNT to
// $ARTEL_OUTPUT_DIR/count. Every 10,000 numbers it writes its progress to
// $ARTEL_CHECKPOINT_DIR/progress (via a temp file and rename, so a
// checkpoint is never half-written) and resumes from it when started again.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

namespace {

bool IsPrime(uint64_t n) {
  if (n < 2) return false;
  if (n % 2 == 0) return n == 2;
  for (uint64_t d = 3; d * d <= n; d += 2) {
    if (n % d == 0) return false;
  }
  return true;
}

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? "" : v;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: artel-primes LO HI\n");
    return 2;
  }
  char* end = nullptr;
  const uint64_t lo = std::strtoull(argv[1], &end, 10);
  if (*end != '\0') return std::fprintf(stderr, "LO is not a number\n"), 2;
  const uint64_t hi = std::strtoull(argv[2], &end, 10);
  if (*end != '\0' || hi < lo) return std::fprintf(stderr, "HI is not a number >= LO\n"), 2;

  const std::string ckpt_dir = Env("ARTEL_CHECKPOINT_DIR");
  uint64_t next = lo, count = 0;
  if (!ckpt_dir.empty()) {
    std::ifstream in(ckpt_dir + "/progress");
    uint64_t n = 0, c = 0;
    if (in >> n >> c && n >= lo && n <= hi) {
      next = n;
      count = c;
      std::fprintf(stderr, "resuming at %llu with %llu primes\n",
                   static_cast<unsigned long long>(next), static_cast<unsigned long long>(count));
    }
  }
  for (uint64_t n = next; n < hi; ++n) {
    count += IsPrime(n) ? 1 : 0;
    if (!ckpt_dir.empty() && (n + 1 - lo) % 10000 == 0) {
      const std::string tmp = ckpt_dir + "/progress.tmp";
      {
        std::ofstream out(tmp, std::ios::trunc);
        out << n + 1 << " " << count << "\n";
      }
      std::rename(tmp.c_str(), (ckpt_dir + "/progress").c_str());
    }
  }
  std::printf("%llu %llu %llu\n", static_cast<unsigned long long>(lo),
              static_cast<unsigned long long>(hi), static_cast<unsigned long long>(count));
  const std::string out_dir = Env("ARTEL_OUTPUT_DIR");
  if (!out_dir.empty()) std::ofstream(out_dir + "/count") << count << "\n";
  return 0;
}
