// libFuzzer target for the SASL server exchanges (sasl.hpp): PLAIN, LOGIN,
// SCRAM-SHA-256 and SCRAM-SHA-256-PLUS fed client messages, with the SCRAM
// client-first and client-final parsers (auth/scram.hpp) behind them, over
// a real Directory with one user.
//
// Input: byte 0 picks the mechanism (low 3 bits) and the flags; the rest is
// the client messages, one per '\n'-separated piece (so a message itself
// never holds a LF; the parsers see every other octet). With the "assist"
// flag the harness plays an honest SCRAM client for the fields a fuzzer
// cannot guess: in the client-final message "r=@" becomes the server's
// nonce, "c=@" the right channel binding and "p=@" the right proof, so the
// success path runs with the rest of the message still fuzzed.
//
// Checked, besides memory safety: every step is well formed (a Failure has
// a reason, a CheckPassword a user and a password within RFC 4616's limits);
// PLAIN and LOGIN succeed only after passwordChecked(true); SCRAM succeeds
// only for the real user with a proof the harness computed, and then its
// server-final is the right ServerSignature; after a Success or Failure
// every further call fails.
// Trust: test code.
#include <sodium.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/directory.hpp"
#include "auth/password.hpp"
#include "auth/scram.hpp"
#include "base/fs.hpp"
#include "base/strings.hpp"
#include "config/config.hpp"
#include "sasl/sasl.hpp"

using namespace yubin;
using Kind = sasl::Step::Kind;

namespace {

// The one user: SCRAM keys built from a known ClientKey, so the harness
// computes proofs without PBKDF2 (StoredKey = H(ClientKey)).
struct World {
  std::string dir;
  std::string clientKey = std::string(32, '\x5a');
  auth::ScramKeys keys;
  std::unique_ptr<auth::Directory> directory;
  std::string exporter = std::string(32, '\x42');

  World() {
    if (sodium_init() < 0) abort();
    char tmpl[] = "/tmp/yubin-sasl-fuzz-XXXXXX";
    if (!mkdtemp(tmpl)) abort();
    dir = tmpl;
    keys.iterations = auth::kScramMinIterations;
    keys.salt = "fuzz-salt-16byte";
    keys.storedKey.resize(crypto_hash_sha256_BYTES);
    crypto_hash_sha256(reinterpret_cast<unsigned char*>(keys.storedKey.data()),
                       reinterpret_cast<const unsigned char*>(clientKey.data()), clientKey.size());
    keys.serverKey = std::string(32, '\x33');
    // The password hash is never checked here (the harness answers the
    // CheckPassword step itself), but "*" would lock the account.
    auto hash = auth::hashPassword("secret", auth::PasswordCost::minimum());
    if (!hash) abort();
    std::string users = "alice@example.org:" + *hash + ":" + auth::formatScramField(keys) +
                        "::maildir\n" + "noscram@example.org:" + *hash + ":::maildir\n" +
                        "locked@example.org:*:" + auth::formatScramField(keys) + "::maildir\n";
    if (!atomicWrite(dir + "/users", users, 0640).ok()) abort();
    if (!atomicWrite(dir + "/aliases", "al@example.org: alice@example.org\n", 0640).ok()) abort();
    auto cfg = config::Config::parse("version = 1\n[global]\ndomains = example.org\nusers_file = " +
                                         dir + "/users\naliases_file = " + dir + "/aliases\n",
                                     "fuzz.conf");
    if (!cfg.ok()) abort();
    directory = std::make_unique<auth::Directory>(auth::DirectorySettings::fromConfig(*cfg));
    if (!directory->reload().ok()) abort();
  }
  ~World() {
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;
};

World& world() {
  static World w;
  return w;
}

std::string hmac(std::string_view key, std::string_view msg) {
  std::string out(crypto_auth_hmacsha256_BYTES, '\0');
  crypto_auth_hmacsha256_state st;
  crypto_auth_hmacsha256_init(&st, reinterpret_cast<const unsigned char*>(key.data()), key.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(msg.data()),
                                msg.size());
  crypto_auth_hmacsha256_final(&st, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

void replaceOnce(std::string& s, std::string_view from, std::string_view to) {
  size_t p = s.find(from);
  if (p != std::string::npos) s.replace(p, from.size(), to);
}

// The assisted client-final: fills in "r=@", "c=@" and "p=@". Returns true
// when the proof was computed here.
bool assist(std::string& msg, std::string_view clientFirst, std::string_view serverFirst,
            bool plus) {
  const World& w = world();
  // The server nonce: serverFirst starts with "r=" and runs to the comma.
  if (serverFirst.substr(0, 2) == "r=") {
    size_t comma = serverFirst.find(',');
    replaceOnce(msg, "r=@", std::string(serverFirst.substr(0, comma)));
  }
  // gs2 header: client-first up to and including its second comma.
  size_t c1 = clientFirst.find(',');
  size_t c2 = c1 == std::string_view::npos ? c1 : clientFirst.find(',', c1 + 1);
  if (c2 != std::string_view::npos) {
    std::string cb(clientFirst.substr(0, c2 + 1));
    if (plus) cb += w.exporter;
    replaceOnce(msg, "c=@", "c=" + base64Encode(cb));
  }
  size_t p = msg.find(",p=@");
  if (p == std::string::npos) return false;
  // AuthMessage = client-first-bare "," server-first "," without-proof.
  std::string_view bare = c2 == std::string_view::npos ? clientFirst : clientFirst.substr(c2 + 1);
  std::string authMessage =
      std::string(bare) + "," + std::string(serverFirst) + "," + msg.substr(0, p);
  std::string sig = hmac(w.keys.storedKey, authMessage);
  std::string proof = w.clientKey;
  for (size_t i = 0; i < proof.size(); ++i) proof[i] = static_cast<char>(proof[i] ^ sig[i]);
  msg.replace(p, 4, ",p=" + base64Encode(proof));
  return true;
}

void checkStep(const sasl::Step& s) {
  switch (s.kind) {
    case Kind::Failure:
      if (s.reason.empty() || !s.password.empty() || !s.authenticated.empty()) abort();
      break;
    case Kind::CheckPassword:
      if (s.user.empty() || s.password.empty() || s.user.size() > 255 || s.password.size() > 255)
        abort();
      if (s.password.find('\0') != std::string::npos) abort();
      break;
    case Kind::Challenge:
      if (!s.password.empty() || !s.authenticated.empty()) abort();
      break;
    case Kind::Success:
      if (s.authenticated.empty() || !s.password.empty()) abort();
      break;
  }
}

bool terminal(const sasl::Step& s) { return s.kind == Kind::Success || s.kind == Kind::Failure; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  World& w = world();
  const uint8_t flags = data[0];
  static const char* const kMechs[] = {"PLAIN",         "LOGIN", "SCRAM-SHA-256",
                                       "SCRAM-SHA-256-PLUS", "plain", "scram-sha-256-plus",
                                       "CRAM-MD5",      "SCRAM-SHA-256"};
  const std::string_view mech = kMechs[flags & 7];
  const bool withInitial = flags & 8;
  const bool tls = flags & 16;
  const bool checkerSaysYes = flags & 32;
  const bool assisted = flags & 64;

  std::vector<std::string> msgs;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  for (size_t i = 0; i <= in.size();) {
    size_t nl = in.find('\n', i);
    if (nl == std::string_view::npos) nl = in.size();
    msgs.emplace_back(in.substr(i, nl - i));
    i = nl + 1;
  }

  sasl::Options o;
  o.tls = tls;
  if (tls) o.tlsExporter = w.exporter;
  auto started = sasl::Exchange::start(mech, *w.directory, o);
  if (!started) {
    // Only unknown mechanisms and -PLUS without channel binding are refused.
    if (mech != "CRAM-MD5" && tls) abort();
    return 0;
  }
  sasl::Exchange& ex = **started;
  const bool scram = ex.name().substr(0, 5) == "SCRAM";
  const bool plus = ex.name() == "SCRAM-SHA-256-PLUS";

  size_t next = 0;
  std::string clientFirst, serverFirst, lastSent;
  bool proofComputed = false;
  bool passwordOk = false;
  bool checked = false;
  auto send = [&](std::string msg) -> std::string {
    if (scram && serverFirst.empty()) clientFirst = msg;
    if (scram && !serverFirst.empty() && assisted)
      proofComputed = assist(msg, clientFirst, serverFirst, plus);
    lastSent = msg;
    return msg;
  };

  sasl::Step s;
  if (withInitial && next < msgs.size()) {
    std::string m = send(msgs[next++]);
    s = ex.begin(m);
  } else {
    s = ex.begin(std::nullopt);
  }
  checkStep(s);
  for (int guard = 0; !terminal(s) && guard < 16; ++guard) {
    if (s.kind == Kind::Challenge) {
      if (scram && !s.challenge.empty()) serverFirst = s.challenge;
      if (next >= msgs.size()) return 0;  // the client went away mid-exchange
      std::string m = send(msgs[next++]);
      s = ex.respond(m);
    } else if (s.kind == Kind::CheckPassword) {
      if (scram) abort();
      passwordOk = checkerSaysYes || s.password == "secret";
      checked = true;
      s = ex.passwordChecked(passwordOk);
    }
    checkStep(s);
  }
  if (!terminal(s)) abort();  // an exchange is at most four steps long

  if (s.kind == Kind::Success) {
    if (scram) {
      // A forged proof must never pass, nor a user without SCRAM keys.
      if (!proofComputed) abort();
      if (s.authenticated != "alice@example.org") abort();
      std::string_view withoutProof(lastSent);
      withoutProof = withoutProof.substr(0, withoutProof.rfind(",p="));
      size_t c1 = clientFirst.find(',');
      size_t c2 = clientFirst.find(',', c1 + 1);
      std::string authMessage =
          clientFirst.substr(c2 + 1) + "," + serverFirst + "," + std::string(withoutProof);
      if (s.serverFinal != "v=" + base64Encode(hmac(w.keys.serverKey, authMessage))) abort();
    } else {
      if (!checked || !passwordOk || !s.serverFinal.empty()) abort();
    }
  }

  // The exchange is over: whatever comes next fails.
  if (ex.respond(next < msgs.size() ? msgs[next] : "x").kind != Kind::Failure) abort();
  if (ex.passwordChecked(true).kind != Kind::Failure) abort();
  if (ex.begin(std::nullopt).kind != Kind::Failure) abort();
  return 0;
}
