// Unit tests for the delivery command's pure parts: argument parsing, the
// sender text rules and the input filter (From_ line, the caller's trace
// fields), each filter case also fed one byte at a time.
#include "mdad/lda.hpp"

#include <catch2/catch.hpp>

using namespace yubin;
using namespace yubin::mdad;

using V = std::vector<std::string>;

TEST_CASE("the delivery command is recognised by -d") {
  CHECK(isLdaInvocation(V{"-d", "a@b"}));
  CHECK(isLdaInvocation(V{"-c", "x.conf", "-d", "a@b", "-f", "s@t"}));
  CHECK_FALSE(isLdaInvocation(V{}));
  CHECK_FALSE(isLdaInvocation(V{"-f"}));
  CHECK_FALSE(isLdaInvocation(V{"-f", "-c", "x.conf"}));
  CHECK_FALSE(isLdaInvocation(V{"--help"}));
}

TEST_CASE("delivery command options") {
  SECTION("all of them") {
    auto o = parseLdaOptions(V{"-d", "alice@example.org", "-f", "bob@example.net", "-a",
                               "info@example.org", "-c", "/etc/y.conf"});
    REQUIRE(o.ok());
    CHECK(o->recipient == "alice@example.org");
    REQUIRE(o->sender);
    CHECK(*o->sender == "bob@example.net");
    CHECK(o->originalRecipient == "info@example.org");
    REQUIRE(o->configPath);
    CHECK(*o->configPath == "/etc/y.conf");
  }
  SECTION("-d alone") {
    auto o = parseLdaOptions(V{"-d", "alice"});
    REQUIRE(o.ok());
    CHECK(o->recipient == "alice");
    CHECK_FALSE(o->sender);
    CHECK_FALSE(o->configPath);
    CHECK(o->originalRecipient.empty());
  }
  SECTION("an empty -f is the null sender") {
    auto o = parseLdaOptions(V{"-f", "", "-d", "alice@example.org"});
    REQUIRE(o.ok());
    REQUIRE(o->sender);
    CHECK(o->sender->empty());
  }
  SECTION("errors") {
    struct Row {
      V args;
      const char* want;
    };
    const Row rows[] = {
        {V{}, "option -d is required"},
        {V{"-f", "a@b"}, "option -d is required"},
        {V{"-d"}, "option -d needs a value"},
        {V{"-d", ""}, "option -d needs an address"},
        {V{"-d", "a@b", "-d", "c@d"}, "option -d given twice"},
        {V{"-d", "a@b", "-f", "x", "-f", "y"}, "option -f given twice"},
        {V{"-d", "a@b", "-c", ""}, "option -c needs a file"},
        {V{"-d", "a@b", "-x", "1"}, "unknown option '-x'"},
        {V{"-d", "a@b", "extra"}, "unexpected argument 'extra'"},
        {V{"-d", "a@b", "-f"}, "option -f needs a value"},
    };
    for (const Row& r : rows) {
      auto o = parseLdaOptions(r.args);
      REQUIRE_FALSE(o.ok());
      CHECK(o.error().message == r.want);
    }
  }
}

TEST_CASE("usage names every delivery option") {
  std::string u = ldaUsage();
  for (const char* opt : {"-d address", "-f sender", "-a ", "-c file"})
    CHECK(u.find(opt) != std::string::npos);
}

TEST_CASE("sender text") {
  CHECK(senderFromText("<a@b>") == "a@b");
  CHECK(senderFromText("  <a@b> \r\n") == "a@b");
  CHECK(senderFromText("a@b") == "a@b");
  CHECK(senderFromText("<>") == "");
  CHECK(senderFromText("< >") == "");
  CHECK(senderFromText("") == "");
  CHECK(senderFromText("MAILER-DAEMON") == "");
  CHECK(senderFromText("mailer-daemon") == "");
}

namespace {

struct Filtered {
  std::string out;
  std::optional<std::string> sender;
};

Filtered filterWhole(const std::string& in) {
  LdaInputFilter f;
  Filtered r;
  f.feed(in, r.out);
  f.finish(r.out);
  r.sender = f.impliedSender();
  return r;
}

Filtered filterBytewise(const std::string& in) {
  LdaInputFilter f;
  Filtered r;
  for (char c : in) f.feed(std::string_view(&c, 1), r.out);
  f.finish(r.out);
  r.sender = f.impliedSender();
  return r;
}

}  // namespace

TEST_CASE("the input filter drops what the calling MTA prepended, and only that") {
  struct Row {
    const char* name;
    std::string in;
    std::string out;
    std::optional<std::string> sender;
  };
  const std::string body = "Subject: hi\n\nbody\n";
  const Row rows[] = {
      {"plain message", body, body, std::nullopt},
      {"CRLF message", "Subject: hi\r\n\r\nbody\r\n", "Subject: hi\r\n\r\nbody\r\n", std::nullopt},
      {"From_ line", "From bob@example.net  Thu Jan  1 00:00:00 2026\n" + body, body,
       "bob@example.net"},
      {"From_ line of a bounce", "From MAILER-DAEMON Thu Jan  1 00:00:00 2026\n" + body, body, ""},
      {"Postfix local(8) style",
       "From bob@example.net  Thu Jan  1 00:00:00 2026\n"
       "Return-Path: <bob@example.net>\n"
       "X-Original-To: info@example.org\n"
       "Delivered-To: alice@example.org\n"
       "Received: from x\n" +
           body,
       "X-Original-To: info@example.org\nReceived: from x\n" + body, "bob@example.net"},
      {"Return-Path wins over the From_ line",
       "From other@example.com Thu Jan  1 00:00:00 2026\nReturn-Path: <bob@example.net>\n" + body,
       body, "bob@example.net"},
      {"CRLF trace fields", "Return-Path: <>\r\nDelivered-To: a@b\r\nSubject: x\r\n\r\nb\r\n",
       "Subject: x\r\n\r\nb\r\n", ""},
      {"folded trace field", "Delivered-To:\n\ta@b\nSubject: x\n\nb\n", "Subject: x\n\nb\n",
       std::nullopt},
      {"case of field names", "DELIVERED-TO: a@b\nreturn-path: <c@d>\n" + body, body, "c@d"},
      {"below another field nothing is touched",
       "Received: from x\nDelivered-To: alice@example.org\n" + body,
       "Received: from x\nDelivered-To: alice@example.org\n" + body, std::nullopt},
      {"From_ not first is kept", "Subject: a\nFrom bob Thu\n\nb\n",
       "Subject: a\nFrom bob Thu\n\nb\n", std::nullopt},
      {"the body is never touched", "Subject: a\n\nDelivered-To: x@y\nReturn-Path: <z>\n",
       "Subject: a\n\nDelivered-To: x@y\nReturn-Path: <z>\n", std::nullopt},
      {"header-less message", "\nDelivered-To: x@y\n", "\nDelivered-To: x@y\n", std::nullopt},
      {"only trace fields", "Return-Path: <a@b>\nDelivered-To: c@d\n", "", "a@b"},
      {"no final line end", "Delivered-To: c@d\nSubject: x", "Subject: x", std::nullopt},
      {"continuation without a field", " folded\nSubject: x\n", " folded\nSubject: x\n",
       std::nullopt},
      {"empty input", "", "", std::nullopt},
      {"NUL bytes pass", std::string("Sub\0ject: x\n\nb\n", 15),
       std::string("Sub\0ject: x\n\nb\n", 15), std::nullopt},
  };
  for (const Row& r : rows) {
    CAPTURE(r.name);
    Filtered whole = filterWhole(r.in);
    CHECK(whole.out == r.out);
    CHECK(whole.sender == r.sender);
    Filtered bytes = filterBytewise(r.in);
    CHECK(bytes.out == r.out);
    CHECK(bytes.sender == r.sender);
  }
}

TEST_CASE("the input filter's memory is bounded by a huge leading line") {
  std::string huge = "Delivered-To: " + std::string(200 * 1024, 'a') + "\nSubject: x\n\nb\n";
  // The line is too long to judge: it is kept, and filtering stops.
  CHECK(filterWhole(huge).out == huge);
  CHECK(filterBytewise(huge).out == huge);
  std::string folded = "Delivered-To: a@b\n" + std::string("\tfold\n") +
                       std::string(100 * 1024, ' ') + "\nReturn-Path: <x@y>\n\nb\n";
  Filtered f = filterWhole(folded);
  CHECK(f.out == folded.substr(0));  // kept whole
  CHECK(filterBytewise(folded).out == folded);
}
