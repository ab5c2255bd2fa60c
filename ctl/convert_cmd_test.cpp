// Unit tests for `yubinctl convert`: usage errors, mbox -> Maildir ->
// mbox giving back a canonical mbox byte for byte (From_ lines in bodies,
// flags, dates), adding to an existing destination, and a missing source.
#include "ctl/convert_cmd.hpp"

#include <catch2/catch.hpp>
#include <sstream>

#include "base/fs.hpp"
#include "store/mbox.hpp"
#include "store/test_util.hpp"

using namespace yubin;
using yubin::ctl::runConvertCommand;
using yubin::store::test::listDir;
using yubin::store::test::TempDir;

namespace {

struct Run {
  int code;
  std::string out, err;
};

Run run(const std::vector<std::string>& args) {
  std::ostringstream out, err;
  int code = runConvertCommand(args, out, err);
  return {code, out.str(), err.str()};
}

// A canonical mbox: From_ lines as the store writes them, Status: last.
std::string makeMbox(const std::string& path) {
  struct M {
    const char* sender;
    int64_t date;
    std::string body;
  };
  const M msgs[] = {
      {"a@example.net", 1700000000,
       "Return-Path: <a@example.net>\nSubject: one\n\nFrom the start\n>From quoted\nend\n"},
      {"MAILER-DAEMON", 1700000100,
       "Return-Path: <>\nSubject: two\nStatus: RO\nX-Status: A\n\nbody two\n"},
      {"b@example.net", 1700000200,
       "Return-Path: <b@example.net>\nSubject: three\nStatus: O\n\n\n"},
  };
  for (const M& m : msgs) {
    store::MemorySource src(m.body);
    store::MboxAppendOptions o;
    o.lineEndings = store::LineEndings::Keep;
    REQUIRE(store::appendToMbox(path, m.sender, m.date, "", src, {}, o).ok());
  }
  return readFile(path).value();
}

}  // namespace

TEST_CASE("convert: usage errors") {
  struct Row {
    std::vector<std::string> args;
    const char* want;
  };
  const Row rows[] = {
      {{}, "missing direction"},
      {{"convert"}, "missing direction"},
      {{"sideways", "a", "b"}, "unknown direction 'sideways'"},
      {{"mbox2maildir", "a"}, "mbox2maildir takes two paths"},
      {{"maildir2mbox", "a", "b", "c"}, "maildir2mbox takes two paths"},
      {{"mbox2maildir", "", "b"}, "empty path"},
      {{"mbox2maildir", "/x", "/x"}, "source and destination are the same path"},
  };
  for (const Row& r : rows) {
    Run res = run(r.args);
    CHECK(res.code == 2);
    CHECK(res.err.find(r.want) != std::string::npos);
    CHECK(res.err.find("usage: yubinctl convert mbox2maildir MBOX MAILDIR") != std::string::npos);
    CHECK(res.out.empty());
  }
}

TEST_CASE("convert: mbox -> Maildir -> mbox gives the mbox back") {
  TempDir dir;
  const std::string original = makeMbox(dir / "in.mbox");

  Run a = run({"convert", "mbox2maildir", dir / "in.mbox", dir / "Maildir"});
  REQUIRE(a.code == 0);
  CHECK(a.out.find("converted 3 messages") == 0);
  // Unread (no Status) in new/, read or old in cur/ with flags.
  CHECK(listDir(dir / "Maildir/new").size() == 1);
  auto cur = listDir(dir / "Maildir/cur");
  REQUIRE(cur.size() == 2);
  CHECK(
      ((cur[0].find(":2,RS") != std::string::npos) || (cur[1].find(":2,RS") != std::string::npos)));
  // The source is untouched.
  CHECK(readFile(dir / "in.mbox").value() == original);

  Run b = run({"maildir2mbox", dir / "Maildir", dir / "out.mbox"});
  REQUIRE(b.code == 0);
  CHECK(b.out.find("converted 3 messages") == 0);
  CHECK(readFile(dir / "out.mbox").value() == original);

  // Into an existing destination: added, not replaced.
  Run c = run({"maildir2mbox", dir / "Maildir", dir / "out.mbox"});
  REQUIRE(c.code == 0);
  CHECK(readFile(dir / "out.mbox").value() == original + original);
}

TEST_CASE("convert: a missing source is an error") {
  TempDir dir;
  Run a = run({"mbox2maildir", dir / "none.mbox", dir / "Maildir"});
  CHECK(a.code == 1);
  CHECK(a.err.find("none.mbox") != std::string::npos);
  Run b = run({"maildir2mbox", dir / "none", dir / "out.mbox"});
  CHECK(b.code == 1);
  CHECK(b.err.find("none: not a Maildir") != std::string::npos);
  CHECK(listDir(dir.path()).empty());  // nothing created
}
