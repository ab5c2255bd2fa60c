// Tests of yubin-sendmail's command line (options.hpp): what cron, mail(1)
// and mutt pass, ignored options, modes, the mailq name, and refusals.
#include "sendmail/options.hpp"

#include <catch2/catch.hpp>

using namespace yubin::sendmail;

namespace {
Options parse(std::vector<std::string> args, std::string_view prog = "sendmail") {
  auto o = parseOptions(args, prog);
  INFO((o ? std::string() : o.error().message));
  REQUIRE(o);
  return *o;
}
}  // namespace

TEST_CASE("sendmail options: what callers pass") {
  struct Case {
    std::vector<std::string> args;
    bool extract, ignoreDots;
    std::optional<std::string> sender, fullName;
    std::vector<std::string> recipients;
    size_t ignored;
  };
  const std::vector<Case> cases = {
      // cron (Debian): -FCronDaemon -i -B8BITMIME -oem user
      {{"-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root"},
       false,
       true,
       {},
       "CronDaemon",
       {"root"},
       2},
      // mail(1)/mutt: -oem -oi -- addr...
      {{"-oem", "-oi", "--", "a@b.example", "-c@d.example"},
       false,
       true,
       {},
       {},
       {"a@b.example", "-c@d.example"},
       1},
      {{"-t"}, true, false, {}, {}, {}, 0},
      {{"-t", "-f", "me@x.example", "-F", "My Name"},
       true,
       false,
       "me@x.example",
       "My Name",
       {},
       0},
      {{"-fme@x.example", "-r", "other@x.example", "u"},
       false,
       false,
       "other@x.example",
       {},
       {"u"},
       0},
      {{"-f", "<>", "u"}, false, false, "<>", {}, {"u"}, 0},
      {{"-oee", "-odi", "-oQ/x", "-v", "-m", "-U", "-G", "-Am", "-q", "u"},
       false,
       false,
       {},
       {},
       {"u"},
       9},
      {{"-N", "never", "-R", "hdrs", "-V", "envid", "-X", "/tmp/log", "-L", "lbl", "-h", "5", "-O",
        "a=b", "u"},
       false,
       false,
       {},
       {},
       {"u"},
       7},
      {{"-NNEVER", "-RFULL", "u", "v", "-t"}, false, false, {}, {}, {"u", "v", "-t"}, 2},
      {{"-bm", "u"}, false, false, {}, {}, {"u"}, 0},
      {{}, false, false, {}, {}, {}, 0},
  };
  for (const auto& c : cases) {
    INFO(c.args.size());
    Options o = parse(c.args);
    CHECK(o.mode == Mode::Deliver);
    CHECK(o.extract == c.extract);
    CHECK(o.ignoreDots == c.ignoreDots);
    CHECK(o.sender == c.sender);
    CHECK(o.fullName == c.fullName);
    CHECK(o.recipients == c.recipients);
    CHECK(o.ignored.size() == c.ignored);
  }
}

TEST_CASE("sendmail options: modes and the config file") {
  CHECK(parse({"-bs"}).mode == Mode::Smtp);
  CHECK(parse({"-bp"}).mode == Mode::ListQueue);
  CHECK(parse({}, "mailq").mode == Mode::ListQueue);
  CHECK(parse({"-bm"}, "mailq").mode == Mode::Deliver);
  Options u = parse({"-bd"});
  CHECK(u.mode == Mode::Unsupported);
  CHECK(u.unsupported == "-bd");
  CHECK(parse({"-bi"}).mode == Mode::Unsupported);
  CHECK(parse({"-C", "/etc/x.conf", "u"}).configPath == "/etc/x.conf");
  CHECK(parse({"-C/etc/y.conf", "u"}).configPath == "/etc/y.conf");
}

TEST_CASE("sendmail options: refusals") {
  const std::vector<std::vector<std::string>> bad = {
      {"-Z"}, {"-tx"}, {"-ix"},   {"-f"}, {"-F"}, {"-C"},
      {"-o"}, {"-B"},  {"-bxyz"}, {"-b"}, {"-N"}, {"-x", "u"},
  };
  for (const auto& args : bad) {
    INFO(args.front());
    auto o = parseOptions(args, "sendmail");
    CHECK_FALSE(o);
  }
  auto o = parseOptions({"-Z"}, "sendmail");
  REQUIRE_FALSE(o);
  CHECK(o.error().message == "unknown option -Z");
  auto v = parseOptions({"-f"}, "sendmail");
  REQUIRE_FALSE(v);
  CHECK(v.error().message == "option -f needs a value");
}
