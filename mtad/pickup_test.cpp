// Tests of the pickup's pure parts (pickup.hpp): where the header ends and
// which fields it has (also fed every prefix), the sender rule (owner
// decides; -f only for trusted submitters), the fields added when missing,
// display-name quoting, and refusals of bad addresses.
#include "mtad/pickup.hpp"

#include <catch2/catch.hpp>

using namespace yubin::mtad;

namespace {

ParsedDrop drop(std::vector<std::string> rcpts, std::optional<std::string> sender = {},
                std::optional<std::string> fullName = {}) {
  ParsedDrop d;
  d.header.recipients = std::move(rcpts);
  d.header.sender = std::move(sender);
  d.header.fullName = std::move(fullName);
  return d;
}

Submitter user(bool trusted = false) {
  Submitter s;
  s.uid = 1000;
  s.login = "joe";
  s.fullName = "Joe User";
  s.trusted = trusted;
  s.address = "joe@example.org";
  return s;
}

constexpr time_t kNow = 1764288000;  // 2025-11-28
const std::string kId = "<abc@mx.example.org>";

}  // namespace

TEST_CASE("pickup: scanHeader") {
  struct Case {
    std::string message;
    size_t insertAt;
    bool separator, date, id, from;
  };
  const std::vector<Case> cases = {
      {"Subject: s\r\n\r\nbody\r\n", 12, false, false, false, false},
      {"DATE: x\r\nmessage-id: <a@b>\r\nFrom: a@b\r\n\r\n", 39, false, true, true, true},
      {"Subject: s\r\n  folded\r\nFrom: a\r\n\r\n", 31, false, false, false, true},
      {"\r\nbody\r\n", 0, false, false, false, false},
      {"", 0, true, false, false, false},
      {"Subject: s\r\n", 12, true, false, false, false},
      {"Subject: s", 10, true, false, false, false},
      {"Subject: s\r\nnot a header line\r\n", 12, true, false, false, false},
      {"just text\r\n", 0, true, false, false, false},
      {" continuation first\r\n", 0, true, false, false, false},
      {"Date : spaced\r\n\r\n", 0, true, false, false, false},  // not a field name
      {"X-Date: no\r\nFrom-Me: no\r\n\r\n", 25, false, false, false, false},
      {"Subject: s\n\nbody\n", 11, false, false, false, false},  // LF only
  };
  for (const auto& c : cases) {
    INFO(c.message);
    HeaderScan h = scanHeader(c.message);
    CHECK(h.insertAt == c.insertAt);
    CHECK(h.needSeparator == c.separator);
    CHECK(h.hasDate == c.date);
    CHECK(h.hasMessageId == c.id);
    CHECK(h.hasFrom == c.from);
  }
  // Every prefix of a message scans without trouble and never points past it.
  std::string m = "From: a@b\r\nTo: c@d,\r\n e@f\r\nDate: x\r\n\r\nbody\r\n";
  for (size_t n = 0; n <= m.size(); ++n) CHECK(scanHeader(m.substr(0, n)).insertAt <= n);
}

TEST_CASE("pickup: the sender comes from the file's owner") {
  std::string msg = "Subject: s\r\n\r\nb\r\n";
  // No -f: the submitter's address, a From: with their GECOS name.
  auto p = preparePickup(drop({"bob@example.org"}), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "joe@example.org");
  CHECK_FALSE(p->envelope.nullSender);
  CHECK_FALSE(p->senderIgnored);
  CHECK(p->envelope.recipients.size() == 1);
  CHECK(p->envelope.recipients[0].address == "bob@example.org");
  CHECK(p->envelope.arrivalTime == kNow);
  CHECK(p->added.rfind("From: Joe User <joe@example.org>\r\nDate: ", 0) == 0);
  CHECK(p->added.find("\r\nMessage-ID: <abc@mx.example.org>\r\n") != std::string::npos);

  // -f from an ordinary user: ignored.
  p = preparePickup(drop({"bob@example.org"}, "ceo@example.org"), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "joe@example.org");
  CHECK(p->senderIgnored);
  // -f naming their own address: nothing to ignore.
  p = preparePickup(drop({"bob@example.org"}, "joe@example.org"), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK_FALSE(p->senderIgnored);
  // -f <> from an ordinary user: ignored too.
  p = preparePickup(drop({"bob@example.org"}, "<>"), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "joe@example.org");
  CHECK(p->senderIgnored);

  // Trusted (root, trusted_users): honoured; no GECOS name on another address.
  p = preparePickup(drop({"bob@example.org"}, "ceo@Example.ORG"), msg, user(true), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.sender == "ceo@example.org");
  CHECK(p->added.rfind("From: ceo@example.org\r\n", 0) == 0);
  p = preparePickup(drop({"bob@example.org"}, "<>"), msg, user(true), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.nullSender);
  CHECK(p->envelope.sender.empty());
  CHECK(p->added.rfind("From: Joe User <joe@example.org>\r\n", 0) == 0);
  // -F wins over GECOS.
  p = preparePickup(drop({"bob@example.org"}, {}, "Cron \"Daemon\""), msg, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->added.rfind("From: \"Cron \\\"Daemon\\\"\" <joe@example.org>\r\n", 0) == 0);
}

TEST_CASE("pickup: fields added only when missing") {
  std::string full = "From: x@y\r\nDate: d\r\nMessage-ID: <m@y>\r\n\r\nb\r\n";
  auto p = preparePickup(drop({"bob@example.org"}), full, user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->added.empty());
  CHECK(p->scan.insertAt == full.find("\r\n\r\n") + 2);
  // No body separator: one is added after the new fields.
  p = preparePickup(drop({"bob@example.org"}), "From: x@y\r\nDate: d\r\nMessage-ID: <m@y>\r\n",
                    user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->added == "\r\n");
  // A one-line message without its line end is ended first.
  p = preparePickup(drop({"bob@example.org"}), "Subject: s", user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->added.rfind("\r\nFrom: ", 0) == 0);
  CHECK(p->added.size() > 4);
  CHECK(p->added.substr(p->added.size() - 4) == "\r\n\r\n");
  // 8-bit content and UTF-8 addresses are flagged.
  p = preparePickup(drop({"jörg@example.org"}), "Subject: é\r\n\r\n", user(), kNow, kId);
  REQUIRE(p);
  CHECK(p->envelope.smtputf8);
  CHECK(p->envelope.body == yubin::queue::Body::EightBitMime);
}

TEST_CASE("pickup: bad addresses in a drop file are refused") {
  std::string msg = "\r\nb\r\n";
  for (std::string bad : {"a@@b", "nodomain", "a@b@c", "<a@b>", "a@-b", ""}) {
    INFO(bad);
    auto p = preparePickup(drop({"ok@example.org", bad}), msg, user(), kNow, kId);
    REQUIRE_FALSE(p);
    CHECK(p.error().errnum == EBADMSG);
  }
  auto p = preparePickup(drop({"ok@example.org"}, "not an address"), msg, user(true), kNow, kId);
  REQUIRE_FALSE(p);
  // An untrusted user's bad -f is simply ignored.
  CHECK(preparePickup(drop({"ok@example.org"}, "not an address"), msg, user(), kNow, kId));
}

TEST_CASE("pickup: display names and the Received field") {
  CHECK(quoteDisplayName("Joe User") == "Joe User");
  CHECK(quoteDisplayName("  Joe  ") == "Joe");
  CHECK(quoteDisplayName("") == "");
  CHECK(quoteDisplayName("Doe, John") == "\"Doe, John\"");
  CHECK(quoteDisplayName("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(quoteDisplayName("evil\r\nBcc: x@y") == "\"evilBcc: x@y\"");
  CHECK(quoteDisplayName(std::string("nul\0x", 5)) == "nulx");
  std::string r = pickupReceived("mx.example.org", 1000, "QID", kNow);
  CHECK(r.rfind("Received: by mx.example.org (Yubin ", 0) == 0);
  CHECK(r.find(")\r\n\tid QID from userid 1000;\r\n\t") != std::string::npos);
  CHECK(r.substr(r.size() - 2) == "\r\n");
  CHECK(r.find('\n', 0) == r.find("\r\n") + 1);
}
