// Unit tests for the SCRAM-SHA-256 primitives: the RFC 7677 §3 test vector,
// the stored-keys field, message parsing (good, bad, hostile) and the whole
// server check.
#include "auth/scram.hpp"

#include <catch2/catch.hpp>
#include <random>

#include "base/strings.hpp"

using namespace yubin;
using namespace yubin::auth;

namespace {

// RFC 7677 §3.
const std::string kClientFirst = "n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
const std::string kServerNonce = "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
const std::string kServerFirst =
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
const std::string kClientFinal =
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
    "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
const std::string kServerFinal = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

ScramKeys vectorKeys() {
  auto salt = base64Decode("W22ZaJ0SNY7soEsUEjb6gQ==");
  REQUIRE(salt);
  auto k = scramDeriveKeys("pencil", *salt, 4096);
  REQUIRE(k.ok());
  return *k;
}

}  // namespace

TEST_CASE("RFC 7677 test vector: the server accepts the proof and signs") {
  ScramKeys keys = vectorKeys();
  auto first = parseScramClientFirst(kClientFirst);
  REQUIRE(first.ok());
  CHECK(first->username == "user");
  CHECK(first->authzid.empty());
  CHECK(first->clientNonce == "rOprNGfwEbeRWgbNEkqO");
  CHECK(first->gs2Header == "n,,");
  CHECK(first->bare == "n=user,r=rOprNGfwEbeRWgbNEkqO");

  std::string serverFirst = scramServerFirst(*first, kServerNonce, keys);
  CHECK(serverFirst == kServerFirst);

  auto fin = parseScramClientFinal(kClientFinal);
  REQUIRE(fin.ok());
  CHECK(fin->channelBinding == "n,,");
  CHECK(fin->withoutProof == "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");

  auto serverFinal = scramServerFinal(keys, *first, serverFirst, *fin);
  REQUIRE(serverFinal.ok());
  CHECK(*serverFinal == kServerFinal);

  // The pure primitives agree with the whole check.
  std::string auth = scramAuthMessage(first->bare, serverFirst, fin->withoutProof);
  CHECK(scramVerifyProof(keys, auth, fin->proof));
  CHECK("v=" + base64Encode(scramServerSignature(keys, auth)) == kServerFinal);
  auto proof = scramClientProof("pencil", keys.salt, 4096, auth);
  REQUIRE(proof.ok());
  CHECK(*proof == fin->proof);
}

TEST_CASE("a wrong password, a changed nonce or a changed channel binding is refused") {
  ScramKeys keys = vectorKeys();
  auto first = parseScramClientFirst(kClientFirst);
  REQUIRE(first.ok());
  auto wrong = scramDeriveKeys("pencil2", keys.salt, 4096);
  REQUIRE(wrong.ok());
  auto fin = parseScramClientFinal(kClientFinal);
  REQUIRE(fin.ok());
  auto r = scramServerFinal(*wrong, *first, kServerFirst, *fin);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "invalid proof");

  auto otherNonce = parseScramClientFinal(
      "c=biws,r=rOprNGfwEbeRWgbNEkqOXXX,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  REQUIRE(otherNonce.ok());
  r = scramServerFinal(keys, *first, kServerFirst, *otherNonce);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "nonce mismatch");

  auto otherCb = parseScramClientFinal(
      "c=eSws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,"
      "p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=");
  REQUIRE(otherCb.ok());
  r = scramServerFinal(keys, *first, kServerFirst, *otherCb);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "channel binding mismatch");

  // A flipped proof bit.
  std::string proof = fin->proof;
  proof[5] = static_cast<char>(proof[5] ^ 1);
  CHECK_FALSE(scramVerifyProof(keys, scramAuthMessage(first->bare, kServerFirst, fin->withoutProof),
                               proof));
  CHECK_FALSE(scramVerifyProof(keys, "x", "short"));
}

TEST_CASE("a fresh exchange with random salt and nonce round-trips") {
  auto keys = scramNewKeys("correct horse");
  REQUIRE(keys.ok());
  CHECK(keys->iterations == kScramDefaultIterations);
  CHECK(keys->salt.size() == 16);
  auto first = parseScramClientFirst("y,a=admin,n=bob=2Cx=3Dy,r=abc,e=1");
  REQUIRE(first.ok());
  CHECK(first->cbindFlag == 'y');
  CHECK(first->authzid == "admin");
  CHECK(first->username == "bob,x=y");
  std::string sn = scramServerNonce();
  CHECK(sn.size() == 24);
  CHECK(sn.find(',') == std::string::npos);
  CHECK(sn != scramServerNonce());
  std::string serverFirst = scramServerFirst(*first, sn, *keys);
  std::string without = "c=" + base64Encode(first->gs2Header) + ",r=abc" + sn;
  auto proof = scramClientProof("correct horse", keys->salt, keys->iterations,
                                scramAuthMessage(first->bare, serverFirst, without));
  REQUIRE(proof.ok());
  auto fin = parseScramClientFinal(without + ",p=" + base64Encode(*proof));
  REQUIRE(fin.ok());
  CHECK(scramServerFinal(*keys, *first, serverFirst, *fin).ok());
}

TEST_CASE("the users-file SCRAM field round-trips and bad fields are refused") {
  ScramKeys keys = vectorKeys();
  std::string field = formatScramField(keys);
  CHECK(field.find(':') == std::string::npos);
  CHECK(field.substr(0, 30) == "4096,W22ZaJ0SNY7soEsUEjb6gQ==,");
  auto back = parseScramField(field);
  REQUIRE(back.ok());
  CHECK(back->iterations == 4096);
  CHECK(back->salt == keys.salt);
  CHECK(back->storedKey == keys.storedKey);
  CHECK(back->serverKey == keys.serverKey);

  std::string key = base64Encode(std::string(32, 'k'));
  auto [text, error] = GENERATE_COPY(table<std::string, std::string>({
      {"", "SCRAM field must be iterations,salt,storedkey,serverkey"},
      {"4096,c2FsdA==," + key, "SCRAM field must be iterations,salt,storedkey,serverkey"},
      {"4095,c2FsdA==," + key + "," + key, "SCRAM iteration count must be 4096 to 10000000"},
      {"x,c2FsdA==," + key + "," + key, "SCRAM iteration count must be 4096 to 10000000"},
      {"99999999999,c2FsdA==," + key + "," + key, "SCRAM iteration count must be 4096 to 10000000"},
      {"4096,," + key + "," + key, "SCRAM salt is not valid base64"},
      {"4096,c2Fsd!==," + key + "," + key, "SCRAM salt is not valid base64"},
      {"4096,c2FsdA==,c2FsdA==," + key, "SCRAM stored key is not 32 bytes of base64"},
      {"4096,c2FsdA==," + key + ",", "SCRAM server key is not 32 bytes of base64"},
      {"4096,c2FsdA==," + key + "," + key + ",x",
       "SCRAM field must be iterations,salt,storedkey,serverkey"},
  }));
  CAPTURE(text);
  auto r = parseScramField(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == error);
}

TEST_CASE("malformed client-first messages are refused") {
  auto [text, error] = GENERATE(table<std::string, std::string>({
      {"", "malformed client-first message"},
      {"n", "malformed client-first message"},
      {"n,", "malformed gs2 header"},
      {"x,,n=user,r=abc", "malformed gs2 header"},
      {"p=tls-unique,,n=user,r=abc", "channel binding is not supported"},
      {"n,b=x,n=user,r=abc", "malformed authzid"},
      {"n,a=,n=user,r=abc", "malformed authzid"},
      {"n,,m=ext,n=user,r=abc", "unsupported mandatory extension"},
      {"n,,r=abc", "missing user name"},
      {"n,,n=,r=abc", "malformed user name"},
      {"n,,n=us=er,r=abc", "malformed user name"},
      {"n,,n=us=2,r=abc", "malformed user name"},
      {"n,,n=user", "missing nonce"},
      {"n,,n=user,x=abc", "missing nonce"},
      {"n,,n=user,r=", "malformed nonce"},
      {"n,,n=user,r=a b", "malformed nonce"},
      {"n,,n=user,r=abc,bogus", "malformed extension"},
      {std::string("n,,n=us\0er,r=abc", 16), "malformed user name"},
  }));
  CAPTURE(text);
  auto r = parseScramClientFirst(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == error);
}

TEST_CASE("malformed client-final messages are refused") {
  std::string p = ",p=" + base64Encode(std::string(32, 'p'));
  auto [text, error] = GENERATE_COPY(table<std::string, std::string>({
      {"", "missing proof"},
      {"c=biws,r=abc", "missing proof"},
      {"c=biws,r=abc,p=", "malformed proof"},
      {"c=biws,r=abc,p=c2hvcnQ=", "malformed proof"},
      {"r=abc" + p, "missing channel binding"},
      {"c=biws" + p, "missing channel binding"},
      {"c=!!,r=abc" + p, "malformed channel binding"},
      {"c=biws,x=abc" + p, "missing nonce"},
      {"c=biws,r=" + p, "malformed nonce"},
      {"c=biws,r=abc,zz" + p, "malformed extension"},
  }));
  CAPTURE(text);
  auto r = parseScramClientFinal(text);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == error);
}

TEST_CASE("random bytes never crash the message parsers") {
  std::mt19937 rng(7677);
  const std::string alphabet = std::string("nypacrm=,2CD3biws+/") + '\0' + "\xff";
  for (int i = 0; i < 5000; ++i) {
    std::string s(rng() % 40, ' ');
    for (char& c : s) c = alphabet[rng() % alphabet.size()];
    auto a = parseScramClientFirst(s);
    auto b = parseScramClientFinal(s);
    auto c = parseScramField(s);
    if (a.ok()) CHECK(a->bare.size() <= s.size());
    if (b.ok()) CHECK(b->proof.size() == kScramKeySize);
    CHECK_FALSE(c.ok());
  }
}
