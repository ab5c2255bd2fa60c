// MemoryStore: the shared MailStore cases (mail_store_cases.hpp), plus what
// only the memory backend has: shared data between handles, default
// special-use mailboxes, error injection.
#include "store/memory_store.hpp"

#include <catch2/catch.hpp>

#include "store/mail_store_cases.hpp"

namespace yubin::store {
namespace {

using test::appendTo;
using test::listNames;
using test::readable;

struct MemoryHarness final : test::StoreHarness {
  std::shared_ptr<MemoryStoreData> data = std::make_shared<MemoryStoreData>();
  std::unique_ptr<MailStore> open() override { return std::make_unique<MemoryStore>(data); }
  void deliver(const std::string& mailbox, const std::string& bytes) override {
    MemoryStore s(data);
    REQUIRE(s.deliver(mailbox, bytes));
  }
};

TEST_CASE("MemoryStore: the MailStore cases") {
  MemoryHarness h;
  test::mailStoreCases(h);
}

TEST_CASE("MemoryStore: the mod-sequence cases (CONDSTORE)") {
  MemoryHarness h;
  test::modSeqCases(h);
}

TEST_CASE("MemoryStore: default mailboxes") {
  MemoryStore s(std::make_shared<MemoryStoreData>(true));
  CHECK(listNames(s) == std::vector<std::string>{"INBOX", "Archive \\Archive", "Drafts \\Drafts",
                                                 "Junk \\Junk", "Sent \\Sent", "Trash \\Trash"});
  auto subs = s.subscriptions();
  REQUIRE(subs);
  CHECK(subs->size() == 5);
}

TEST_CASE("MemoryStore: deliver hook") {
  MemoryStore s;
  CHECK(s.deliver("Nope", "x").error().errnum == ENOENT);
  auto uid = s.deliver("INBOX", "x\n", {kFlagSeen, {"K"}}, 42);
  REQUIRE(uid);
  CHECK(*uid == 1);
  auto mb = s.select("INBOX", false);
  REQUIRE(mb);
  CHECK((*mb)->messages()[0].internalDate == 42);
  CHECK((*mb)->messages()[0].flags == Flags{kFlagSeen, {"K"}});
}

TEST_CASE("MemoryStore: injected errors fail once") {
  const char* ops[] = {"list",        "subscriptions", "subscribe",     "create",
                       "remove",      "rename",        "status",        "select",
                       "beginAppend", "append.write",  "append.commit", "sync",
                       "open",        "setFlags",      "expunge",       "copy"};
  for (const char* op : ops) {
    INFO(op);
    MemoryStore s;
    REQUIRE(s.create("D", ""));
    REQUIRE(s.create("E", ""));
    appendTo(s, "INBOX", "x\n");
    auto mb = s.select("INBOX", false);
    REQUIRE(mb);
    auto call = [&]() -> int {
      const std::string o = op;
      auto err = [](const auto& r) { return r ? 0 : r.error().errnum; };
      if (o == "list") return err(s.list());
      if (o == "subscriptions") return err(s.subscriptions());
      if (o == "subscribe") return err(s.subscribe("D", true));
      if (o == "create") return err(s.create("F", ""));
      if (o == "remove") return err(s.remove("E"));
      if (o == "rename") return err(s.rename("D", "G"));
      if (o == "status") return err(s.status("INBOX"));
      if (o == "select") return err(s.select("INBOX", true));
      if (o == "beginAppend") return err(s.beginAppend("INBOX"));
      if (o == "append.write") {
        auto t = s.beginAppend("INBOX");
        return err((*t)->write("y"));
      }
      if (o == "append.commit") {
        auto t = s.beginAppend("INBOX");
        return err((*t)->commit({}, 0));
      }
      if (o == "sync") return err((*mb)->sync(true));
      if (o == "open") return err((*mb)->open(0));
      if (o == "setFlags") return err((*mb)->setFlags({0}, FlagOp::Add, {kFlagSeen, {}}));
      if (o == "expunge") return err((*mb)->expunge({0}));
      if (o == "copy") return err((*mb)->copy({0}, "D", false));
      FAIL("unknown op");
      return -1;
    };
    s.data()->failNext(op, EIO);
    CHECK(call() == EIO);
    CHECK(call() == 0);
  }
}

TEST_CASE("MemoryStore: a view of a deleted and re-created mailbox sees none of the new one") {
  MemoryStore s;
  REQUIRE(s.create("X", ""));
  appendTo(s, "X", "a\n");
  auto mb = s.select("X", false);
  REQUIRE(mb);
  MemoryStore other(s.data());
  REQUIRE(other.remove("X"));
  REQUIRE(other.create("X", ""));
  appendTo(other, "X", "b\n");
  CHECK(readable((*mb)->changeFd()));
  auto c = (*mb)->sync(true);
  REQUIRE(c);
  CHECK(c->expunged == std::vector<uint32_t>{1});
  CHECK_FALSE(c->existsChanged);
  CHECK((*mb)->messages().empty());
}

TEST_CASE("MemoryStore: mailbox names") {
  CHECK(*checkMailboxName("inbox", '.') == "INBOX");
  CHECK(*checkMailboxName("iNbOx.Sub", '.') == "INBOX.Sub");
  CHECK(*checkMailboxName("A.B", '.') == "A.B");
  CHECK(*checkMailboxName("A~", '.') == "A~");
  CHECK(checkMailboxName("A\\B", '.').error().errnum == EINVAL);
}

}  // namespace
}  // namespace yubin::store
