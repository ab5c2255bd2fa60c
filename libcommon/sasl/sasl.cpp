// SASL server exchanges; see sasl.hpp.
// Trust: untrusted, pre-authentication input; secrets are wiped after use.
#include "sasl/sasl.hpp"

#include <sodium.h>

#include "auth/directory.hpp"
#include "auth/scram.hpp"
#include "base/strings.hpp"

namespace yubin::sasl {
namespace {

constexpr size_t kMaxField = 255;  // RFC 4616 §2: authzid, authcid, passwd

void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

Step failure(std::string reason, std::string user = {}) {
  Step s;
  s.kind = Step::Kind::Failure;
  s.reason = std::move(reason);
  s.user = std::move(user);
  return s;
}

Step challenge(std::string bytes) {
  Step s;
  s.kind = Step::Kind::Challenge;
  s.challenge = std::move(bytes);
  return s;
}

Step checkPassword(const std::string& user, const std::string& password) {
  Step s;
  s.kind = Step::Kind::CheckPassword;
  s.user = user;
  s.password = password;
  return s;
}

// The canonical address of a user who just proved their password.
std::string canonical(auth::Directory& dir, const std::string& user) {
  auto u = dir.findUser(user);
  return u ? u->address : user;
}

// Shared by PLAIN and LOGIN: the one outstanding password check.
class PasswordExchange : public Exchange {
 public:
  explicit PasswordExchange(auth::Directory& dir) : dir_(dir) {}
  ~PasswordExchange() override { wipe(password_); }

  Step passwordChecked(bool ok) override {
    if (!checking_) return failure("password result without a check", user_);
    checking_ = false;
    done_ = true;
    wipe(password_);
    if (!ok) return failure("authentication failed", user_);
    Step s;
    s.kind = Step::Kind::Success;
    s.user = user_;
    s.authenticated = canonical(dir_, user_);
    return s;
  }

 protected:
  Step askCheck() {
    checking_ = true;
    return checkPassword(user_, password_);
  }

  auth::Directory& dir_;
  std::string user_;
  std::string password_;
  bool checking_ = false;
  bool done_ = false;
};

// RFC 4616: message = [authzid] NUL authcid NUL passwd
class Plain final : public PasswordExchange {
 public:
  using PasswordExchange::PasswordExchange;
  std::string_view name() const override { return "PLAIN"; }

  Step begin(std::optional<std::string_view> initial) override {
    if (started_) return failure("begin called twice");
    started_ = true;
    if (!initial) return challenge("");
    return parse(*initial);
  }

  Step respond(std::string_view response) override {
    if (!started_ || answered_ || done_ || checking_) return failure("unexpected response");
    return parse(response);
  }

 private:
  Step parse(std::string_view msg) {
    answered_ = true;
    if (msg.size() > kMaxResponse) return failure("response too long");
    size_t n1 = msg.find('\0');
    if (n1 == std::string_view::npos) return failure("PLAIN message without NUL separators");
    size_t n2 = msg.find('\0', n1 + 1);
    if (n2 == std::string_view::npos) return failure("PLAIN message with one NUL separator");
    std::string_view authzid = msg.substr(0, n1);
    std::string_view authcid = msg.substr(n1 + 1, n2 - n1 - 1);
    std::string_view passwd = msg.substr(n2 + 1);
    if (passwd.find('\0') != std::string_view::npos)
      return failure("PLAIN message with extra NUL", std::string(authcid));
    if (authcid.empty()) return failure("PLAIN message without user name");
    if (authzid.size() > kMaxField || authcid.size() > kMaxField || passwd.size() > kMaxField)
      return failure("PLAIN field too long");
    if (passwd.empty()) return failure("empty password", std::string(authcid));
    if (!authzid.empty() && authzid != authcid)
      return failure("authorization identity differs from the user", std::string(authcid));
    user_ = std::string(authcid);
    password_ = std::string(passwd);
    return askCheck();
  }

  bool started_ = false;
  bool answered_ = false;
};

// LOGIN: "Username:" then "Password:" challenges, each answered in clear
// (base64 on the wire); an initial response is the user name.
class Login final : public PasswordExchange {
 public:
  using PasswordExchange::PasswordExchange;
  std::string_view name() const override { return "LOGIN"; }

  Step begin(std::optional<std::string_view> initial) override {
    if (phase_ != Phase::Start) return failure("begin called twice");
    if (!initial) {
      phase_ = Phase::User;
      return challenge("Username:");
    }
    phase_ = Phase::User;
    return respond(*initial);
  }

  Step respond(std::string_view response) override {
    if (response.size() > kMaxField) {
      phase_ = Phase::Done;
      return failure("response too long", user_);
    }
    if (response.find('\0') != std::string_view::npos) {
      phase_ = Phase::Done;
      return failure("NUL in LOGIN response", user_);
    }
    switch (phase_) {
      case Phase::User:
        if (response.empty()) {
          phase_ = Phase::Done;
          return failure("empty user name");
        }
        user_ = std::string(response);
        phase_ = Phase::Password;
        return challenge("Password:");
      case Phase::Password:
        phase_ = Phase::Done;
        if (response.empty()) return failure("empty password", user_);
        password_ = std::string(response);
        return askCheck();
      case Phase::Start:
      case Phase::Done:
        break;
    }
    phase_ = Phase::Done;
    return failure("unexpected response", user_);
  }

 private:
  enum class Phase : uint8_t { Start, User, Password, Done };
  Phase phase_ = Phase::Start;
};

// RFC 5802 / RFC 7677, and -PLUS with tls-exporter (RFC 9266).
class Scram final : public Exchange {
 public:
  Scram(auth::Directory& dir, bool plus, std::string exporter)
      : dir_(dir), plus_(plus), exporter_(std::move(exporter)) {}
  ~Scram() override {
    wipe(keys_.storedKey);
    wipe(keys_.serverKey);
  }
  std::string_view name() const override { return plus_ ? "SCRAM-SHA-256-PLUS" : "SCRAM-SHA-256"; }

  Step begin(std::optional<std::string_view> initial) override {
    if (phase_ != Phase::Start) return failure("begin called twice");
    phase_ = Phase::ClientFirst;
    // RFC 5802 §5: the client sends first; without an initial response the
    // server sends an empty challenge.
    if (!initial) return challenge("");
    return respond(*initial);
  }

  Step respond(std::string_view response) override {
    if (response.size() > kMaxResponse) {
      phase_ = Phase::Done;
      return failure("response too long", first_.username);
    }
    switch (phase_) {
      case Phase::ClientFirst:
        phase_ = Phase::Done;
        return clientFirst(response);
      case Phase::ClientFinal:
        phase_ = Phase::Done;
        return clientFinal(response);
      case Phase::Start:
      case Phase::Done:
        break;
    }
    phase_ = Phase::Done;
    return failure("unexpected response", first_.username);
  }

  Step passwordChecked(bool) override { return failure("SCRAM has no password check"); }

 private:
  enum class Phase : uint8_t { Start, ClientFirst, ClientFinal, Done };

  Step clientFirst(std::string_view msg) {
    // gs2-cbind-flag: "p=" cb-name / "n" / "y" (RFC 5802 §7). The auth
    // parser refuses "p=": the header is checked here and the rest parsed
    // behind a stand-in "n".
    size_t comma = msg.find(',');
    if (comma == std::string_view::npos) return failure("malformed client-first message");
    std::string_view flag = msg.substr(0, comma);
    std::string cbindInput;  // what c= must carry, before base64
    if (flag.substr(0, 2) == "p=") {
      if (!plus_) return failure("channel binding requested with a non-PLUS mechanism");
      if (flag != "p=tls-exporter") return failure("unsupported channel binding type");
      std::string standIn = "n" + std::string(msg.substr(comma));
      auto parsed = auth::parseScramClientFirst(standIn);
      if (!parsed) return failure(parsed.error().message);
      first_ = std::move(*parsed);
      first_.cbindFlag = 'p';
      first_.gs2Header = std::string(flag) + first_.gs2Header.substr(1);
      cbindInput = first_.gs2Header + exporter_;
    } else {
      auto parsed = auth::parseScramClientFirst(msg);
      if (!parsed) return failure(parsed.error().message);
      first_ = std::move(*parsed);
      if (plus_) return failure("PLUS mechanism without channel binding", first_.username);
      // 'y': the client could bind but thinks we cannot. If we advertise
      // -PLUS, that is a downgrade (RFC 5802 §6).
      if (first_.cbindFlag == 'y' && !exporter_.empty())
        return failure("channel binding downgrade ('y' while -PLUS is offered)", first_.username);
      cbindInput = first_.gs2Header;
    }
    if (!first_.authzid.empty() && first_.authzid != first_.username)
      return failure("authorization identity differs from the user", first_.username);
    expectedCbind_ = std::move(cbindInput);
    auto lookup = dir_.scramKeys(first_.username);
    keys_ = std::move(lookup.keys);
    real_ = lookup.real;
    serverFirst_ = auth::scramServerFirst(first_, auth::scramServerNonce(), keys_);
    phase_ = Phase::ClientFinal;
    return challenge(serverFirst_);
  }

  Step clientFinal(std::string_view msg) {
    auto final = auth::parseScramClientFinal(msg);
    if (!final) return failure(final.error().message, first_.username);
    // scramServerFinal compares c= with first.gs2Header: give it the full
    // channel binding input (header plus exporter data for -PLUS).
    auth::ScramClientFirst expect = first_;
    expect.gs2Header = expectedCbind_;
    auto sf = auth::scramServerFinal(keys_, expect, serverFirst_, *final);
    if (!sf) return failure(sf.error().message, first_.username);
    if (!real_) return failure("unknown user or no SCRAM keys", first_.username);
    Step s;
    s.kind = Step::Kind::Success;
    s.user = first_.username;
    s.authenticated = canonical(dir_, first_.username);
    s.serverFinal = std::move(*sf);
    return s;
  }

  auth::Directory& dir_;
  bool plus_;
  std::string exporter_;
  Phase phase_ = Phase::Start;
  auth::ScramClientFirst first_;
  std::string expectedCbind_;
  std::string serverFirst_;
  auth::ScramKeys keys_;
  bool real_ = false;
};

}  // namespace

std::vector<std::string> mechanisms(const Options& o) {
  std::vector<std::string> m = {"PLAIN", "LOGIN", "SCRAM-SHA-256"};
  if (!o.tlsExporter.empty()) m.emplace_back("SCRAM-SHA-256-PLUS");
  return m;
}

Result<std::unique_ptr<Exchange>> Exchange::start(std::string_view mechanism, auth::Directory& dir,
                                                  const Options& o) {
  if (iequals(mechanism, "PLAIN")) return std::unique_ptr<Exchange>(new Plain(dir));
  if (iequals(mechanism, "LOGIN")) return std::unique_ptr<Exchange>(new Login(dir));
  if (iequals(mechanism, "SCRAM-SHA-256"))
    return std::unique_ptr<Exchange>(new Scram(dir, false, o.tlsExporter));
  if (iequals(mechanism, "SCRAM-SHA-256-PLUS")) {
    if (o.tlsExporter.empty()) return Error{"SCRAM-SHA-256-PLUS needs TLS channel binding"};
    return std::unique_ptr<Exchange>(new Scram(dir, true, o.tlsExporter));
  }
  return Error{"unsupported mechanism"};
}

}  // namespace yubin::sasl
