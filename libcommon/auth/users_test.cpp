// Unit tests for the users file: parsing (good lines, every kind of bad line
// with file:line, truncated and random input), lookup case rules, UserDb
// reloads, password hashes, and the text edits yubinctl uses.
#include "auth/users.hpp"

#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <random>

#include "auth/password.hpp"
#include "auth/test_util.hpp"
#include "auth/users_edit.hpp"
#include "base/fs.hpp"

using namespace yubin;
using namespace yubin::auth;
using yubin::auth::testing::TempDir;

namespace {

UserDbSettings settings(const std::string& path = "users") {
  UserDbSettings s;
  s.path = path;
  s.domains = LocalDomains({"example.org", "Example.NET"});
  s.mailRoot = "/var/mail/yubin";
  return s;
}

// One cheap hash shared by the tests (minimum cost: tests only).
const std::string& hash() {
  static const std::string h = *hashPassword("secret", PasswordCost::minimum());
  return h;
}

const std::string& scramField() {
  static const std::string f = formatScramField(*scramDeriveKeys("secret", "saltsalt", 4096));
  return f;
}

std::string goodFile() {
  return "# virtual users\n"
         "\n"
         "bob@example.org:" +
         hash() + ":" + scramField() +
         "::maildir:10M,1000\n"
         "   # indented comment\n"
         "Alice@Example.NET:" +
         hash() +
         "::alice/mail.mbox:mbox\n"
         "  carol@example.org:*:::mbox:,50  \r\n"
         "dave@example.org:" +
         hash() +
         "::/srv/mail/dave::0,0\n"
         "Postmaster@example.org:" +
         hash() + ":::maildir:\n";
}

std::string errorOf(const std::string& text) {
  auto r = parseUsers(text, "users", settings());
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}

}  // namespace

TEST_CASE("a good users file parses with defaults applied") {
  auto r = parseUsers(goodFile(), "users", settings());
  REQUIRE(r.ok());
  const auto& users = r->users();
  REQUIRE(users.size() == 5);

  const User& bob = users[0];
  CHECK(bob.address == "bob@example.org");
  CHECK(bob.local == "bob");
  CHECK(bob.domain == "example.org");
  CHECK(bob.passwordHash == hash());
  REQUIRE(bob.scram);
  CHECK(bob.scram->iterations == 4096);
  CHECK(bob.scram->salt == "saltsalt");
  CHECK(bob.mailbox == "/var/mail/yubin/example.org/bob/Maildir");
  CHECK(bob.format == MailboxFormat::Maildir);
  CHECK(bob.quota.bytes == 10u * 1024 * 1024);
  CHECK(bob.quota.messages == 1000);
  CHECK(bob.line == 3);
  CHECK(bob.canLogin());

  const User& alice = users[1];
  CHECK(alice.address == "Alice@example.net");
  CHECK(alice.local == "Alice");
  CHECK_FALSE(alice.scram);
  CHECK(alice.mailbox == "/var/mail/yubin/alice/mail.mbox");
  CHECK(alice.format == MailboxFormat::Mbox);
  CHECK(alice.quota.bytes == 0);
  CHECK(alice.quota.messages == 0);

  const User& carol = users[2];
  CHECK_FALSE(carol.canLogin());
  CHECK(carol.mailbox == "/var/mail/yubin/example.org/carol.mbox");
  CHECK(carol.quota.bytes == 0);
  CHECK(carol.quota.messages == 50);
  CHECK(carol.line == 6);

  CHECK(users[3].mailbox == "/srv/mail/dave");
  CHECK(users[3].format == MailboxFormat::Maildir);
  CHECK(users[4].address == "postmaster@example.org");
  CHECK(users[4].mailbox == "/var/mail/yubin/example.org/postmaster/Maildir");

  // The dummy hash has the cost of the file's hashes.
  CHECK(r->dummyHash().substr(0, 27) == hash().substr(0, 27));
  CHECK(isPasswordHash(r->dummyHash()));
}

TEST_CASE("lookups: domain case-insensitive, local part exact, postmaster any case") {
  auto r = parseUsers(goodFile(), "users", settings());
  REQUIRE(r.ok());
  auto [query, found] = GENERATE(table<std::string, std::string>({
      {"bob@example.org", "bob@example.org"},
      {"bob@EXAMPLE.ORG", "bob@example.org"},
      {"Bob@example.org", ""},
      {"BOB@example.org", ""},
      {"Alice@example.net", "Alice@example.net"},
      {"Alice@EXAMPLE.net", "Alice@example.net"},
      {"alice@example.net", ""},
      {"postmaster@example.org", "postmaster@example.org"},
      {"POSTMASTER@Example.Org", "postmaster@example.org"},
      {"bob@example.net", ""},
      {"bob@", ""},
      {"@example.org", ""},
      {"bob", ""},
      {"", ""},
  }));
  CAPTURE(query);
  const User* u = r->find(query);
  if (found.empty()) {
    CHECK(u == nullptr);
  } else {
    REQUIRE(u != nullptr);
    CHECK(u->address == found);
  }
}

TEST_CASE("every kind of bad line is refused with file:line") {
  const std::string h = hash();
  const std::string ok = "ok@example.org:" + h + ":::maildir:\n";
  auto [line, error] = GENERATE_COPY(table<std::string, std::string>({
      {"bob@example.org",
       "expected 6 fields address:password-hash:scram:mailbox:format:quota, found 1"},
      {"bob@example.org:" + h + "::",
       "expected 6 fields address:password-hash:scram:mailbox:format:quota, found 4"},
      {"bob@example.org:" + h + ":::maildir:1:x",
       "expected 6 fields address:password-hash:scram:mailbox:format:quota, found 7"},
      {"bob:" + h + ":::maildir", "bad address 'bob': expected local@domain"},
      {"@example.org:" + h + ":::maildir", "bad address '@example.org': expected local@domain"},
      {"bob@:" + h + ":::maildir", "bad address 'bob@': expected local@domain"},
      {"b/ob@example.org:" + h + ":::maildir", "bad local part in 'b/ob@example.org'"},
      {"..@example.org:" + h + ":::maildir", "bad local part in '..@example.org'"},
      {".bob@example.org:" + h + ":::maildir", "bad local part in '.bob@example.org'"},
      {"b..ob@example.org:" + h + ":::maildir", "bad local part in 'b..ob@example.org'"},
      {"b\"ob@example.org:" + h + ":::maildir", "bad local part in 'b\"ob@example.org'"},
      {"bob@exa_mple.org:" + h + ":::maildir", "bad domain in 'bob@exa_mple.org'"},
      {"bob@example..org:" + h + ":::maildir", "bad domain in 'bob@example..org'"},
      {"bob@-example.org:" + h + ":::maildir", "bad domain in 'bob@-example.org'"},
      {"bob@example.com:" + h + ":::maildir",
       "domain 'example.com' of 'bob@example.com' is not in [global] domains"},
      {"bob@example.org:secret:::maildir",
       "bad password hash for 'bob@example.org': expected a crypto_pwhash_str (Argon2) string or "
       "'*'"},
      {"bob@example.org::::maildir",
       "bad password hash for 'bob@example.org': expected a crypto_pwhash_str (Argon2) string or "
       "'*'"},
      {"bob@example.org:$argon2id$v=19$m=8,t=1,p=1$xx$yy:::maildir",
       "bad password hash for 'bob@example.org': expected a crypto_pwhash_str (Argon2) string or "
       "'*'"},
      {"bob@example.org:" + h + ":4096,abc:::maildir",
       "bad SCRAM field for 'bob@example.org': SCRAM field must be "
       "iterations,salt,storedkey,serverkey"},
      {"bob@example.org:" + h + "::../x:maildir",
       "mailbox path for 'bob@example.org' has a '..' component"},
      {"bob@example.org:" + h + "::/srv/../etc:maildir",
       "mailbox path for 'bob@example.org' has a '..' component"},
      {"bob@example.org:" + h + "::a/..:maildir",
       "mailbox path for 'bob@example.org' has a '..' component"},
      {"bob@example.org:" + h + ":::Maildir",
       "bad format 'Maildir' for 'bob@example.org': expected maildir or mbox"},
      {"bob@example.org:" + h + ":::mh",
       "bad format 'mh' for 'bob@example.org': expected maildir or mbox"},
      {"bob@example.org:" + h + ":::maildir:10X",
       "bad quota for 'bob@example.org': quota bytes: bad size '10X': expected a number with "
       "optional k, M or G"},
      {"bob@example.org:" + h + ":::maildir:1,x",
       "bad quota for 'bob@example.org': quota messages 'x': expected a number"},
      {"bob@example.org:" + h + ":::maildir:1,2,3",
       "bad quota for 'bob@example.org': quota must be BYTES[,MESSAGES]"},
      {"bob@example.org:" + h + "::my box:maildir", "blank inside the mailbox field"},
      {"bob@example.org :" + h + ":::maildir", "blank inside the address field"},
      {"bob@example.org:" + h + ":::maildir:1\t,2", "blank inside the quota field"},
      {std::string("bob@example.org:") + h + ":::maildir\x01", "control character in line"},
      {std::string("bob@exam\0ple.org:", 17) + h + ":::maildir", "control character in line"},
      {"ok@EXAMPLE.org:" + h + ":::maildir",
       "duplicate address 'ok@example.org' (first on line 2)"},
  }));
  CAPTURE(line);
  std::string text = "# header\n" + ok + "\n" + line + "\n" + ok;
  CHECK(errorOf(text) == "users:4: " + error);
  // The hash never appears in an error.
  CHECK(errorOf(text).find(h) == std::string::npos);
}

TEST_CASE("a relative mailbox needs a mail_root") {
  auto s = settings();
  s.mailRoot = "";
  auto r = parseUsers("bob@example.org:" + hash() + ":::maildir\n", "u", s);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message ==
        "u:1: mailbox path for 'bob@example.org' is relative but [global] mail_root is empty");
  CHECK(parseUsers("bob@example.org:" + hash() + "::/m/bob:maildir\n", "u", s).ok());
  s.mailRoot = "/var/mail/";
  auto r2 = parseUsers("bob@example.org:" + hash() + ":::mbox\n", "u", s);
  REQUIRE(r2.ok());
  CHECK(r2->users()[0].mailbox == "/var/mail/example.org/bob.mbox");
}

TEST_CASE("every prefix of a good file parses or fails cleanly") {
  // The file arriving one byte at a time: whole lines must parse; a cut line
  // may fail, but only with file:line.
  std::string text = goodFile();
  for (size_t n = 0; n <= text.size(); ++n) {
    auto r = parseUsers(std::string_view(text).substr(0, n), "users", settings());
    if (n == 0 || text[n - 1] == '\n') {
      CHECK(r.ok());
    } else if (!r.ok()) {
      CHECK(r.error().message.rfind("users:", 0) == 0);
    }
  }
}

TEST_CASE("random and hostile input never crashes the parser") {
  std::mt19937 rng(42);
  const std::string alphabet = std::string("ab@.:#,/\n\r\t $*-10Mexample.org") + '\0' + "\x80\xff";
  for (int i = 0; i < 3000; ++i) {
    std::string s(rng() % 120, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    auto r = parseUsers(s, "users", settings());
    if (!r.ok()) CHECK(r.error().message.rfind("users:", 0) == 0);
  }
  // A very long line.
  std::string longLine(1 << 20, 'a');
  CHECK_FALSE(parseUsers(longLine, "users", settings()).ok());
  CHECK_FALSE(parseUsers("x@example.org:" + hash() + "::" + std::string(5000, 'm') + ":maildir",
                         "users", settings())
                  .ok());
}

TEST_CASE("password hashes: good, bad, malformed, dummy") {
  auto h = hashPassword("pässword", PasswordCost::minimum());
  REQUIRE(h.ok());
  CHECK(h->rfind("$argon2id$v=19$m=8,t=1,p=1$", 0) == 0);
  CHECK(isPasswordHash(*h));
  CHECK(verifyPasswordHash(*h, "pässword"));
  CHECK_FALSE(verifyPasswordHash(*h, "password"));
  CHECK_FALSE(verifyPasswordHash(*h, ""));
  CHECK_FALSE(verifyPasswordHash("", "x"));
  CHECK_FALSE(verifyPasswordHash("*", "*"));
  CHECK_FALSE(verifyPasswordHash(std::string(500, '$'), "x"));
  CHECK_FALSE(isPasswordHash("$argon2id$garbage"));
  CHECK_FALSE(isPasswordHash("$2y$10$abcdefghijklmnopqrstuv"));

  std::string dummy = dummyHashLike(*h);
  CHECK(dummy.rfind("$argon2id$v=19$m=8,t=1,p=1$", 0) == 0);
  CHECK(isPasswordHash(dummy));
  CHECK_FALSE(verifyPasswordHash(dummy, "pässword"));
  std::string fallback = dummyHashLike("");
  CHECK(fallback.rfind("$argon2id$v=19$m=65536,t=2,p=1$", 0) == 0);
  CHECK(isPasswordHash(fallback));
}

TEST_CASE("UserDb sees changes to the file without a restart") {
  TempDir dir;
  std::string path = dir.file("users");
  UserDb db(settings(path));

  // Missing file: an empty, available table.
  REQUIRE(db.table() != nullptr);
  CHECK(db.table()->users().empty());
  CHECK_FALSE(db.find("bob@example.org"));

  std::string one = "bob@example.org:" + hash() + ":::maildir\n";
  REQUIRE(atomicWrite(path, one, 0640).ok());
  auto bob = db.find("bob@example.org");
  REQUIRE(bob);
  CHECK(bob->format == MailboxFormat::Maildir);

  // Rewritten (atomically, like yubinctl): the change is seen.
  REQUIRE(atomicWrite(path, one + "eve@example.org:" + hash() + ":::mbox\n", 0640).ok());
  CHECK(db.find("eve@example.org"));
  // Rewritten in place with a different size, like an editor.
  testing::writeText(path, "bob@example.org:" + hash() + ":::mbox:1k\n");
  bob = db.find("bob@example.org");
  REQUIRE(bob);
  CHECK(bob->format == MailboxFormat::Mbox);
  CHECK(bob->quota.bytes == 1024);
  CHECK_FALSE(db.find("eve@example.org"));

  // A snapshot stays consistent whatever happens to the file afterwards.
  auto snap = db.table();
  REQUIRE(atomicWrite(path, "", 0640).ok());
  CHECK(snap->find("bob@example.org") != nullptr);
  CHECK_FALSE(db.find("bob@example.org"));
}

TEST_CASE("a failed reload keeps the previous data") {
  TempDir dir;
  std::string path = dir.file("users");
  std::string good = "bob@example.org:" + hash() + ":::maildir\n";
  REQUIRE(atomicWrite(path, good, 0640).ok());
  UserDb db(settings(path));
  CHECK(db.find("bob@example.org"));

  REQUIRE(atomicWrite(path, good + "broken line\n", 0640).ok());
  CHECK(db.find("bob@example.org"));  // still the old data
  Status s = db.reload();
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().message ==
        path + ":2: expected 6 fields address:password-hash:scram:mailbox:format:quota, found 1");
  CHECK(db.find("bob@example.org"));

  // Fixed: the new version is picked up.
  REQUIRE(atomicWrite(path, "eve@example.org:" + hash() + ":::maildir\n", 0640).ok());
  CHECK(db.find("eve@example.org"));
  CHECK_FALSE(db.find("bob@example.org"));

  // Replaced by something unreadable: the previous data again.
  REQUIRE(::unlink(path.c_str()) == 0);
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  CHECK(db.find("eve@example.org"));
  CHECK_FALSE(db.reload().ok());
}

TEST_CASE("UserDb with a file that was never readable has no table") {
  TempDir dir;
  std::string path = dir.file("users");
  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  UserDb db(settings(path));
  CHECK(db.table() == nullptr);
  CHECK_FALSE(db.find("bob@example.org"));
  // Broken from the start: no table either.
  std::string path2 = dir.file("users2");
  testing::writeText(path2, "junk\n");
  UserDb db2(settings(path2));
  CHECK(db2.table() == nullptr);
  testing::writeText(path2, "bob@example.org:" + hash() + ":::maildir\n");
  CHECK(db2.find("bob@example.org"));
}

TEST_CASE("text edits keep comments and other lines byte for byte") {
  const auto s = settings();
  Credentials cred{hash(), scramField()};
  std::string text =
      "# users\r\n"
      "#   keep   this\n"
      "\n"
      "bob@example.org:" +
      hash() +
      ":::maildir:5M\n"
      "  # indented\n"
      "carol@example.org:*::carol:mbox:,7";  // no final newline

  auto line = makeUserLine({"Dan@EXAMPLE.org", "", MailboxFormat::Mbox, "1G,10"}, cred, s);
  REQUIRE(line.ok());
  CHECK(*line == "Dan@example.org:" + hash() + ":" + scramField() + "::mbox:1G,10");

  auto added = usersTextAdd(text, "users", s, *line);
  REQUIRE(added.ok());
  CHECK(*added == text + "\n" + *line + "\n");

  auto dup =
      usersTextAdd(*added, "users", s,
                   *makeUserLine({"bob@Example.ORG", "", MailboxFormat::Maildir, ""}, cred, s));
  REQUIRE_FALSE(dup.ok());
  CHECK(dup.error().message == "user bob@example.org already exists (users:4)");

  auto deleted = usersTextDelete(*added, "users", s, "bob@EXAMPLE.org");
  REQUIRE(deleted.ok());
  CHECK(*deleted ==
        "# users\r\n#   keep   this\n\n  # indented\ncarol@example.org:*::carol:mbox:,7\n" + *line +
            "\n");
  auto missing = usersTextDelete(*deleted, "users", s, "bob@example.org");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message == "no such user: bob@example.org");

  Credentials fresh{*hashPassword("new", PasswordCost::minimum()), ""};
  auto changed = usersTextSetCredentials(text, "users", s, "carol@example.org", fresh);
  REQUIRE(changed.ok());
  CHECK(*changed == text.substr(0, text.rfind('\n') + 1) + "carol@example.org:" + fresh.hash +
                        "::carol:mbox:,7");
  auto parsed = parseUsers(*changed, "users", s);
  REQUIRE(parsed.ok());
  CHECK(verifyPasswordHash(parsed->find("carol@example.org")->passwordHash, "new"));

  // A broken file is not edited.
  auto broken = usersTextAdd(text + "\njunk\n", "users", s, *line);
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().message ==
        "users:7: expected 6 fields address:password-hash:scram:mailbox:format:quota, found 1");

  // Fields that would not read back are refused.
  auto bad = makeUserLine({"x@example.org", "../x", MailboxFormat::Maildir, ""}, cred, s);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message == "mailbox path for 'x@example.org' has a '..' component");
  CHECK_FALSE(makeUserLine({"x@example.org", "a:b", MailboxFormat::Maildir, ""}, cred, s).ok());
  CHECK_FALSE(makeUserLine({"x@example.org", "", MailboxFormat::Maildir, "1\n2"}, cred, s).ok());
  CHECK_FALSE(makeUserLine({"x@other.org", "", MailboxFormat::Maildir, ""}, cred, s).ok());
  // A name that would read back as a comment.
  auto hashName = makeUserLine({"#x@example.org", "", MailboxFormat::Maildir, ""}, cred, s);
  REQUIRE_FALSE(hashName.ok());
  CHECK(hashName.error().message == "bad local part in '#x@example.org'");
}

TEST_CASE("file edits create the file 0640 and rewrite it atomically") {
  TempDir dir;
  auto s = settings(dir.file("users"));
  auto cred = makeCredentials("pw one", PasswordCost::minimum());
  REQUIRE(cred.ok());
  CHECK_FALSE(makeCredentials("", PasswordCost::minimum()).ok());

  REQUIRE(addUser(s, {"bob@example.org", "", MailboxFormat::Maildir, ""}, *cred).ok());
  struct stat st;
  REQUIRE(::stat(s.path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  std::string text = testing::readText(s.path);
  CHECK(text.find("pw one") == std::string::npos);  // a space: never in base64
  auto t = parseUsers(text, s.path, s);
  REQUIRE(t.ok());
  REQUIRE(t->users().size() == 1);
  CHECK(verifyPasswordHash(t->users()[0].passwordHash, "pw one"));

  auto err = addUser(s, {"bob@example.org", "", MailboxFormat::Maildir, ""}, *cred);
  REQUIRE_FALSE(err.ok());
  CHECK(err.error().message == "user bob@example.org already exists (" + s.path + ":1)");

  auto cred2 = makeCredentials("pw2", PasswordCost::minimum());
  REQUIRE(cred2.ok());
  REQUIRE(setCredentials(s, "bob@example.org", *cred2).ok());
  t = parseUsers(testing::readText(s.path), s.path, s);
  REQUIRE(t.ok());
  CHECK(verifyPasswordHash(t->users()[0].passwordHash, "pw2"));
  CHECK_FALSE(verifyPasswordHash(t->users()[0].passwordHash, "pw one"));

  REQUIRE(deleteUser(s, "bob@example.org").ok());
  CHECK(testing::readText(s.path).empty());
  CHECK_FALSE(deleteUser(s, "bob@example.org").ok());
  CHECK_FALSE(setCredentials(s, "bob@example.org", *cred2).ok());
}
