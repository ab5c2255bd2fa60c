// The MailStore conformance cases, run against every backend
// (memory_store_test.cpp, maildir_store_test.cpp): the same SECTIONs, with
// a harness that opens further handles on the same user ("another
// session") and delivers a message from outside. Test-only.
#pragma once

#include <poll.h>

#include <catch2/catch.hpp>
#include <memory>
#include <string>
#include <vector>

#include "store/mail_store.hpp"

namespace yubin::store::test {

struct StoreHarness {
  virtual ~StoreHarness() = default;
  // A new handle on the same mailboxes (another session).
  virtual std::unique_ptr<MailStore> open() = 0;
  // A message arriving from the delivery agent into mailbox.
  virtual void deliver(const std::string& mailbox, const std::string& bytes) = 0;
};

inline bool readable(int fd) {
  if (fd < 0) return false;
  struct pollfd p {
    fd, POLLIN, 0
  };
  return ::poll(&p, 1, 0) == 1;
}

inline std::string readAll(ImapMailbox& mb, size_t index) {
  auto r = mb.open(index);
  REQUIRE(r);
  std::string out;
  for (;;) {
    auto n = (*r)->read(out, 5);
    REQUIRE(n);
    if (*n == 0) break;
  }
  return out;
}

inline uint32_t appendTo(MailStore& s, const std::string& name, const std::string& bytes,
                         Flags flags = {}, int64_t date = 0) {
  auto t = s.beginAppend(name);
  REQUIRE(t);
  REQUIRE((*t)->write(bytes.substr(0, bytes.size() / 2)));
  REQUIRE((*t)->write(bytes.substr(bytes.size() / 2)));
  auto r = (*t)->commit(flags, date);
  REQUIRE(r);
  REQUIRE(r->uids.size() == 1);
  return r->uids[0];
}

inline std::vector<std::string> listNames(MailStore& s) {
  auto l = s.list();
  REQUIRE(l);
  std::vector<std::string> out;
  for (const auto& e : *l)
    out.push_back(e.name + (e.noSelect ? "!" : "") + (e.hasChildren ? "+" : "") +
                  (e.specialUse.empty() ? "" : " " + e.specialUse));
  return out;
}

inline std::vector<uint32_t> uids(const ImapMailbox& mb) {
  std::vector<uint32_t> out;
  for (const auto& m : mb.messages()) out.push_back(m.uid);
  return out;
}

inline void mailStoreCases(StoreHarness& h) {
  auto s = h.open();
  REQUIRE(s->delimiter() == '.');

  SECTION("INBOX exists and is empty") {
    REQUIRE(listNames(*s) == std::vector<std::string>{"INBOX"});
    auto mb = s->select("INBOX", false);
    REQUIRE(mb);
    CHECK((*mb)->messages().empty());
    CHECK((*mb)->uidNext() == 1);
    CHECK((*mb)->uidValidity() != 0);
    CHECK_FALSE((*mb)->readOnly());
    auto st = s->status("inbox");
    REQUIRE(st);
    CHECK(st->messages == 0);
    CHECK(st->uidNext == 1);
    CHECK(st->uidValidity == (*mb)->uidValidity());
  }

  SECTION("create, parents, list order, special-use") {
    REQUIRE(s->create("Work.2024.Q1", ""));
    REQUIRE(s->create("Archive", "\\Archive"));
    REQUIRE(s->create("Zeta", ""));
    CHECK(s->create("Work.2024", "").error().errnum == EEXIST);
    CHECK(s->create("INBOX", "").error().errnum == EEXIST);
    CHECK(s->create("X", "\\Bogus").error().errnum == EINVAL);
    CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "Archive \\Archive", "Work+",
                                                    "Work.2024+", "Work.2024.Q1", "Zeta"});
    // Parents are real mailboxes.
    CHECK(s->select("Work", false));
    CHECK(s->status("Work.2024"));
    // Another session sees them.
    auto other = h.open();
    CHECK(listNames(*other) == listNames(*s));
  }

  SECTION("names that could leave the mail folder are refused") {
    for (const char* bad : {"", ".", "..", "A..B", ".A", "A.", "A/B", "/etc", "~root", "A.~x",
                            "A.\x01", "A\x7f", "..A", "A.."}) {
      INFO(bad);
      auto st = s->create(bad, "");
      REQUIRE_FALSE(st);
      CHECK(st.error().errnum == EINVAL);
      CHECK(s->select(bad, false).error().errnum == EINVAL);
      CHECK(s->status(bad).error().errnum == EINVAL);
      CHECK(s->beginAppend(bad).error().errnum == EINVAL);
      CHECK(s->rename("INBOX", bad).error().errnum == EINVAL);
    }
    CHECK(s->create(std::string("A\0B", 3), "").error().errnum == EINVAL);
    CHECK(listNames(*s) == std::vector<std::string>{"INBOX"});
  }

  SECTION("non-ASCII names round-trip") {
    REQUIRE(s->create("Entwürfe.日本", ""));
    REQUIRE(s->create("a&b", ""));
    CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "Entwürfe+", "Entwürfe.日本", "a&b"});
    appendTo(*s, "Entwürfe.日本", "Subject: x\n\nbody\n");
    auto st = s->status("Entwürfe.日本");
    REQUIRE(st);
    CHECK(st->messages == 1);
  }

  SECTION("append, status, UIDs, sizes, internal date, reading") {
    const std::string m1 = "Subject: one\n\nline\n", m2 = "Subject: two\r\n\r\nx\r\n";
    CHECK(appendTo(*s, "INBOX", m1, {kFlagSeen, {"$Label1"}}, 1700000000) == 1);
    CHECK(appendTo(*s, "INBOX", m2) == 2);
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->messages == 2);
    CHECK(st->recent == 2);
    CHECK(st->unseen == 1);
    CHECK(st->deleted == 0);
    CHECK(st->uidNext == 3);
    CHECK(st->size == (m1.size() + 3) + m2.size());
    auto mb = s->select("INBOX", false);
    REQUIRE(mb);
    auto v = (*mb)->messages();
    REQUIRE(v.size() == 2);
    CHECK(v[0].uid == 1);
    CHECK(v[0].flags.system == kFlagSeen);
    CHECK(v[0].flags.keywords == std::vector<std::string>{"$Label1"});
    CHECK(v[0].internalDate == 1700000000);
    CHECK(v[0].size == m1.size() + 3);
    CHECK(v[0].recent);
    CHECK(v[1].size == m2.size());
    CHECK(v[1].internalDate > 1700000000);
    CHECK((*mb)->uidNext() == 3);
    CHECK(readAll(**mb, 0) == m1);
    CHECK(readAll(**mb, 1) == m2);
    CHECK((*mb)->keywords() == std::vector<std::string>{"$Label1"});
    CHECK((*mb)->open(2).error().errnum == EINVAL);
  }

  SECTION("a dropped append leaves nothing; append to a missing mailbox") {
    {
      auto t = s->beginAppend("INBOX");
      REQUIRE(t);
      REQUIRE((*t)->write("Subject: dropped\n\n"));
    }
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->messages == 0);
    CHECK(s->beginAppend("Nope").error().errnum == ENOENT);
    CHECK(s->select("Nope", false).error().errnum == ENOENT);
    CHECK(s->status("Nope").error().errnum == ENOENT);
  }

  SECTION("\\Recent goes to the first read-write selector; EXAMINE does not take it") {
    appendTo(*s, "INBOX", "a\n");
    auto ro = s->select("INBOX", true);
    REQUIRE(ro);
    CHECK((*ro)->readOnly());
    CHECK((*ro)->messages().at(0).recent);
    auto s2 = h.open();
    auto rw1 = s2->select("INBOX", false);
    REQUIRE(rw1);
    CHECK((*rw1)->messages().at(0).recent);
    auto rw2 = h.open()->select("INBOX", false);
    REQUIRE(rw2);
    CHECK_FALSE((*rw2)->messages().at(0).recent);
    CHECK(s->status("INBOX")->recent == 0);
    // A new message: the first read-write session to sync takes it.
    h.deliver("INBOX", "b\n");
    auto c2 = (*rw2)->sync(true);
    REQUIRE(c2);
    CHECK(c2->existsChanged);
    REQUIRE((*rw2)->messages().size() == 2);
    CHECK((*rw2)->messages()[1].recent);
    REQUIRE((*rw1)->sync(true));
    CHECK_FALSE((*rw1)->messages().at(1).recent);
  }

  SECTION("flags: add, remove, replace, keywords; another session sees them") {
    for (int i = 0; i < 3; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
    auto a = s->select("INBOX", false);
    auto s2 = h.open();
    auto b = s2->select("INBOX", false);
    REQUIRE(a);
    REQUIRE(b);
    (*b)->drainChangeFd();
    REQUIRE((*a)->setFlags({0, 2}, FlagOp::Add, {kFlagSeen | kFlagFlagged, {"Work"}}));
    CHECK((*a)->messages()[0].flags == Flags{kFlagSeen | kFlagFlagged, {"Work"}});
    REQUIRE((*a)->setFlags({0}, FlagOp::Remove, {kFlagFlagged, {"WORK"}}));
    CHECK((*a)->messages()[0].flags == Flags{kFlagSeen, {}});
    REQUIRE((*a)->setFlags({1}, FlagOp::Replace, {kFlagAnswered | kFlagDraft, {"work", "Other"}}));
    CHECK((*a)->messages()[1].flags.system == (kFlagAnswered | kFlagDraft));
    auto kw = (*a)->messages()[1].flags.keywords;
    std::sort(kw.begin(), kw.end());
    CHECK(kw == std::vector<std::string>{"Other", "Work"});
    auto all = (*a)->keywords();
    std::sort(all.begin(), all.end());
    CHECK(all == std::vector<std::string>{"Other", "Work"});
    // Nothing changed for a itself.
    auto ca = (*a)->sync(true);
    REQUIRE(ca);
    CHECK(ca->flagsChanged.empty());
    CHECK_FALSE(ca->existsChanged);

    if ((*b)->changeFd() >= 0) CHECK(readable((*b)->changeFd()));
    auto cb = (*b)->sync(false);
    REQUIRE(cb);
    CHECK(cb->flagsChanged == std::vector<size_t>{0, 1, 2});
    CHECK((*b)->messages()[0].flags == Flags{kFlagSeen, {}});
    CHECK((*b)->messages()[2].flags == Flags{kFlagSeen | kFlagFlagged, {"Work"}});
    (*b)->drainChangeFd();
    if ((*b)->changeFd() >= 0) CHECK_FALSE(readable((*b)->changeFd()));
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->unseen == 1);
    // \Deleted counts in STATUS DELETED.
    REQUIRE((*a)->setFlags({1}, FlagOp::Add, {kFlagDeleted, {}}));
    CHECK(s->status("INBOX")->deleted == 1);
    // Out of range.
    CHECK((*a)->setFlags({3}, FlagOp::Add, {kFlagSeen, {}}).error().errnum == EINVAL);
  }

  SECTION("read-only: no flag changes, no expunge") {
    appendTo(*s, "INBOX", "a\n");
    auto ro = s->select("INBOX", true);
    REQUIRE(ro);
    CHECK((*ro)->setFlags({0}, FlagOp::Add, {kFlagSeen, {}}).error().errnum == EROFS);
    CHECK((*ro)->expunge({0}).error().errnum == EROFS);
    CHECK_FALSE((*ro)->canCreateKeywords());
  }

  SECTION("keywords are bounded at 26 per mailbox") {
    appendTo(*s, "INBOX", "a\n");
    auto mb = s->select("INBOX", false);
    REQUIRE(mb);
    Flags f;
    for (int i = 0; i < 26; ++i) f.keywords.push_back("kw" + std::to_string(i));
    CHECK((*mb)->canCreateKeywords());
    REQUIRE((*mb)->setFlags({0}, FlagOp::Add, f));
    CHECK((*mb)->keywords().size() == 26);
    CHECK_FALSE((*mb)->canCreateKeywords());
    REQUIRE((*mb)->setFlags({0}, FlagOp::Add, {0, {"one-too-many", "KW3"}}));
    CHECK((*mb)->messages()[0].flags.keywords.size() == 26);
    CHECK((*mb)->keywords().size() == 26);
  }

  SECTION("expunge: kept marked until sync(true), in both sessions") {
    for (int i = 0; i < 5; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
    auto a = s->select("INBOX", false);
    auto s2 = h.open();
    auto b = s2->select("INBOX", false);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE((*a)->setFlags({1, 3, 4}, FlagOp::Add, {kFlagDeleted, {}}));
    REQUIRE((*a)->expunge({1, 3, 4}));
    CHECK((*a)->messages().size() == 5);
    CHECK((*a)->messages()[1].expunged);
    CHECK((*a)->open(1).error().errnum == ENOENT);
    auto k = (*a)->sync(false);
    REQUIRE(k);
    CHECK(k->expunged.empty());
    CHECK((*a)->messages().size() == 5);
    auto ca = (*a)->sync(true);
    REQUIRE(ca);
    CHECK(ca->expunged == std::vector<uint32_t>{5, 4, 2});
    CHECK(ca->expungedUids == std::vector<uint32_t>{5, 4, 2});
    CHECK(uids(**a) == std::vector<uint32_t>{1, 3});
    CHECK(readAll(**a, 1) == "m2\n");

    if ((*b)->changeFd() >= 0) CHECK(readable((*b)->changeFd()));
    auto cb = (*b)->sync(false);
    REQUIRE(cb);
    CHECK(cb->expunged.empty());
    CHECK((*b)->messages().size() == 5);
    CHECK((*b)->messages()[3].expunged);
    CHECK((*b)->open(3).error().errnum == ENOENT);
    CHECK(readAll(**b, 2) == "m2\n");
    // A new message meanwhile comes after the marked ones.
    h.deliver("INBOX", "m5\n");
    auto cb2 = (*b)->sync(false);
    REQUIRE(cb2);
    CHECK(cb2->existsChanged);
    CHECK((*b)->messages().size() == 6);
    auto cb3 = (*b)->sync(true);
    REQUIRE(cb3);
    CHECK(cb3->expunged == std::vector<uint32_t>{5, 4, 2});
    CHECK(uids(**b) == std::vector<uint32_t>{1, 3, 6});
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->messages == 3);
    CHECK(st->uidNext == 7);
  }

  SECTION("expunged elsewhere: numbers, flags and size stay until sync(true)") {
    for (int i = 0; i < 4; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
    auto a = s->select("INBOX", false);
    auto s2 = h.open();
    auto b = s2->select("INBOX", false);
    REQUIRE(a);
    REQUIRE(b);
    REQUIRE((*a)->setFlags({1}, FlagOp::Add, {kFlagDeleted | kFlagFlagged, {"Gone"}}));
    auto cb = (*b)->sync(false);
    REQUIRE(cb);
    CHECK(cb->flagsChanged == std::vector<size_t>{1});
    const MessageInfo before = (*b)->messages()[1];
    CHECK(before.flags == Flags{kFlagDeleted | kFlagFlagged, {"Gone"}});
    REQUIRE((*a)->expunge({1}));
    REQUIRE((*a)->sync(true));
    CHECK(uids(**a) == std::vector<uint32_t>{1, 3, 4});
    // b: before its next sync, after a sync(false) and after a STORE
    // elsewhere, the same four numbers; message 2 keeps its last data.
    for (int round = 0; round < 3; ++round) {
      INFO("round " << round);
      if (round == 1) REQUIRE((*b)->sync(false));
      if (round == 2) {
        REQUIRE((*a)->setFlags({1}, FlagOp::Add, {kFlagSeen, {}}));  // uid 3
        auto c = (*b)->sync(false);
        REQUIRE(c);
        CHECK(c->flagsChanged == std::vector<size_t>{2});
        CHECK(c->expunged.empty());
      }
      REQUIRE((*b)->messages().size() == 4);
      CHECK(uids(**b) == std::vector<uint32_t>{1, 2, 3, 4});
      const MessageInfo m = (*b)->messages()[1];
      if (round > 0) CHECK(m.expunged);
      CHECK(m.uid == 2);
      CHECK(m.flags == before.flags);
      CHECK(m.size == before.size);
      CHECK(m.internalDate == before.internalDate);
      CHECK_FALSE((*b)->messages()[2].expunged);
      CHECK(readAll(**b, 2) == "m2\n");
      CHECK(readAll(**b, 3) == "m3\n");
    }
    CHECK((*b)->messages()[2].flags.system == kFlagSeen);
    cb = (*b)->sync(true);
    REQUIRE(cb);
    CHECK(cb->expunged == std::vector<uint32_t>{2});
    CHECK(cb->expungedUids == std::vector<uint32_t>{2});
    CHECK(uids(**b) == std::vector<uint32_t>{1, 3, 4});
    CHECK(readAll(**b, 1) == "m2\n");
    // Both have reported it: nothing more about it.
    cb = (*b)->sync(true);
    REQUIRE(cb);
    CHECK(cb->expunged.empty());
  }

  SECTION("flag changes reported after expunges use the new indexes") {
    for (int i = 0; i < 3; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
    auto a = s->select("INBOX", false);
    auto s2 = h.open();
    auto b = s2->select("INBOX", false);
    REQUIRE((*a)->expunge({0}));
    REQUIRE((*a)->setFlags({2}, FlagOp::Add, {kFlagSeen, {}}));
    auto cb = (*b)->sync(true);
    REQUIRE(cb);
    CHECK(cb->expunged == std::vector<uint32_t>{1});
    CHECK(cb->flagsChanged == std::vector<size_t>{1});
    CHECK((*b)->messages()[1].flags.system == kFlagSeen);
  }

  SECTION("copy and move with UIDs") {
    REQUIRE(s->create("Dest", ""));
    for (int i = 0; i < 4; ++i) appendTo(*s, "INBOX", "m" + std::to_string(i) + "\n");
    appendTo(*s, "Dest", "already\n");
    auto a = s->select("INBOX", false);
    REQUIRE(a);
    REQUIRE((*a)->setFlags({2}, FlagOp::Add, {kFlagFlagged, {"Keep"}}));
    auto dst = s->select("Dest", false);
    REQUIRE(dst);
    (*dst)->drainChangeFd();
    auto c = (*a)->copy({2, 0}, "Dest", false);
    REQUIRE(c);
    CHECK(c->uidValidity == s->status("Dest")->uidValidity);
    CHECK(c->sourceUids == std::vector<uint32_t>{1, 3});
    CHECK(c->destUids == std::vector<uint32_t>{2, 3});
    CHECK((*a)->messages().size() == 4);
    if ((*dst)->changeFd() >= 0) CHECK(readable((*dst)->changeFd()));
    auto cd = (*dst)->sync(true);
    REQUIRE(cd);
    CHECK(cd->existsChanged);
    REQUIRE((*dst)->messages().size() == 3);
    CHECK((*dst)->messages()[2].flags == Flags{kFlagFlagged, {"Keep"}});
    CHECK(readAll(**dst, 2) == "m2\n");

    auto m = (*a)->copy({1, 3}, "Dest", true);
    REQUIRE(m);
    CHECK(m->sourceUids == std::vector<uint32_t>{2, 4});
    CHECK(m->destUids == std::vector<uint32_t>{4, 5});
    CHECK((*a)->messages()[1].expunged);
    auto ca = (*a)->sync(true);
    REQUIRE(ca);
    CHECK(ca->expunged == std::vector<uint32_t>{4, 2});
    CHECK(uids(**a) == std::vector<uint32_t>{1, 3});
    CHECK(s->status("Dest")->messages == 5);
    CHECK(s->status("Dest")->recent == 2);  // Dest selected read-write took the first copies

    CHECK((*a)->copy({0}, "Missing", false).error().errnum == ENOENT);
    // Expunged messages are skipped.
    REQUIRE((*a)->expunge({0}));
    auto c2 = (*a)->copy({0, 1}, "Dest", false);
    REQUIRE(c2);
    CHECK(c2->sourceUids == std::vector<uint32_t>{3});
  }

  SECTION("delete") {
    REQUIRE(s->create("A.B", ""));
    REQUIRE(s->create("C", ""));
    appendTo(*s, "A", "x\n");
    CHECK(s->remove("INBOX").error().errnum == EINVAL);
    CHECK(s->remove("Nope").error().errnum == ENOENT);
    auto sel = s->select("A", false);
    REQUIRE(sel);
    REQUIRE(s->remove("A"));
    CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "A!+", "A.B", "C"});
    CHECK(s->select("A", false).error().errnum == ENOENT);
    CHECK(s->status("A").error().errnum == ENOENT);
    CHECK(s->beginAppend("A").error().errnum == ENOENT);
    CHECK_FALSE(s->remove("A"));  // \Noselect with children
    auto c = (*sel)->sync(true);
    REQUIRE(c);
    CHECK(c->expunged == std::vector<uint32_t>{1});
    REQUIRE(s->remove("C"));
    REQUIRE(s->remove("A.B"));
    auto names = listNames(*s);
    // The \Noselect parent may stay or go once its last child is gone.
    CHECK((names == std::vector<std::string>{"INBOX"} ||
           names == std::vector<std::string>{"INBOX", "A!"}));
    // Re-creating a name gives a new UIDVALIDITY.
    REQUIRE(s->create("C", ""));
    auto st = s->status("C");
    REQUIRE(st);
    CHECK(st->messages == 0);
    CHECK(st->uidNext == 1);
  }

  SECTION("a re-created name never reuses a UIDVALIDITY") {
    REQUIRE(s->create("R", ""));
    uint32_t v1 = s->status("R")->uidValidity;
    REQUIRE(s->remove("R"));
    REQUIRE(s->create("R", ""));
    uint32_t v2 = s->status("R")->uidValidity;
    CHECK(v2 != v1);
  }

  SECTION("rename: children move, parents are created, errors") {
    REQUIRE(s->create("A.B", ""));
    REQUIRE(s->create("Other", ""));
    appendTo(*s, "A.B", "x\n");
    uint32_t v = s->status("A.B")->uidValidity;
    REQUIRE(s->rename("A", "P.Q"));
    CHECK(listNames(*s) == std::vector<std::string>{"INBOX", "Other", "P+", "P.Q+", "P.Q.B"});
    auto st = s->status("P.Q.B");
    REQUIRE(st);
    CHECK(st->messages == 1);
    CHECK(st->uidValidity == v);
    CHECK(s->rename("Other", "P").error().errnum == EEXIST);
    CHECK(s->rename("Gone", "New").error().errnum == ENOENT);
    CHECK(s->rename("Other", "INBOX").error().errnum != 0);
    CHECK(s->rename("P", "P.Q.X").error().errnum != 0);
  }

  SECTION("rename INBOX moves its messages into a new mailbox") {
    appendTo(*s, "INBOX", "one\n");
    appendTo(*s, "INBOX", "two\n", {kFlagSeen, {}});
    REQUIRE(s->rename("INBOX", "Old"));
    auto in = s->status("INBOX");
    REQUIRE(in);
    CHECK(in->messages == 0);
    auto old = s->select("Old", false);
    REQUIRE(old);
    REQUIRE((*old)->messages().size() == 2);
    CHECK(readAll(**old, 0) == "one\n");
    CHECK((*old)->messages()[1].flags.system == kFlagSeen);
    // INBOX goes on assigning higher UIDs.
    CHECK(appendTo(*s, "INBOX", "three\n") >= 3);
  }

  SECTION("subscriptions") {
    REQUIRE(s->create("A", ""));
    REQUIRE(s->subscribe("A", true));
    REQUIRE(s->subscribe("Ghost", true));
    REQUIRE(s->subscribe("inbox", true));
    auto subs = s->subscriptions();
    REQUIRE(subs);
    std::sort(subs->begin(), subs->end());
    CHECK(*subs == std::vector<std::string>{"A", "Ghost", "INBOX"});
    auto l = s->list();
    REQUIRE(l);
    CHECK(l->at(0).subscribed);
    CHECK(l->at(1).subscribed);
    REQUIRE(s->subscribe("Ghost", false));
    auto other = h.open();
    auto subs2 = other->subscriptions();
    REQUIRE(subs2);
    std::sort(subs2->begin(), subs2->end());
    CHECK(*subs2 == std::vector<std::string>{"A", "INBOX"});
    CHECK(s->subscribe("..", true).error().errnum == EINVAL);
  }

  SECTION("a delivery while selected: change fd, EXISTS, UIDNEXT") {
    auto mb = s->select("INBOX", false);
    REQUIRE(mb);
    (*mb)->drainChangeFd();
    auto c0 = (*mb)->sync(true);
    REQUIRE(c0);
    CHECK_FALSE(c0->existsChanged);
    h.deliver("INBOX", "Subject: new\n\nhi\n");
    if ((*mb)->changeFd() >= 0) CHECK(readable((*mb)->changeFd()));
    auto c = (*mb)->sync(true);
    REQUIRE(c);
    CHECK(c->existsChanged);
    REQUIRE((*mb)->messages().size() == 1);
    CHECK((*mb)->messages()[0].uid == 1);
    CHECK((*mb)->messages()[0].recent);
    CHECK((*mb)->messages()[0].size == 20);
    CHECK((*mb)->uidNext() == 2);
    CHECK(readAll(**mb, 0) == "Subject: new\n\nhi\n");
  }
}


// CONDSTORE (RFC 7162): the mod-sequence cases, for a backend that keeps
// them (mail_store.hpp says how one opts in). Every change -- flags by
// this or another session, APPEND, COPY, a delivery, an expunge -- must
// give a mod-sequence greater than any before; a STORE that changes
// nothing changes no mod-sequence.
inline void modSeqCases(StoreHarness& h) {
  auto s = h.open();
  appendTo(*s, "INBOX", "a\n");
  appendTo(*s, "INBOX", "b\n", {kFlagSeen, {}});
  auto mb = s->select("INBOX", false);
  REQUIRE(mb);
  ImapMailbox& box = **mb;
  REQUIRE(box.messages().size() == 2);
  const uint64_t h0 = box.highestModSeq();
  REQUIRE(h0 >= 1);
  for (const auto& m : box.messages()) {
    CHECK(m.modSeq >= 1);
    CHECK(m.modSeq <= h0);
  }
  CHECK(box.messages()[1].modSeq > box.messages()[0].modSeq);  // two APPENDs
  {
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->highestModSeq == h0);
  }

  SECTION("a flag change takes a new mod-sequence; no change keeps it") {
    const uint64_t other = box.messages()[1].modSeq;
    REQUIRE(box.setFlags({0}, FlagOp::Add, {kFlagFlagged, {}}));
    const uint64_t m1 = box.messages()[0].modSeq;
    CHECK(m1 > h0);
    CHECK(box.highestModSeq() == m1);
    CHECK(box.messages()[1].modSeq == other);
    // Again the same flag: nothing changes.
    REQUIRE(box.setFlags({0}, FlagOp::Add, {kFlagFlagged, {}}));
    CHECK(box.messages()[0].modSeq == m1);
    CHECK(box.highestModSeq() == m1);
    // A keyword counts as a flag.
    REQUIRE(box.setFlags({1}, FlagOp::Add, {0, {"Work"}}));
    CHECK(box.messages()[1].modSeq > m1);
    // Our own change is not reported back to us.
    auto c = box.sync(true);
    REQUIRE(c);
    CHECK(c->flagsChanged.empty());
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->highestModSeq == box.highestModSeq());
  }

  SECTION("another session's change: a greater mod-sequence at the next sync") {
    auto s2 = h.open();
    auto mb2 = s2->select("INBOX", false);
    REQUIRE(mb2);
    REQUIRE((*mb2)->setFlags({1}, FlagOp::Remove, {kFlagSeen, {}}));
    const uint64_t theirs = (*mb2)->messages()[1].modSeq;
    CHECK(theirs > h0);
    auto c = box.sync(true);
    REQUIRE(c);
    CHECK(c->flagsChanged == std::vector<size_t>{1});
    CHECK(box.messages()[1].modSeq == theirs);
    CHECK(box.messages()[1].flags.system == 0);
    CHECK(box.highestModSeq() >= theirs);
  }

  SECTION("STORE UNCHANGEDSINCE: the test, and a change by another session counts") {
    const uint64_t m0 = box.messages()[0].modSeq, m1 = box.messages()[1].modSeq;
    // 0 fails for every message (RFC 7162 §3.1.3).
    auto r = box.setFlagsUnchangedSince({0, 1}, FlagOp::Add, {kFlagDeleted, {}}, 0);
    REQUIRE(r);
    CHECK(*r == std::vector<size_t>{0, 1});
    CHECK(box.messages()[0].flags.system == 0);
    CHECK(box.messages()[0].modSeq == m0);
    // Between the two: only message 2 is newer.
    r = box.setFlagsUnchangedSince({0, 1}, FlagOp::Add, {kFlagDeleted, {}}, m0);
    REQUIRE(r);
    CHECK(*r == std::vector<size_t>{1});
    CHECK((box.messages()[0].flags.system & kFlagDeleted) != 0);
    CHECK(box.messages()[0].modSeq > m1);
    CHECK((box.messages()[1].flags.system & kFlagDeleted) == 0);
    // Another session changes message 2; our view has not synced, yet the
    // conditional STORE with the modseq we knew must fail.
    auto s2 = h.open();
    auto mb2 = s2->select("INBOX", false);
    REQUIRE(mb2);
    REQUIRE((*mb2)->setFlags({1}, FlagOp::Add, {kFlagAnswered, {}}));
    r = box.setFlagsUnchangedSince({1}, FlagOp::Add, {kFlagFlagged, {}}, m1);
    REQUIRE(r);
    CHECK(*r == std::vector<size_t>{1});
    auto c = box.sync(true);
    REQUIRE(c);
    CHECK((box.messages()[1].flags.system & kFlagFlagged) == 0);
    CHECK((box.messages()[1].flags.system & kFlagAnswered) != 0);
  }

  SECTION("APPEND, a delivery and COPY take new mod-sequences") {
    appendTo(*s, "INBOX", "c\n");
    auto c = box.sync(true);
    REQUIRE(c);
    REQUIRE(box.messages().size() == 3);
    const uint64_t m2 = box.messages()[2].modSeq;
    CHECK(m2 > h0);
    CHECK(box.highestModSeq() >= m2);
    h.deliver("INBOX", "d\n");
    c = box.sync(true);
    REQUIRE(c);
    REQUIRE(box.messages().size() == 4);
    CHECK(box.messages()[3].modSeq > m2);
    REQUIRE(s->create("Dest", ""));
    auto before = s->status("Dest");
    REQUIRE(before);
    REQUIRE(before->highestModSeq >= 1);
    auto cp = box.copy({0, 1}, "Dest", false);
    REQUIRE(cp);
    auto after = s->status("Dest");
    REQUIRE(after);
    CHECK(after->highestModSeq > before->highestModSeq);
    auto dest = s->select("Dest", true);
    REQUIRE(dest);
    REQUIRE((*dest)->messages().size() == 2);
    for (const auto& m : (*dest)->messages()) CHECK(m.modSeq > before->highestModSeq);
    CHECK((*dest)->highestModSeq() == after->highestModSeq);
  }

  SECTION("an expunge raises HIGHESTMODSEQ, seen by every session") {
    REQUIRE(box.setFlags({0}, FlagOp::Add, {kFlagDeleted, {}}));
    const uint64_t beforeExpunge = box.highestModSeq();
    auto s2 = h.open();
    auto mb2 = s2->select("INBOX", true);
    REQUIRE(mb2);
    REQUIRE(box.expunge({0}));
    auto c = box.sync(true);
    REQUIRE(c);
    CHECK(box.messages().size() == 1);
    auto st = s->status("INBOX");
    REQUIRE(st);
    CHECK(st->highestModSeq > beforeExpunge);
    auto c2 = (*mb2)->sync(true);
    REQUIRE(c2);
    CHECK((*mb2)->highestModSeq() > beforeExpunge);
  }

  SECTION("mod-sequences survive a new handle (a restart for a backend on disk)") {
    REQUIRE(box.setFlags({1}, FlagOp::Add, {kFlagFlagged, {}}));
    std::vector<uint64_t> seen;
    for (const auto& m : box.messages()) seen.push_back(m.modSeq);
    const uint64_t high = box.highestModSeq();
    mb->reset();
    s.reset();
    auto fresh = h.open();
    auto again = fresh->select("INBOX", true);
    REQUIRE(again);
    std::vector<uint64_t> now;
    for (const auto& m : (*again)->messages()) now.push_back(m.modSeq);
    CHECK(now == seen);
    CHECK((*again)->highestModSeq() == high);
  }
}

}  // namespace yubin::store::test
