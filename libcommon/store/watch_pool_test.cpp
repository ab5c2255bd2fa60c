// WatchPool: a kept descriptor comes back for the same paths, drained and
// still watching; a folder made again gets a descriptor that watches the
// new one; other paths or masks get their own; at most kMaxKept are kept,
// the oldest closed first.
#include "store/watch_pool.hpp"

#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "store/mail_store_cases.hpp"  // readable
#include "store/test_util.hpp"

namespace yubin::store {
namespace {

using test::readable;

constexpr uint32_t kMask = IN_CREATE | IN_DELETE;

void touch(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  ::close(fd);
}

// Whether fd is an open descriptor of this process.
bool isOpen(int fd) { return ::fcntl(fd, F_GETFD) != -1; }

}  // namespace

TEST_CASE("WatchPool: a kept descriptor comes back drained and still watching") {
  test::TempDir tmp;
  const std::string a = tmp.path() + "/a";
  REQUIRE(::mkdir(a.c_str(), 0700) == 0);
  WatchPool pool;
  Watch w = pool.take({a}, kMask);
  REQUIRE(w);
  const int fd = w.fd();
  touch(a + "/1");
  CHECK(readable(fd));
  pool.keep(std::move(w));
  CHECK(pool.kept() == 1);
  touch(a + "/2");  // while kept: stale when it comes back

  Watch again = pool.take({a}, kMask);
  REQUIRE(again);
  CHECK(again.fd() == fd);
  CHECK(pool.kept() == 0);
  CHECK_FALSE(readable(fd));
  touch(a + "/3");
  CHECK(readable(fd));
  again.drain();
  CHECK_FALSE(readable(fd));

  // Other paths, or another mask: a descriptor of their own.
  const std::string b = tmp.path() + "/b";
  REQUIRE(::mkdir(b.c_str(), 0700) == 0);
  pool.keep(std::move(again));
  Watch other = pool.take({b}, kMask);
  REQUIRE(other);
  CHECK(other.fd() != fd);
  Watch masked = pool.take({a}, IN_CREATE);
  REQUIRE(masked);
  CHECK(masked.fd() != fd);
  CHECK(pool.kept() == 1);
}

TEST_CASE("WatchPool: a folder made again while its descriptor is kept is watched anew") {
  test::TempDir tmp;
  const std::string a = tmp.path() + "/a";
  REQUIRE(::mkdir(a.c_str(), 0700) == 0);
  WatchPool pool;
  Watch w = pool.take({a, tmp.path()}, kMask);
  REQUIRE(w);
  pool.keep(std::move(w));
  REQUIRE(::rmdir(a.c_str()) == 0);
  REQUIRE(::mkdir(a.c_str(), 0700) == 0);
  Watch again = pool.take({a, tmp.path()}, kMask);
  REQUIRE(again);
  again.drain();
  CHECK_FALSE(readable(again.fd()));
  touch(a + "/new");
  CHECK(readable(again.fd()));
}

TEST_CASE("WatchPool: at most kMaxKept are kept, the oldest closed first; none without a path") {
  test::TempDir tmp;
  WatchPool pool;
  std::vector<int> fds;
  std::vector<Watch> ws;
  for (size_t i = 0; i <= WatchPool::kMaxKept; ++i) {
    const std::string d = tmp.path() + "/" + std::to_string(i);
    REQUIRE(::mkdir(d.c_str(), 0700) == 0);
    ws.push_back(pool.take({d}, kMask));
    REQUIRE(ws.back());
    fds.push_back(ws.back().fd());
  }
  for (Watch& w : ws) pool.keep(std::move(w));
  CHECK(pool.kept() == WatchPool::kMaxKept);
  CHECK_FALSE(isOpen(fds.front()));
  for (size_t i = 1; i < fds.size(); ++i) CHECK(isOpen(fds[i]));
  CHECK(pool.take({tmp.path() + "/1"}, kMask).fd() == fds[1]);

  // A path that cannot be watched: no descriptor (the session polls), and
  // nothing to keep.
  Watch none = pool.take({tmp.path() + "/missing"}, kMask);
  CHECK_FALSE(none);
  CHECK(none.fd() == -1);
  const size_t before = pool.kept();
  pool.keep(std::move(none));
  CHECK(pool.kept() == before);
}

}  // namespace yubin::store
