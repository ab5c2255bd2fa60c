// The POP3 AUTHORIZATION state; see login_session.hpp.
#include "mrad/pop3/login_session.hpp"

#include <sodium.h>

#include <utility>

#include "base/strings.hpp"

namespace yubin::mrad::pop3 {
namespace {

const char* const kTransactionVerbs[] = {"STAT", "LIST", "RETR", "DELE", "NOOP",
                                         "RSET", "TOP",  "UIDL"};

void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

}  // namespace

LoginSession::LoginSession(LoginSettings s, SaslFactory sasl)
    : settings_(std::move(s)), saslFactory_(std::move(sasl)), lines_(settings_.limits.maxLine) {}

void LoginSession::start() { out_ += ok(settings_.greeting); }

std::string LoginSession::takeOutput() { return std::exchange(out_, std::string()); }

void LoginSession::feed(std::string_view bytes) {
  // Between "+OK Begin TLS" and the handshake nothing may be kept: the
  // bytes could be a man in the middle's.
  if (event_ == Event::StartTls) return;
  lines_.feed(bytes);
  run();
}

void LoginSession::run() {
  std::string line;
  while (event_ == Event::None && state_ != State::Blocked) {
    auto kind = lines_.next(&line);
    if (kind == LineReader::Kind::None) return;
    if (kind == LineReader::Kind::TooLong) {
      if (state_ == State::SaslWait || state_ == State::SaslFinal) {
        sasl_.reset();
        state_ = State::Idle;
      }
      bad(err("Line too long"));
      continue;
    }
    if (state_ == State::SaslWait || state_ == State::SaslFinal) {
      handleSaslLine(line);
      wipe(line);
    } else {
      Command c = parseCommand(line);
      wipe(line);
      handle(c);
      wipe(c.rest);
      for (auto& a : c.args) wipe(a);
    }
  }
}

void LoginSession::bad(const std::string& reply) {
  ++bad_;
  if (bad_ >= settings_.limits.maxBadCommands) {
    out_ += err("Too many bad commands, closing connection");
    event_ = Event::Close;
    state_ = State::Blocked;
    return;
  }
  out_ += reply;
}

std::string LoginSession::capabilities() const {
  std::string caps = "TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n";
  if (loginAllowed()) {
    caps += "USER\r\n";
    if (!settings_.mechanisms.empty()) {
      caps += "SASL";
      for (const auto& m : settings_.mechanisms) caps += " " + m;
      caps += "\r\n";
    }
  }
  if (settings_.tlsAvailable && !settings_.tlsActive) caps += "STLS\r\n";
  caps += "IMPLEMENTATION Yubin\r\n";
  return caps;
}

void LoginSession::handle(const Command& c) {
  const std::string& v = c.verb;
  if (v == "CAPA") {
    if (!c.args.empty()) return bad(err("CAPA takes no argument"));
    out_ += ok("Capability list follows") + capabilities() + ".\r\n";
  } else if (v == "QUIT") {
    out_ += ok("Bye");
    event_ = Event::Close;
    state_ = State::Blocked;
  } else if (v == "STLS") {
    if (!c.args.empty()) return bad(err("STLS takes no argument"));
    if (settings_.tlsActive) return bad(err("Already using TLS"));
    if (!settings_.tlsAvailable) return bad(err("TLS is not available"));
    out_ += ok("Begin TLS negotiation");
    (void)lines_.takeRest();  // never keep plaintext input across the handshake
    user_.clear();
    state_ = State::Idle;
    event_ = Event::StartTls;
  } else if (v == "USER") {
    if (c.args.size() != 1 || c.args[0].empty()) return bad(err("Usage: USER name"));
    if (!loginAllowed())
      return bad(errCode(kAuth, "Plaintext authentication is not allowed without TLS (use STLS)"));
    user_ = c.args[0];
    state_ = State::HaveUser;
    out_ += ok("Send your password");
  } else if (v == "PASS") {
    if (state_ != State::HaveUser) return bad(err("USER first"));
    if (c.rest.empty()) return bad(err("Usage: PASS password"));
    checkUser_ = user_;
    checkPassword_ = c.rest;
    method_ = "USER";
    state_ = State::Blocked;
    event_ = Event::CheckPassword;
  } else if (v == "AUTH") {
    if (c.args.empty() && c.rest.empty()) {
      out_ += ok("Mechanisms follow");
      if (loginAllowed())
        for (const auto& m : settings_.mechanisms) out_ += m + "\r\n";
      out_ += ".\r\n";
      return;
    }
    if (c.args.size() > 2 || c.args[0].empty()) return bad(err("Usage: AUTH mechanism [initial-response]"));
    if (!loginAllowed())
      return bad(errCode(kAuth, "Authentication is not allowed without TLS (use STLS)"));
    bool offered = false;
    for (const auto& m : settings_.mechanisms) offered = offered || iequals(m, c.args[0]);
    if (offered && saslFactory_) sasl_ = saslFactory_(c.args[0]);
    if (!sasl_) return bad(err("Unsupported authentication mechanism"));
    method_ = toLower(c.args[0]);
    std::optional<std::string> ir;
    if (c.args.size() == 2) {
      if (c.args[1] == "=") {
        ir = std::string();
      } else {
        ir = base64Decode(c.args[1]);
        if (!ir) {
          sasl_.reset();
          return bad(err("Invalid base64 data"));
        }
      }
    }
    user_.clear();
    applyStep(sasl_->begin(ir ? std::optional<std::string_view>(*ir) : std::nullopt));
    if (ir) wipe(*ir);
  } else if (v == "APOP") {
    bad(err("APOP is not supported"));
  } else if (v.empty()) {
    bad(err("Empty command"));
  } else {
    for (const char* t : kTransactionVerbs)
      if (v == t) return bad(err("Not logged in"));
    bad(err("Unknown command"));
  }
}

void LoginSession::handleSaslLine(const std::string& line) {
  if (line == "*") {
    sasl_.reset();
    state_ = State::Idle;
    out_ += err("Authentication cancelled");
    return;
  }
  if (state_ == State::SaslFinal) {
    state_ = State::Blocked;
    if (!line.empty()) {
      // RFC 5034 §4: the answer to the server's final data is empty.
      sasl_.reset();
      state_ = State::Idle;
      out_ += errCode(kAuth, "Authentication failed");
      event_ = Event::AuthFailed;
      return;
    }
    sasl_.reset();
    event_ = Event::LoggedIn;
    return;
  }
  auto decoded = base64Decode(line);
  if (!decoded) {
    sasl_.reset();
    state_ = State::Idle;
    bad(err("Invalid base64 data, authentication cancelled"));
    return;
  }
  applyStep(sasl_->respond(*decoded));
  wipe(*decoded);
}

void LoginSession::applyStep(SaslStep step) {
  switch (step.kind) {
    case SaslStep::Kind::Challenge:
      out_ += "+ " + base64Encode(step.challenge) + "\r\n";
      state_ = State::SaslWait;
      break;
    case SaslStep::Kind::CheckPassword:
      checkUser_ = std::move(step.user);
      checkPassword_ = std::move(step.password);
      state_ = State::Blocked;
      event_ = Event::CheckPassword;
      break;
    case SaslStep::Kind::Success:
      authenticated_ = std::move(step.authenticated);
      if (!step.serverFinal.empty()) {
        out_ += "+ " + base64Encode(step.serverFinal) + "\r\n";
        state_ = State::SaslFinal;
      } else {
        sasl_.reset();
        state_ = State::Blocked;
        event_ = Event::LoggedIn;
      }
      break;
    case SaslStep::Kind::Failure:
      checkUser_ = std::move(step.user);
      sasl_.reset();
      state_ = State::Idle;
      out_ += errCode(kAuth, "Authentication failed");
      event_ = Event::AuthFailed;
      break;
  }
  wipe(step.password);
}

void LoginSession::passwordChecked(bool good, const std::string& canonical) {
  if (event_ != Event::CheckPassword) return;
  wipe(checkPassword_);
  event_ = Event::None;
  if (sasl_) {
    applyStep(sasl_->passwordChecked(good));
  } else if (good) {
    authenticated_ = canonical;
    state_ = State::Blocked;
    event_ = Event::LoggedIn;
  } else {
    user_.clear();
    state_ = State::Idle;
    out_ += errCode(kAuth, "Authentication failed");
    event_ = Event::AuthFailed;
  }
  if (event_ == Event::None) run();
}

void LoginSession::resume() {
  if (event_ != Event::AuthFailed) return;
  event_ = Event::None;
  run();
}

void LoginSession::refuse(const std::string& reply) {
  wipe(checkPassword_);
  sasl_.reset();
  out_ += reply;
  state_ = State::Blocked;
  event_ = Event::Close;
}

void LoginSession::tlsStarted() {
  if (event_ != Event::StartTls) return;
  settings_.tlsActive = true;
  event_ = Event::None;
  run();
}

}  // namespace yubin::mrad::pop3
