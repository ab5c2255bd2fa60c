// Unit tests for the SASL exchanges: PLAIN, LOGIN, SCRAM-SHA-256 and
// SCRAM-SHA-256-PLUS against a real Directory, with good and hostile input
// (missing NULs, authzid mismatch, wrong nonce, wrong proof, channel
// binding mismatch, gs2 'y'/'p' rules, overlong input), and a SCRAM client
// written here that checks the server signature.
#include "sasl/sasl.hpp"

#include <catch2/catch.hpp>
#include <functional>

#include "auth/directory.hpp"
#include "auth/password.hpp"
#include "auth/test_util.hpp"
#include "base/fs.hpp"
#include "base/strings.hpp"
#include "config/config.hpp"

using namespace yubin;
using Kind = sasl::Step::Kind;
using yubin::auth::testing::TempDir;

namespace {

const std::string kExporter(32, '\x42');

struct Fixture {
  TempDir dir;
  std::string users = dir.file("users");
  std::string aliases = dir.file("aliases");
  std::unique_ptr<auth::Directory> directory;

  Fixture() {
    auto hash = *auth::hashPassword("secret", auth::PasswordCost::minimum());
    std::string scram = auth::formatScramField(*auth::scramNewKeys("secret", 4096));
    REQUIRE(atomicWrite(users,
                        "alice@example.org:" + hash + ":" + scram + "::maildir\n" +
                            "noscram@example.org:" + hash + ":::maildir\n" +
                            "locked@example.org:*:" + scram + "::maildir\n",
                        0640)
                .ok());
    REQUIRE(atomicWrite(aliases, "", 0640).ok());
    auto cfg = config::Config::parse("version = 1\n[global]\ndomains = example.org\nusers_file = " +
                                         users + "\naliases_file = " + aliases + "\n",
                                     "test.conf");
    REQUIRE(cfg.ok());
    directory = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(*cfg));
    REQUIRE(directory->reload().ok());
  }

  std::unique_ptr<sasl::Exchange> start(std::string_view mech, std::string exporter = {}) {
    sasl::Options o;
    o.tls = !exporter.empty();
    o.tlsExporter = std::move(exporter);
    auto ex = sasl::Exchange::start(mech, *directory, o);
    REQUIRE(ex.ok());
    return std::move(*ex);
  }
};

std::string plainMsg(std::string_view authz, std::string_view user, std::string_view pw) {
  std::string m(authz);
  m.push_back('\0');
  m.append(user);
  m.push_back('\0');
  m.append(pw);
  return m;
}

// A SCRAM-SHA-256 client (RFC 5802 §3), written from the RFC for the tests.
struct ScramClient {
  ScramClient(std::string u, std::string p, std::string g, std::string cb)
      : user(std::move(u)), password(std::move(p)), gs2(std::move(g)), cbData(std::move(cb)) {}
  std::string user, password, gs2, cbData;
  std::string nonce = "fyko+d2lbbFgONRv9qkxdawL";
  std::string bare, serverFirst, authMessage;
  std::string salt;
  uint32_t iterations = 0;

  std::string first() {
    bare = "n=" + user + ",r=" + nonce;
    return gs2 + bare;
  }
  // Returns client-final, or "" when the server-first is not acceptable.
  std::string final(std::string_view sf, std::string nonceOverride = {}) {
    serverFirst = std::string(sf);
    auto parts = splitAny(serverFirst, ",");
    REQUIRE(parts.size() >= 3);
    std::string r = parts[0].substr(2);
    REQUIRE(r.substr(0, nonce.size()) == nonce);
    salt = *base64Decode(parts[1].substr(2));
    iterations = static_cast<uint32_t>(*parseU64(parts[2].substr(2)));
    if (!nonceOverride.empty()) r = nonceOverride;
    std::string withoutProof = "c=" + base64Encode(gs2 + cbData) + ",r=" + r;
    authMessage = bare + "," + serverFirst + "," + withoutProof;
    auto proof = auth::scramClientProof(password, salt, iterations, authMessage);
    REQUIRE(proof.ok());
    return withoutProof + ",p=" + base64Encode(*proof);
  }
  bool verifyServer(std::string_view serverFinal) const {
    auto keys = auth::scramDeriveKeys(password, salt, iterations);
    REQUIRE(keys.ok());
    return serverFinal == "v=" + base64Encode(auth::scramServerSignature(*keys, authMessage));
  }
};

}  // namespace

TEST_CASE("mechanisms: -PLUS only with channel binding data") {
  CHECK(sasl::mechanisms({}) == std::vector<std::string>{"PLAIN", "LOGIN", "SCRAM-SHA-256"});
  sasl::Options o{true, kExporter};
  CHECK(sasl::mechanisms(o) ==
        std::vector<std::string>{"PLAIN", "LOGIN", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"});
}

TEST_CASE("start: unknown mechanisms and -PLUS without TLS are refused") {
  Fixture f;
  for (const char* m : {"CRAM-MD5", "", "PLAIN ", "SCRAM-SHA-1", "XOAUTH2", "SCRAM-SHA-256-PLUS"})
    CHECK_FALSE(sasl::Exchange::start(m, *f.directory, {}).ok());
  CHECK(sasl::Exchange::start("plain", *f.directory, {}).ok());
  CHECK((*sasl::Exchange::start("scram-sha-256", *f.directory, {}))->name() == "SCRAM-SHA-256");
}

TEST_CASE("PLAIN: initial response, then the password check") {
  Fixture f;
  auto ex = f.start("PLAIN");
  std::string msg = plainMsg("", "alice@example.org", "secret");
  sasl::Step s = ex->begin(std::string_view(msg));
  REQUIRE(s.kind == Kind::CheckPassword);
  CHECK(s.user == "alice@example.org");
  CHECK(s.password == "secret");
  s = ex->passwordChecked(true);
  REQUIRE(s.kind == Kind::Success);
  CHECK(s.authenticated == "alice@example.org");
  CHECK(s.serverFinal.empty());
}

TEST_CASE("PLAIN: empty challenge without an initial response; authzid equal to user") {
  Fixture f;
  auto ex = f.start("PLAIN");
  sasl::Step s = ex->begin(std::nullopt);
  REQUIRE(s.kind == Kind::Challenge);
  CHECK(s.challenge.empty());
  s = ex->respond(plainMsg("alice@example.org", "alice@EXAMPLE.org", "secret"));
  CHECK(s.kind == Kind::Failure);  // authzid must equal authcid byte for byte
  auto ex2 = f.start("PLAIN");
  (void)ex2->begin(std::nullopt);
  s = ex2->respond(plainMsg("alice@EXAMPLE.org", "alice@EXAMPLE.org", "secret"));
  REQUIRE(s.kind == Kind::CheckPassword);
  s = ex2->passwordChecked(true);
  REQUIRE(s.kind == Kind::Success);
  CHECK(s.authenticated == "alice@example.org");  // canonical
}

TEST_CASE("PLAIN: failed check and hostile messages") {
  Fixture f;
  {
    auto ex = f.start("PLAIN");
    std::string m = plainMsg("", "alice@example.org", "wrong");
    REQUIRE(ex->begin(std::string_view(m)).kind == Kind::CheckPassword);
    sasl::Step s = ex->passwordChecked(false);
    CHECK(s.kind == Kind::Failure);
    CHECK(s.user == "alice@example.org");
    CHECK(s.reason.find("wrong") == std::string::npos);
    // A second result is not a second chance.
    CHECK(ex->passwordChecked(true).kind == Kind::Failure);
  }
  const std::string nul(1, '\0');
  auto bad =
      GENERATE_COPY(std::string("alice@example.orgsecret"),                      // no NUL
                    "alice@example.org" + nul + "secret",                        // one NUL
                    plainMsg("", "", "secret"),                                  // no user
                    plainMsg("", "alice@example.org", ""),                       // no password
                    plainMsg("bob@example.org", "alice@example.org", "x"),       // authzid mismatch
                    plainMsg("", "alice@example.org", "a" + nul + "b"),          // extra NUL
                    plainMsg("", std::string(256, 'u'), "x"),                    // field too long
                    plainMsg("", "alice@example.org", std::string(5000, 'p')));  // overlong
  auto ex = f.start("PLAIN");
  sasl::Step s = ex->begin(std::string_view(bad));
  CHECK(s.kind == Kind::Failure);
  CHECK_FALSE(s.reason.empty());
  CHECK(s.password.empty());
}

TEST_CASE("PLAIN: a response after the exchange is over fails") {
  Fixture f;
  auto ex = f.start("PLAIN");
  std::string m = plainMsg("", "alice@example.org", "secret");
  REQUIRE(ex->begin(std::string_view(m)).kind == Kind::CheckPassword);
  CHECK(ex->respond(m).kind == Kind::Failure);
}

TEST_CASE("LOGIN: two challenges, or the user name as initial response") {
  Fixture f;
  auto ex = f.start("LOGIN");
  sasl::Step s = ex->begin(std::nullopt);
  REQUIRE(s.kind == Kind::Challenge);
  CHECK(s.challenge == "Username:");
  s = ex->respond("alice@example.org");
  REQUIRE(s.kind == Kind::Challenge);
  CHECK(s.challenge == "Password:");
  s = ex->respond("secret");
  REQUIRE(s.kind == Kind::CheckPassword);
  CHECK(s.user == "alice@example.org");
  CHECK(s.password == "secret");
  CHECK(ex->passwordChecked(true).kind == Kind::Success);

  auto ex2 = f.start("LOGIN");
  s = ex2->begin(std::string_view("alice@example.org"));
  REQUIRE(s.kind == Kind::Challenge);
  CHECK(s.challenge == "Password:");
  s = ex2->respond("wrong");
  REQUIRE(s.kind == Kind::CheckPassword);
  CHECK(ex2->passwordChecked(false).kind == Kind::Failure);
}

TEST_CASE("LOGIN: hostile responses") {
  Fixture f;
  auto ex = f.start("LOGIN");
  (void)ex->begin(std::nullopt);
  CHECK(ex->respond("").kind == Kind::Failure);
  auto ex2 = f.start("LOGIN");
  (void)ex2->begin(std::nullopt);
  CHECK(ex2->respond(std::string(300, 'a')).kind == Kind::Failure);
  auto ex3 = f.start("LOGIN");
  (void)ex3->begin(std::nullopt);
  CHECK(ex3->respond(std::string("a\0b", 3)).kind == Kind::Failure);
  auto ex4 = f.start("LOGIN");
  (void)ex4->begin(std::nullopt);
  REQUIRE(ex4->respond("alice@example.org").kind == Kind::Challenge);
  CHECK(ex4->respond("").kind == Kind::Failure);
  CHECK(ex4->respond("more").kind == Kind::Failure);
}

TEST_CASE("SCRAM-SHA-256: a full exchange; the client checks the server signature") {
  Fixture f;
  bool initial = GENERATE(true, false);
  auto ex = f.start("SCRAM-SHA-256");
  ScramClient c{"alice@example.org", "secret", "n,,", ""};
  sasl::Step s;
  if (initial) {
    s = ex->begin(c.first());
  } else {
    s = ex->begin(std::nullopt);
    REQUIRE(s.kind == Kind::Challenge);
    CHECK(s.challenge.empty());
    s = ex->respond(c.first());
  }
  REQUIRE(s.kind == Kind::Challenge);
  s = ex->respond(c.final(s.challenge));
  REQUIRE(s.kind == Kind::Success);
  CHECK(s.authenticated == "alice@example.org");
  CHECK(c.verifyServer(s.serverFinal));
}

TEST_CASE("SCRAM-SHA-256: wrong password, unknown user, no keys, disabled user") {
  Fixture f;
  struct Case {
    std::string user, password;
  };
  auto c = GENERATE(Case{"alice@example.org", "wrong"}, Case{"ghost@example.org", "secret"},
                    Case{"noscram@example.org", "secret"}, Case{"locked@example.org", "secret"});
  auto ex = f.start("SCRAM-SHA-256");
  ScramClient cl{c.user, c.password, "n,,", ""};
  sasl::Step s = ex->begin(cl.first());
  REQUIRE(s.kind == Kind::Challenge);  // the server-first does not tell
  CHECK(s.challenge.find(",s=") != std::string::npos);
  s = ex->respond(cl.final(s.challenge));
  CHECK(s.kind == Kind::Failure);
  CHECK(s.user == c.user);
}

TEST_CASE("SCRAM-SHA-256: the fake salt of an unknown user is stable") {
  Fixture f;
  std::string salts[2];
  for (auto& salt : salts) {
    auto ex = f.start("SCRAM-SHA-256");
    ScramClient cl{"ghost@example.org", "x", "n,,", ""};
    sasl::Step s = ex->begin(cl.first());
    REQUIRE(s.kind == Kind::Challenge);
    salt = splitAny(s.challenge, ",")[1];
  }
  CHECK(salts[0] == salts[1]);
}

TEST_CASE("SCRAM-SHA-256: wrong nonce, channel binding mismatch, bad proof") {
  Fixture f;
  auto which = GENERATE(0, 1, 2, 3);
  auto ex = f.start("SCRAM-SHA-256");
  ScramClient cl{"alice@example.org", "secret", "n,,", ""};
  sasl::Step s = ex->begin(cl.first());
  REQUIRE(s.kind == Kind::Challenge);
  std::string fin;
  switch (which) {
    case 0:
      fin = cl.final(s.challenge, cl.nonce + "forged");
      break;
    case 1:
      cl.gs2 = "y,,";  // c= does not echo the header sent
      fin = cl.final(s.challenge);
      break;
    case 2: {
      fin = cl.final(s.challenge);
      size_t p = fin.rfind(",p=");
      fin = fin.substr(0, p) + ",p=" + base64Encode(std::string(32, 'x'));
      break;
    }
    case 3:
      fin = "c=biws,r=" + cl.nonce;  // no proof
      break;
  }
  s = ex->respond(fin);
  CHECK(s.kind == Kind::Failure);
  CHECK(s.serverFinal.empty());
}

TEST_CASE("SCRAM-SHA-256: gs2 header rules") {
  Fixture f;
  // 'y' is fine when we do not offer -PLUS...
  {
    auto ex = f.start("SCRAM-SHA-256");
    ScramClient cl{"alice@example.org", "secret", "y,,", ""};
    sasl::Step s = ex->begin(cl.first());
    REQUIRE(s.kind == Kind::Challenge);
    s = ex->respond(cl.final(s.challenge));
    CHECK(s.kind == Kind::Success);
  }
  // ...and a downgrade when we do.
  {
    auto ex = f.start("SCRAM-SHA-256", kExporter);
    ScramClient cl{"alice@example.org", "secret", "y,,", ""};
    CHECK(ex->begin(cl.first()).kind == Kind::Failure);
  }
  // 'p' with the non-PLUS mechanism.
  {
    auto ex = f.start("SCRAM-SHA-256", kExporter);
    ScramClient cl{"alice@example.org", "secret", "p=tls-exporter,,", ""};
    CHECK(ex->begin(cl.first()).kind == Kind::Failure);
  }
  // authzid must be the user.
  {
    auto ex = f.start("SCRAM-SHA-256");
    ScramClient cl{"alice@example.org", "secret", "n,a=bob@example.org,", ""};
    CHECK(ex->begin(cl.first()).kind == Kind::Failure);
    auto ex2 = f.start("SCRAM-SHA-256");
    ScramClient cl2{"alice@example.org", "secret", "n,a=alice@example.org,", ""};
    sasl::Step s = ex2->begin(cl2.first());
    REQUIRE(s.kind == Kind::Challenge);
    CHECK(ex2->respond(cl2.final(s.challenge)).kind == Kind::Success);
  }
  // Malformed first messages.
  for (const std::string& bad : std::vector<std::string>{
           "", "n", "x,,n=a,r=b", "n,,r=abc", "n,,n=,r=abc", "n,,m=ext,n=a,r=b", "n,b=zz,n=a,r=b",
           "n,,n=a=2X,r=b", std::string(5000, 'n')}) {
    auto ex = f.start("SCRAM-SHA-256");
    CHECK(ex->begin(std::string_view(bad)).kind == Kind::Failure);
  }
}

TEST_CASE("SCRAM-SHA-256-PLUS: tls-exporter channel binding") {
  Fixture f;
  auto ex = f.start("SCRAM-SHA-256-PLUS", kExporter);
  ScramClient cl{"alice@example.org", "secret", "p=tls-exporter,,", kExporter};
  sasl::Step s = ex->begin(cl.first());
  REQUIRE(s.kind == Kind::Challenge);
  s = ex->respond(cl.final(s.challenge));
  REQUIRE(s.kind == Kind::Success);
  CHECK(cl.verifyServer(s.serverFinal));
}

TEST_CASE("SCRAM-SHA-256-PLUS: mismatching binding data, other types, no binding") {
  Fixture f;
  {
    auto ex = f.start("SCRAM-SHA-256-PLUS", kExporter);
    ScramClient cl{"alice@example.org", "secret", "p=tls-exporter,,", std::string(32, 'x')};
    sasl::Step s = ex->begin(cl.first());
    REQUIRE(s.kind == Kind::Challenge);
    CHECK(ex->respond(cl.final(s.challenge)).kind == Kind::Failure);
  }
  for (const std::string& gs2 : std::vector<std::string>{
           "p=tls-unique,,", "p=tls-server-end-point,,", "n,,", "y,,", "p=,,"}) {
    auto ex = f.start("SCRAM-SHA-256-PLUS", kExporter);
    ScramClient cl{"alice@example.org", "secret", gs2, kExporter};
    CHECK(ex->begin(cl.first()).kind == Kind::Failure);
  }
}

TEST_CASE("SCRAM: responses out of order fail") {
  Fixture f;
  auto ex = f.start("SCRAM-SHA-256");
  ScramClient cl{"alice@example.org", "secret", "n,,", ""};
  sasl::Step s = ex->begin(cl.first());
  REQUIRE(s.kind == Kind::Challenge);
  REQUIRE(ex->respond(cl.final(s.challenge)).kind == Kind::Success);
  CHECK(ex->respond("c=biws").kind == Kind::Failure);
  CHECK(ex->passwordChecked(true).kind == Kind::Failure);
  CHECK(ex->begin(std::nullopt).kind == Kind::Failure);
}

TEST_CASE("SCRAM-SHA-256: hostile client-first messages, each with its reason") {
  Fixture f;
  const std::string nul(1, '\0');
  const std::string u = "n=alice@example.org";
  // A message of exactly kMaxResponse octets is read; one more is not.
  const std::string atLimit = "n,," + u + ",r=" + std::string(sasl::kMaxResponse - 25, 'x');
  REQUIRE(atLimit.size() == sasl::kMaxResponse);
  struct Case {
    std::string msg, reason;  // reason "": accepted (a Challenge)
  };
  const std::vector<Case> cases = {
      {"n,," + u + ",r=", "malformed nonce"},
      {"n,," + u + ",r=ab\x01" "cd", "malformed nonce"},
      {"n,," + u + ",r=ab\xff" "cd", "malformed nonce"},
      {"n,," + u + ",r=ab cd", "malformed nonce"},
      {"n,," + u, "missing nonce"},
      {"n,,r=abc," + u, "missing user name"},
      {"n,," + u + ",r=abc,x", "malformed extension"},
      {"n,," + u + ",r=abc,x=1", ""},  // extensions after the nonce are ignored
      {"n,,m=x," + u + ",r=abc", "unsupported mandatory extension"},
      {"n,,n=ali" + nul + "ce,r=abc", "malformed user name"},
      {"n,,n=alice=2,r=abc", "malformed user name"},
      {"n,,n=alice=2X,r=abc", "malformed user name"},
      {"n,a=," + u + ",r=abc", "malformed authzid"},
      {"n,x=bob," + u + ",r=abc", "malformed authzid"},
      {"n,a=bob@example.org," + u + ",r=abc", "authorization identity differs from the user"},
      {"p=tls-exporter,," + u + ",r=abc", "channel binding requested with a non-PLUS mechanism"},
      {"q,," + u + ",r=abc", "malformed gs2 header"},
      {atLimit, ""},
      {atLimit + "x", "response too long"},
  };
  for (const Case& c : cases) {
    INFO(c.msg.substr(0, 60) << " (" << c.msg.size() << " octets)");
    auto ex = f.start("SCRAM-SHA-256");
    sasl::Step s = ex->begin(std::string_view(c.msg));
    if (c.reason.empty()) {
      CHECK(s.kind == Kind::Challenge);
      continue;
    }
    CHECK(s.kind == Kind::Failure);
    CHECK(s.reason == c.reason);
    CHECK(s.challenge.empty());
    // The exchange is over: nothing more is read.
    sasl::Step again = ex->respond("c=biws,r=abc,p=" + base64Encode(std::string(32, 'x')));
    CHECK(again.kind == Kind::Failure);
    CHECK(again.reason == "unexpected response");
  }
}

TEST_CASE("SCRAM-SHA-256: hostile client-final messages, each with its reason") {
  Fixture f;
  const std::string p32 = base64Encode(std::string(32, '\0'));
  const std::string p16 = base64Encode(std::string(16, '\0'));
  struct Case {
    std::function<std::string(const std::string& r)> msg;  // r: the full nonce
    std::string reason;
  };
  const std::vector<Case> cases = {
      {[&](const std::string& r) { return "r=" + r + ",c=biws,p=" + p32; },
       "missing channel binding"},
      {[&](const std::string&) { return "c=biws,p=" + p32; }, "missing channel binding"},
      {[&](const std::string& r) { return "c=!!!!,r=" + r + ",p=" + p32; },
       "malformed channel binding"},
      {[&](const std::string& r) { return "c=biws,r=" + r; }, "missing proof"},
      {[&](const std::string& r) { return "c=biws,r=" + r + ",p=" + p16; }, "malformed proof"},
      {[&](const std::string& r) { return "c=biws,r=" + r + ",p="; }, "malformed proof"},
      {[&](const std::string& r) { return "c=biws,r=" + r + ",p=%%%%"; }, "malformed proof"},
      {[&](const std::string& r) { return "c=biws,r=" + r + ",x,p=" + p32; },
       "malformed extension"},
      {[&](const std::string& r) { return "c=biws,r=" + r.substr(0, 24) + ",p=" + p32; },
       "nonce mismatch"},  // the client's part only
      {[&](const std::string& r) { return "c=biws,r=" + r + "x,p=" + p32; }, "nonce mismatch"},
      {[&](const std::string&) { return "c=biws,r=,p=" + p32; }, "malformed nonce"},
      {[&](const std::string& r) { return "c=" + base64Encode("y,,") + ",r=" + r + ",p=" + p32; },
       "channel binding mismatch"},
      {[&](const std::string& r) { return "c=biws,r=" + r + ",p=" + p32; }, "invalid proof"},
      {[&](const std::string& r) { return "c=biws,r=" + r + ",p=" + p32 + ",p=" + p32; },
       "invalid proof"},  // the last p= is the proof; the first is an extension
      {[&](const std::string& r) {
         return "c=biws,r=" + r + ",e=" + std::string(sasl::kMaxResponse, 'e') + ",p=" + p32;
       },
       "response too long"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    auto ex = f.start("SCRAM-SHA-256");
    ScramClient cl{"alice@example.org", "secret", "n,,", ""};
    sasl::Step s = ex->begin(cl.first());
    REQUIRE(s.kind == Kind::Challenge);
    const std::string r = splitAny(s.challenge, ",")[0].substr(2);
    REQUIRE(r.size() > cl.nonce.size());
    const std::string msg = cases[i].msg(r);
    INFO("case " << i << ": " << msg.substr(0, 80));
    s = ex->respond(msg);
    CHECK(s.kind == Kind::Failure);
    CHECK(s.reason == cases[i].reason);
    CHECK(s.user == "alice@example.org");
    CHECK(s.serverFinal.empty());
    CHECK(s.authenticated.empty());
  }
}
