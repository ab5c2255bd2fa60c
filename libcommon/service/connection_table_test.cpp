// Tests for ConnectionTable: ownership, per-address counts, removal from
// inside a callback or a destructor, session IDs.
#include "service/connection_table.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <functional>
#include <set>

namespace yubin::service {
namespace {

struct Conn {
  Conn(int* alive, std::string name) : alive_(alive), name_(std::move(name)) { ++*alive_; }
  ~Conn() {
    --*alive_;
    if (onDestroy) onDestroy();
  }
  int* alive_;
  std::string name_;
  std::function<void()> onDestroy;
};

TEST_CASE("ConnectionTable counts per address and destroys on remove") {
  int alive = 0;
  ConnectionTable<Conn> t;
  Conn* a = t.add(std::make_unique<Conn>(&alive, "a"), "192.0.2.1");
  Conn* b = t.add(std::make_unique<Conn>(&alive, "b"), "192.0.2.1");
  Conn* c = t.add(std::make_unique<Conn>(&alive, "c"), "::1");
  CHECK(alive == 3);
  CHECK(t.size() == 3);
  CHECK(t.fromIp("192.0.2.1") == 2);
  CHECK(t.fromIp("::1") == 1);
  CHECK(t.fromIp("192.0.2.2") == 0);  // asking does not create an entry
  CHECK(t.fromIp("192.0.2.2") == 0);

  CHECK(t.remove(a));
  CHECK(alive == 2);
  CHECK(t.fromIp("192.0.2.1") == 1);
  CHECK_FALSE(t.contains(a));
  CHECK_FALSE(t.remove(a));  // twice: a no-op, the count is not taken again
  CHECK(t.fromIp("192.0.2.1") == 1);

  CHECK(t.remove(b));
  CHECK(t.fromIp("192.0.2.1") == 0);
  CHECK(t.contains(c));
  CHECK(t.size() == 1);
  t.clear();
  CHECK(alive == 0);
  CHECK(t.empty());
  CHECK(t.fromIp("::1") == 0);
}

TEST_CASE("ConnectionTable: a connection removing itself from its destructor") {
  int alive = 0;
  ConnectionTable<Conn> t;
  Conn* a = t.add(std::make_unique<Conn>(&alive, "a"), "10.0.0.1");
  bool again = true;
  a->onDestroy = [&] { again = t.remove(a); };
  CHECK(t.remove(a));
  CHECK_FALSE(again);
  CHECK(t.fromIp("10.0.0.1") == 0);

  Conn* b = t.add(std::make_unique<Conn>(&alive, "b"), "10.0.0.1");
  b->onDestroy = [&] { again = t.remove(b); };
  again = true;
  t.clear();
  CHECK_FALSE(again);
  CHECK(alive == 0);
}

TEST_CASE("ConnectionTable::forEach skips connections closed by an earlier call") {
  int alive = 0;
  ConnectionTable<Conn> t;
  std::vector<Conn*> all;
  for (int i = 0; i < 6; ++i)
    all.push_back(t.add(std::make_unique<Conn>(&alive, std::to_string(i)), "10.0.0.1"));
  std::set<std::string> all6;
  t.forEach([&](Conn& c) { all6.insert(c.name_); });
  CHECK(all6 == std::set<std::string>{"0", "1", "2", "3", "4", "5"});
  // The first visited connection closes every other one and itself: the
  // walk must not reach a destroyed one (and ASan would see it if it did).
  std::set<std::string> visited;
  t.forEach([&](Conn& c) {
    visited.insert(c.name_);
    for (Conn* other : all)
      if (other != &c) t.remove(other);
    t.remove(&c);
  });
  CHECK(visited.size() == 1);
  CHECK(t.empty());
  CHECK(alive == 0);
  CHECK(t.fromIp("10.0.0.1") == 0);
}

TEST_CASE("ConnectionTable session IDs are <pid hex>.<counter hex>") {
  ConnectionTable<Conn> t;
  char pid[16];
  std::snprintf(pid, sizeof pid, "%x", static_cast<unsigned>(::getpid()));
  CHECK(t.nextSessionId() == std::string(pid) + ".1");
  for (int i = 2; i < 16; ++i) t.nextSessionId();
  CHECK(t.nextSessionId() == std::string(pid) + ".10");
}

}  // namespace
}  // namespace yubin::service
