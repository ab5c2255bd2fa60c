// Unit tests for yubinctl's `user` command (ctl/user_cmd.cpp): add, passwd,
// del, list and list --json against a temporary config, with the password on
// a stringstream; checks that no plaintext password reaches the file and
// that the stored hash and SCRAM keys verify.
#include "ctl/user_cmd.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <sstream>

#include "auth/directory.hpp"
#include "auth/password.hpp"
#include "auth/test_util.hpp"
#include "auth/users.hpp"
#include "config/config.hpp"

using namespace yubin;
using yubin::auth::testing::TempDir;
namespace testing = yubin::auth::testing;

namespace {

struct Run {
  int rc;
  std::string out;
  std::string err;
};

struct Fixture {
  TempDir dir;
  std::string users = dir.file("users");
  config::Config cfg = *config::Config::parse(
      "version = 1\n[global]\ndomains = example.org\nusers_file = " + users +
          "\naliases_file = " + dir.file("aliases") + "\nmail_root = " + dir.file("mail") + "\n",
      "test.conf");

  Run run(std::vector<std::string> args, const std::string& stdinText = "") {
    std::istringstream in(stdinText);
    std::ostringstream out, err;
    ctl::UserCommandOptions opts;
    opts.cost = auth::PasswordCost::minimum();
    int rc = ctl::runUserCommand(cfg, args, in, out, err, opts);
    return {rc, out.str(), err.str()};
  }

  auth::UserTable table() {
    auto s = auth::UserDbSettings::fromConfig(cfg);
    auto t = auth::parseUsers(testing::readText(users), users, s);
    REQUIRE(t.ok());
    return std::move(*t);
  }
};

}  // namespace

TEST_CASE("user add, passwd, list, del") {
  Fixture f;
  testing::writeText(f.users, "# managed by yubinctl\n\n# keep me\n");

  Run r = f.run({"add", "Bob@EXAMPLE.org"}, "s3cret pass\n");
  CHECK(r.err.empty());
  CHECK(r.rc == 0);
  CHECK(r.out ==
        "added Bob@example.org (maildir " + f.dir.file("mail") + "/example.org/Bob/Maildir)\n");
  std::string text = testing::readText(f.users);
  CHECK(text.rfind("# managed by yubinctl\n\n# keep me\nBob@example.org:$argon2id$", 0) == 0);
  CHECK(text.find("s3cret") == std::string::npos);
  struct stat st;
  REQUIRE(::stat(f.users.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  {
    auto t = f.table();
    const auth::User* u = t.find("Bob@example.org");
    REQUIRE(u);
    CHECK(auth::verifyPasswordHash(u->passwordHash, "s3cret pass"));
    CHECK_FALSE(auth::verifyPasswordHash(u->passwordHash, "s3cret pass\n"));
    REQUIRE(u->scram);
    auto keys = auth::scramDeriveKeys("s3cret pass", u->scram->salt, u->scram->iterations);
    REQUIRE(keys.ok());
    CHECK(keys->storedKey == u->scram->storedKey);
    CHECK(keys->serverKey == u->scram->serverKey);
  }

  r = f.run({"user", "add", "carol@example.org", "--format=mbox", "--quota", "1M,100", "--mailbox",
             "boxes/carol"},
            "pw two\r\n");
  CHECK(r.rc == 0);
  CHECK(r.out == "added carol@example.org (mbox " + f.dir.file("mail") + "/boxes/carol)\n");

  r = f.run({"list"});
  CHECK(r.rc == 0);
  CHECK(r.out == "Bob@example.org\tmaildir\t" + f.dir.file("mail") +
                     "/example.org/Bob/Maildir\tunlimited\n"
                     "carol@example.org\tmbox\t" +
                     f.dir.file("mail") + "/boxes/carol\t1048576,100\n");

  r = f.run({"list", "--json"});
  CHECK(r.rc == 0);
  CHECK(r.out ==
        "[\n"
        "  {\"address\": \"Bob@example.org\", \"format\": \"maildir\", \"mailbox\": \"" +
            f.dir.file("mail") +
            "/example.org/Bob/Maildir\", \"quota_bytes\": 0, "
            "\"quota_messages\": 0, \"login\": true, \"scram\": true},\n"
            "  {\"address\": \"carol@example.org\", \"format\": \"mbox\", \"mailbox\": \"" +
            f.dir.file("mail") +
            "/boxes/carol\", \"quota_bytes\": 1048576, "
            "\"quota_messages\": 100, \"login\": true, \"scram\": true}\n]\n");
  CHECK(r.out.find("argon2") == std::string::npos);

  r = f.run({"passwd", "Bob@example.org"}, "n3w word\n");
  CHECK(r.rc == 0);
  CHECK(r.out == "password changed for Bob@example.org\n");
  {
    auto t = f.table();
    CHECK(auth::verifyPasswordHash(t.find("Bob@example.org")->passwordHash, "n3w word"));
    CHECK_FALSE(auth::verifyPasswordHash(t.find("Bob@example.org")->passwordHash, "s3cret pass"));
    // carol untouched
    CHECK(auth::verifyPasswordHash(t.find("carol@example.org")->passwordHash, "pw two"));
    CHECK(t.find("carol@example.org")->quota.messages == 100);
  }
  // The passwords have a space, which base64 (salts, hashes, keys) never
  // has: the file cannot contain them by chance.
  text = testing::readText(f.users);
  CHECK(text.find("n3w word") == std::string::npos);
  CHECK(text.find("pw two") == std::string::npos);

  // The Directory reads what yubinctl wrote.
  auth::Directory dir(auth::DirectorySettings::fromConfig(f.cfg));
  CHECK(dir.verifyPassword("Bob@example.org", "n3w word"));
  CHECK(dir.resolve("carol@example.org").ok());

  r = f.run({"del", "Bob@example.org"});
  CHECK(r.rc == 0);
  CHECK(r.out == "deleted Bob@example.org; mailbox left in place: " + f.dir.file("mail") +
                     "/example.org/Bob/Maildir\n");
  text = testing::readText(f.users);
  CHECK(text.rfind("# managed by yubinctl\n\n# keep me\ncarol@example.org:", 0) == 0);
  CHECK(f.table().users().size() == 1);
  CHECK_FALSE(dir.verifyPassword("Bob@example.org", "n3w word"));

  r = f.run({"list", "--json"});
  CHECK(r.out.find("Bob") == std::string::npos);
  r = f.run({"del", "carol@example.org"});
  CHECK(r.rc == 0);
  r = f.run({"list", "--json"});
  CHECK(r.rc == 0);
  CHECK(r.out == "[]\n");
  r = f.run({"list"});
  CHECK(r.rc == 0);
  CHECK(r.out.empty());
}

TEST_CASE("user add creates a missing users file") {
  Fixture f;
  Run r = f.run({"add", "bob@example.org"}, "pw\n");
  CHECK(r.rc == 0);
  CHECK(f.table().users().size() == 1);
}

TEST_CASE("user command errors: exit 1 with a message") {
  Fixture f;
  REQUIRE(f.run({"add", "bob@example.org"}, "pw\n").rc == 0);
  auto [args, input, error] = GENERATE(table<std::vector<std::string>, std::string, std::string>({
      {{"add", "bob@example.org"},
       "pw\n",
       "yubinctl user add: user bob@example.org already exists (USERS:1)\n"},
      {{"add", "bob@EXAMPLE.ORG"},
       "pw\n",
       "yubinctl user add: user bob@example.org already exists (USERS:1)\n"},
      {{"add", "eve@example.com"},
       "pw\n",
       "yubinctl user add: domain 'example.com' is not a local domain ([global] domains in "
       "test.conf)\n"},
      {{"add", "eve"}, "pw\n", "yubinctl user add: bad address 'eve': expected local@domain\n"},
      {{"add", "e/ve@example.org"},
       "pw\n",
       "yubinctl user add: bad local part in 'e/ve@example.org'\n"},
      {{"add", "eve@example.org"}, "", "yubinctl user add: no password on standard input\n"},
      {{"add", "eve@example.org"}, "\n", "yubinctl user add: empty password refused\n"},
      {{"add", "eve@example.org", "--mailbox", "../x"},
       "pw\n",
       "yubinctl user add: mailbox path for 'eve@example.org' has a '..' component\n"},
      {{"add", "eve@example.org", "--quota", "lots"},
       "pw\n",
       "yubinctl user add: quota bytes: bad size 'lots': expected a number with optional k, M or "
       "G\n"},
      {{"del", "eve@example.org"}, "", "yubinctl user del: no such user: eve@example.org\n"},
      {{"del", "Bob@example.org"}, "", "yubinctl user del: no such user: Bob@example.org\n"},
      {{"passwd", "eve@example.org"},
       "pw\n",
       "yubinctl user passwd: no such user: eve@example.org\n"},
      {{"passwd", "bob@example.org"}, "", "yubinctl user passwd: no password on standard input\n"},
      {{"passwd", "bob@example.org"}, "\n", "yubinctl user passwd: empty password refused\n"},
  }));
  CAPTURE(args);
  std::string before = testing::readText(f.users);
  Run r = f.run(args, input);
  CHECK(r.rc == 1);
  std::string expected = error;
  if (auto p = expected.find("USERS"); p != std::string::npos) expected.replace(p, 5, f.users);
  CHECK(r.err == expected);
  CHECK(r.out.empty());
  CHECK(testing::readText(f.users) == before);  // nothing changed
}

TEST_CASE("user command usage errors: exit 2") {
  Fixture f;
  auto [args, error] = GENERATE(table<std::vector<std::string>, std::string>({
      {std::vector<std::string>{}, "missing command"},
      {{"user"}, "missing command"},
      {{"frobnicate"}, "unknown command 'frobnicate'"},
      {{"add"}, "user add needs an address"},
      {{"add", "a@example.org", "b@example.org"}, "one address only"},
      {{"add", "a@example.org", "--colour", "red"}, "unknown option --colour"},
      {{"add", "a@example.org", "--format", "mh"}, "--format must be maildir or mbox"},
      {{"add", "a@example.org", "--mailbox"}, "--mailbox needs a value"},
      {{"del"}, "user del needs exactly one address"},
      {{"del", "a@example.org", "b@example.org"}, "user del needs exactly one address"},
      {{"passwd", "--json"}, "user passwd needs exactly one address"},
      {{"list", "--xml"}, "user list takes only --json"},
  }));
  CAPTURE(args);
  Run r = f.run(args, "pw\n");
  CHECK(r.rc == 2);
  CHECK(r.err.rfind("yubinctl user: " + error + "\nusage: yubinctl user add ADDRESS", 0) == 0);
  CHECK(r.out.empty());
}

TEST_CASE("a broken users file is reported, not edited") {
  Fixture f;
  testing::writeText(f.users, "# x\nnot a user line\n");
  for (const auto& args : std::vector<std::vector<std::string>>{
           {"list"}, {"add", "bob@example.org"}, {"del", "bob@example.org"}}) {
    Run r = f.run(args, "pw\n");
    CHECK(r.rc == 1);
    CHECK(r.err ==
          "yubinctl user " + args[0] + ": " + f.users +
              ":2: expected 6 fields address:password-hash:scram:mailbox:format:quota, found 1\n");
  }
  CHECK(testing::readText(f.users) == "# x\nnot a user line\n");
}

TEST_CASE("the default cost is libsodium's INTERACTIVE") {
  Fixture f;
  std::istringstream in("pw\n");
  std::ostringstream out, err;
  REQUIRE(ctl::runUserCommand(f.cfg, {"add", "bob@example.org"}, in, out, err) == 0);
  auto t = f.table();
  const std::string& h = t.find("bob@example.org")->passwordHash;
  CHECK(h.rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0) == 0);
  CHECK(auth::verifyPasswordHash(h, "pw"));
}

TEST_CASE("jsonString escapes quotes, backslashes and control bytes") {
  CHECK(ctl::jsonString("") == "\"\"");
  CHECK(ctl::jsonString("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(ctl::jsonString("x\ny\tz\r") == "\"x\\ny\\tz\\r\"");
  CHECK(ctl::jsonString(std::string("\x01\x1f\x7f", 3)) == "\"\\u0001\\u001f\\u007f\"");
  CHECK(ctl::jsonString(std::string("\0", 1)) == "\"\\u0000\"");
  CHECK(ctl::jsonString("ünï/cödé") == "\"ünï/cödé\"");
}
