// Unit tests for MaildirUsageCache: a lookup without change does not scan;
// our own deliveries are counted without a scan; a message deleted or
// moved by someone else, a new folder, an entry past its age, a scan that
// replaced the entry between a lookup and added() are all seen; a missing
// Maildir; and four threads delivering into one Maildir end with the
// figure a full scan gives.
#include "store/quota.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "store/maildir.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using namespace yubin::store;
using test::listDir;
using test::TempDir;

namespace {

// Sets a directory's mtime far in the past, so that the next change the
// kernel makes to it shows whatever the clock's granularity.
void ageDir(const std::string& dir) {
  struct timespec ts[2] = {{1000000000, 0}, {1000000000, 0}};
  REQUIRE(::utimensat(AT_FDCWD, dir.c_str(), ts, 0) == 0);
}

uint64_t deliver(MaildirDeliverer& d, const std::string& root, const std::string& body,
                 std::string_view folder = "") {
  auto r = d.deliver(root, folder, "", MemorySource(body));
  REQUIRE(r);
  return r->size;
}

void checkSame(const Usage& a, const Usage& b) {
  CHECK(a.bytes == b.bytes);
  CHECK(a.messages == b.messages);
}

}  // namespace

TEST_CASE("usage cache: lookups, own deliveries, others' changes") {
  TempDir t;
  const std::string root = t / "Maildir";
  MaildirNameGenerator names;
  MaildirDeliverer d(realFs(), names);
  MaildirUsageCache cache;

  // Missing: empty, and a scan.
  auto u = cache.usage(root);
  REQUIRE(u);
  CHECK(u->usage.messages == 0);
  CHECK(cache.scans() == 1);

  deliver(d, root, "a\n");  // makes the folders: the root's mtime changes
  u = cache.usage(root);
  REQUIRE(u);
  CHECK(u->usage.messages == 1);
  CHECK(cache.scans() == 2);
  u = cache.usage(root);
  CHECK(cache.scans() == 2);  // nothing changed

  // Our own deliveries: counted, no scan.
  for (int i = 0; i < 5; ++i) {
    auto before = cache.usage(root);
    REQUIRE(before);
    uint64_t n = deliver(d, root, std::string(100 + i, 'x') + "\n");
    cache.added(root, before->generation, n);
  }
  u = cache.usage(root);
  REQUIRE(u);
  CHECK(cache.scans() == 2);
  checkSame(u->usage, *maildirUsage(root));
  CHECK(u->usage.messages == 6);

  SECTION("a message deleted by someone else") {
    ageDir(root + "/new");
    CHECK(cache.usage(root));  // takes the aged stamp
    const uint64_t scans = cache.scans();
    auto files = listDir(root + "/new");
    REQUIRE(::unlink((root + "/new/" + files[0]).c_str()) == 0);
    u = cache.usage(root);
    REQUIRE(u);
    CHECK(cache.scans() == scans + 1);
    CHECK(u->usage.messages == 5);
    checkSame(u->usage, *maildirUsage(root));
  }
  SECTION("a message moved to cur/ by a reader: same figure, after a scan") {
    ageDir(root + "/new");
    ageDir(root + "/cur");
    CHECK(cache.usage(root));
    const uint64_t scans = cache.scans();
    auto files = listDir(root + "/new");
    REQUIRE(::rename((root + "/new/" + files[0]).c_str(),
                     (root + "/cur/" + files[0] + ":2,S").c_str()) == 0);
    u = cache.usage(root);
    REQUIRE(u);
    CHECK(cache.scans() == scans + 1);
    CHECK(u->usage.messages == 6);
  }
  SECTION("a new folder with mail in it") {
    ageDir(root);
    CHECK(cache.usage(root));
    MaildirNameGenerator other;
    MaildirDeliverer d2(realFs(), other);
    deliver(d2, root, "in a folder\n", "Archive");
    u = cache.usage(root);
    REQUIRE(u);
    CHECK(u->usage.messages == 7);
    checkSame(u->usage, *maildirUsage(root));
    // And a deletion inside that folder is seen too.
    ageDir(root + "/.Archive/new");
    CHECK(cache.usage(root));
    auto files = listDir(root + "/.Archive/new");
    REQUIRE(files.size() == 1);
    REQUIRE(::unlink((root + "/.Archive/new/" + files[0]).c_str()) == 0);
    u = cache.usage(root);
    REQUIRE(u);
    CHECK(u->usage.messages == 6);
  }
  SECTION("a scan between a lookup and added(): the entry is dropped, never counted twice") {
    ageDir(root + "/new");
    auto stale = cache.usage(root);
    REQUIRE(stale);
    uint64_t n = deliver(d, root, "raced\n");
    u = cache.usage(root);  // new/ changed: a scan, which sees the message
    REQUIRE(u);
    CHECK(u->usage.messages == 7);
    const uint64_t scans = cache.scans();
    cache.added(root, stale->generation, n);
    u = cache.usage(root);
    REQUIRE(u);
    CHECK(cache.scans() == scans + 1);
    CHECK(u->usage.messages == 7);
  }
  SECTION("added() for a Maildir not in the cache is ignored") {
    cache.added(t / "other", 1, 100);
    u = cache.usage(t / "other");
    REQUIRE(u);
    CHECK(u->usage.messages == 0);
  }
}

TEST_CASE("usage cache: an entry past its age is scanned again") {
  TempDir t;
  const std::string root = t / "Maildir";
  MaildirNameGenerator names;
  MaildirDeliverer d(realFs(), names);
  deliver(d, root, "a\n");
  MaildirUsageCache cache(std::chrono::seconds(0));
  REQUIRE(cache.usage(root));
  REQUIRE(cache.usage(root));
  CHECK(cache.scans() == 2);
}

TEST_CASE("usage cache: an unreadable Maildir is an error, not an empty one") {
  if (::geteuid() == 0) return;  // root reads everything
  TempDir t;
  const std::string root = t / "Maildir";
  REQUIRE(::mkdir(root.c_str(), 0) == 0);
  MaildirUsageCache cache;
  CHECK_FALSE(cache.usage(root));
  ::chmod(root.c_str(), 0700);
}

TEST_CASE("usage cache: four threads delivering into one Maildir agree with a scan") {
  TempDir t;
  const std::string root = t / "Maildir";
  MaildirNameGenerator names;  // shared, as in mdad
  MaildirUsageCache cache;
  std::vector<std::thread> ts;
  for (int w = 0; w < 4; ++w) {
    ts.emplace_back([&, w] {
      MaildirDeliverer d(realFs(), names);
      for (int i = 0; i < 40; ++i) {
        auto before = cache.usage(root);
        if (!before) continue;
        auto r = d.deliver(root, "", "", MemorySource(std::string(10 + w * 40 + i, 'm') + "\n"));
        if (r) cache.added(root, before->generation, r->size);
      }
    });
  }
  for (auto& th : ts) th.join();
  auto u = cache.usage(root);
  REQUIRE(u);
  CHECK(u->usage.messages == 160);
  checkSame(u->usage, *maildirUsage(root));
  CHECK(listDir(root + "/new").size() == 160);
}
