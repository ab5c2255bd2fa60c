// Tests of the login process's choice of mail process (mrad.hpp:
// mailProcessIndex, mailProcessCount): stable, in range, spread over the
// processes. Trust: test code.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <set>
#include <string>
#include <vector>

#include "mrad/mrad.hpp"

namespace yubin::mrad {
namespace {

TEST_CASE("mailProcessIndex: one process takes everyone") {
  for (const char* u : {"", "alice@example.org", "bob@example.net"}) {
    CHECK(mailProcessIndex(u, 1) == 0);
    CHECK(mailProcessIndex(u, 0) == 0);
  }
}

TEST_CASE("mailProcessIndex: fixed values (FNV-1a 64, stable across builds)") {
  struct Case {
    const char* user;
    size_t n;
    size_t want;
  };
  // FNV-1a 64 of "" is 0xcbf29ce484222325, of "a" 0xaf63dc4c8601ec8c.
  const Case cases[] = {
      {"", 2, 0xcbf29ce484222325ULL % 2},
      {"", 7, 0xcbf29ce484222325ULL % 7},
      {"a", 3, 0xaf63dc4c8601ec8cULL % 3},
      {"a", 1000, 0xaf63dc4c8601ec8cULL % 1000},
  };
  for (const Case& c : cases) {
    INFO(c.user << " over " << c.n);
    CHECK(mailProcessIndex(c.user, c.n) == c.want);
  }
}

TEST_CASE("mailProcessIndex: stable, in range, case and byte exact") {
  for (size_t n : {2u, 3u, 4u, 16u}) {
    for (const std::string u : {"alice@example.org", "Alice@example.org", "x", "\xff\x00z"}) {
      const size_t i = mailProcessIndex(u, n);
      CHECK(i < n);
      CHECK(mailProcessIndex(u, n) == i);
      CHECK(mailProcessIndex(std::string(u), n) == i);
    }
  }
  // The local part is exact (case-sensitive), so these may differ; at
  // least the function must see every byte, NUL included.
  const std::string withNul("a\0b", 3);
  CHECK(mailProcessIndex(withNul, 1u << 30) != mailProcessIndex("a", 1u << 30));
}

TEST_CASE("mailProcessIndex: users spread over the processes") {
  for (size_t n : {2u, 3u, 4u, 8u}) {
    std::vector<size_t> counts(n, 0);
    const size_t users = 1000 * n;
    for (size_t k = 0; k < users; ++k)
      ++counts[mailProcessIndex("user" + std::to_string(k) + "@example.org", n)];
    for (size_t i = 0; i < n; ++i) {
      INFO("n=" << n << " index=" << i << " count=" << counts[i]);
      CHECK(counts[i] > 800);  // 1000 expected each
      CHECK(counts[i] < 1200);
    }
  }
  // Ten users like the benchmark's reach all three processes.
  std::set<size_t> seen;
  for (int k = 1; k <= 10; ++k)
    seen.insert(mailProcessIndex("bench" + std::to_string(k) + "@example.org", 3));
  CHECK(seen.size() == 3);
}

TEST_CASE("mailProcessCount: configured count, or one per online CPU") {
  CHECK(mailProcessCount(1) == 1);
  CHECK(mailProcessCount(3) == 3);
  const long cpus = ::sysconf(_SC_NPROCESSORS_ONLN);
  CHECK(mailProcessCount(0) == static_cast<size_t>(cpus > 0 ? cpus : 1));
}

}  // namespace
}  // namespace yubin::mrad
