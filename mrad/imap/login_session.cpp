// The IMAP not-authenticated state; see login_session.hpp.
#include "mrad/imap/login_session.hpp"

#include <sodium.h>

#include <utility>

#include "base/strings.hpp"
#include "imap/response.hpp"

namespace yubin::mrad::imap {
namespace {

using yubin::imap::Cond;
using yubin::imap::tagged;
using yubin::imap::untagged;
using yubin::imap::untaggedData;

void wipe(std::string& s) {
  if (!s.empty()) sodium_memzero(s.data(), s.size());
  s.clear();
}

}  // namespace

yubin::imap::ParserSettings loginParserSettings() {
  yubin::imap::ParserSettings p;
  p.maxLine = 8 * 1024;  // a SCRAM message of sasl::kMaxResponse octets in base64 fits
  p.maxCommand = 16 * 1024;
  p.maxLiteral = 8 * 1024;
  p.maxMessage = 4 * 1024;  // APPEND is refused before login anyway
  p.maxDepth = 8;
  p.maxItems = 100;
  p.multiAppend = false;
  return p;
}

LoginSession::LoginSession(LoginSettings s, SaslFactory sasl)
    : settings_(std::move(s)),
      saslFactory_(std::move(sasl)),
      parser_(std::make_unique<yubin::imap::Parser>(settings_.parser)) {}

std::string LoginSession::capabilities() const {
  std::string caps = "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE LITERAL+";
  if (settings_.tlsAvailable && !settings_.tlsActive) caps += " STARTTLS";
  if (loginAllowed()) {
    for (const auto& m : settings_.mechanisms) caps += " AUTH=" + m;
  } else {
    caps += " LOGINDISABLED";
  }
  return caps;
}

void LoginSession::start() {
  out_ += untagged(Cond::Ok, "CAPABILITY " + capabilities(), settings_.greeting);
}

std::string LoginSession::takeOutput() { return std::exchange(out_, std::string()); }

std::string LoginSession::takePendingInput() {
  std::string p = std::move(raw_);
  raw_.clear();
  parser_ = std::make_unique<yubin::imap::Parser>(settings_.parser);
  return p;
}

void LoginSession::feed(std::string_view bytes) {
  // Between "OK Begin TLS" and the handshake nothing may be kept: the bytes
  // could be a man in the middle's (CVE-2011-0411 class).
  if (event_ == Event::StartTls || event_ == Event::Close) return;
  parser_->feed(bytes);
  raw_.append(bytes);
  run();
}

void LoginSession::run() {
  while (event_ == Event::None && state_ != State::Blocked) {
    yubin::imap::Event e = parser_->next();
    // Keep exactly the octets the parser has not consumed.
    if (raw_.size() > parser_->buffered()) raw_.erase(0, raw_.size() - parser_->buffered());
    if (std::holds_alternative<yubin::imap::NeedMore>(e)) return;
    if (auto* c = std::get_if<yubin::imap::ContinueRequest>(&e)) {
      (void)c;
      out_ += yubin::imap::continuation("Ready for literal");
      continue;
    }
    if (auto* line = std::get_if<yubin::imap::RawLine>(&e)) {
      if (state_ == State::SaslWait || state_ == State::SaslFinal) handleSaslLine(line->text);
      wipe(line->text);
      continue;
    }
    if (auto* err = std::get_if<yubin::imap::ParseError>(&e)) {
      if (state_ == State::SaslWait || state_ == State::SaslFinal) {
        // An over-long AUTHENTICATE response line.
        std::string tag = tag_;
        endSasl();
        bad(tag, "Authentication response too long, cancelled");
        continue;
      }
      const bool no = err->tooBig && err->command == "APPEND";
      if (no) {
        out_ += tagged(err->tag, Cond::No, "TOOBIG", err->text);
        ++bad_;
      } else {
        bad(err->tag, err->text, err->tooBig ? "TOOBIG" : "");
      }
      if (err->closeAdvised && event_ != Event::Close) {
        out_ += untagged(Cond::Bye, "", "Closing connection");
        event_ = Event::Close;
        state_ = State::Blocked;
      }
      continue;
    }
    auto& cmd = std::get<yubin::imap::Command>(e);
    handle(cmd);
    if (auto* l = std::get_if<yubin::imap::LoginArgs>(&cmd.args)) wipe(l->password);
  }
}

void LoginSession::bad(std::string_view tag, std::string_view text, std::string_view code) {
  ++bad_;
  out_ += tagged(tag, Cond::Bad, code, text);
  if (bad_ >= settings_.maxBadCommands && event_ != Event::Close) {
    out_ += untagged(Cond::Bye, "", "Too many bad commands, closing connection");
    event_ = Event::Close;
    state_ = State::Blocked;
  }
}

void LoginSession::endSasl() {
  sasl_.reset();
  parser_->setLineMode(false);
  state_ = State::Idle;
}

void LoginSession::handle(yubin::imap::Command& c) {
  using K = yubin::imap::CommandKind;
  const std::string& tag = c.tag;
  switch (c.kind) {
    case K::Capability:
      out_ += untaggedData("CAPABILITY " + capabilities());
      out_ += tagged(tag, Cond::Ok, "", "CAPABILITY completed");
      return;
    case K::Noop:
      out_ += tagged(tag, Cond::Ok, "", "NOOP completed");
      return;
    case K::Logout:
      out_ += untagged(Cond::Bye, "", "Logging out");
      out_ += tagged(tag, Cond::Ok, "", "LOGOUT completed");
      event_ = Event::Close;
      state_ = State::Blocked;
      return;
    case K::StartTls:
      if (settings_.tlsActive) return bad(tag, "TLS is already active");
      if (!settings_.tlsAvailable) return bad(tag, "STARTTLS is not available");
      out_ += tagged(tag, Cond::Ok, "", "Begin TLS negotiation now");
      // Never keep plaintext input across the handshake.
      parser_ = std::make_unique<yubin::imap::Parser>(settings_.parser);
      raw_.clear();
      state_ = State::Idle;
      event_ = Event::StartTls;
      return;
    case K::Id: {
      // RFC 2971: the server answers with its own identification; what the
      // client sent is not kept.
      std::string data = "ID (";
      yubin::imap::appendString(data, "name");
      data += ' ';
      yubin::imap::appendString(data, "Yubin");
      data += ')';
      out_ += untaggedData(data);
      out_ += tagged(tag, Cond::Ok, "", "ID completed");
      return;
    }
    case K::Login: {
      auto& a = std::get<yubin::imap::LoginArgs>(c.args);
      if (!loginAllowed()) {
        ++bad_;
        out_ += tagged(tag, Cond::No, "PRIVACYREQUIRED",
                       "LOGIN is disabled without TLS (use STARTTLS)");
        return;
      }
      tag_ = tag;
      checkUser_ = a.user;
      checkPassword_ = std::move(a.password);
      wipe(a.password);
      method_ = "login";
      state_ = State::Blocked;
      event_ = Event::CheckPassword;
      return;
    }
    case K::Authenticate: {
      auto& a = std::get<yubin::imap::AuthenticateArgs>(c.args);
      if (!loginAllowed()) {
        ++bad_;
        out_ += tagged(tag, Cond::No, "PRIVACYREQUIRED",
                       "Authentication is disabled without TLS (use STARTTLS)");
        return;
      }
      bool offered = false;
      for (const auto& m : settings_.mechanisms) offered = offered || iequals(m, a.mechanism);
      if (offered && saslFactory_) sasl_ = saslFactory_(a.mechanism);
      if (!sasl_) {
        ++bad_;
        out_ += tagged(tag, Cond::No, "", "Unsupported authentication mechanism");
        return;
      }
      tag_ = tag;
      method_ = toLower(a.mechanism);
      std::optional<std::string> ir;
      if (a.initialResponse) {
        ir = a.initialResponse->empty() ? std::string() : base64Decode(*a.initialResponse);
        if (!ir) {
          sasl_.reset();
          return bad(tag, "Invalid base64 data in the initial response");
        }
      }
      checkUser_.clear();
      applyStep(sasl_->begin(ir ? std::optional<std::string_view>(*ir) : std::nullopt));
      if (ir) wipe(*ir);
      if (a.initialResponse) wipe(*a.initialResponse);
      return;
    }
    case K::Enable:
      return bad(tag, "ENABLE is only valid after login");
    default:
      return bad(tag, c.name + " is not valid before login");
  }
}

void LoginSession::handleSaslLine(std::string& line) {
  if (line == "*") {
    std::string tag = tag_;
    endSasl();
    out_ += tagged(tag, Cond::Bad, "", "Authentication cancelled");
    return;
  }
  if (state_ == State::SaslFinal) {
    parser_->setLineMode(false);
    sasl_.reset();
    if (!line.empty()) {
      // RFC 9051 §6.2.2: the answer to the server's final data is empty.
      state_ = State::Idle;
      out_ += tagged(tag_, Cond::No, "AUTHENTICATIONFAILED", "Authentication failed");
      event_ = Event::AuthFailed;
      return;
    }
    state_ = State::Blocked;
    event_ = Event::LoggedIn;
    return;
  }
  auto decoded = base64Decode(line);
  if (!decoded) {
    std::string tag = tag_;
    endSasl();
    bad(tag, "Invalid base64 data, authentication cancelled");
    return;
  }
  applyStep(sasl_->respond(*decoded));
  wipe(*decoded);
}

void LoginSession::applyStep(SaslStep step) {
  switch (step.kind) {
    case SaslStep::Kind::Challenge:
      out_ += yubin::imap::continuationBase64(base64Encode(step.challenge));
      parser_->setLineMode(true);
      state_ = State::SaslWait;
      break;
    case SaslStep::Kind::CheckPassword:
      checkUser_ = std::move(step.user);
      checkPassword_ = std::move(step.password);
      parser_->setLineMode(false);
      state_ = State::Blocked;
      event_ = Event::CheckPassword;
      break;
    case SaslStep::Kind::Success:
      authenticated_ = std::move(step.authenticated);
      if (!step.serverFinal.empty()) {
        out_ += yubin::imap::continuationBase64(base64Encode(step.serverFinal));
        parser_->setLineMode(true);
        state_ = State::SaslFinal;
      } else {
        endSasl();
        state_ = State::Blocked;
        event_ = Event::LoggedIn;
      }
      break;
    case SaslStep::Kind::Failure:
      checkUser_ = std::move(step.user);
      endSasl();
      authFailed();
      break;
  }
  wipe(step.password);
}

void LoginSession::authFailed() {
  state_ = State::Idle;
  out_ += tagged(tag_, Cond::No, "AUTHENTICATIONFAILED", "Authentication failed");
  event_ = Event::AuthFailed;
}

void LoginSession::passwordChecked(bool good, const std::string& canonical) {
  if (event_ != Event::CheckPassword) return;
  wipe(checkPassword_);
  event_ = Event::None;
  if (sasl_) {
    state_ = State::Idle;
    applyStep(sasl_->passwordChecked(good));
  } else if (good) {
    authenticated_ = canonical;
    state_ = State::Blocked;
    event_ = Event::LoggedIn;
  } else {
    authFailed();
  }
  if (event_ == Event::None) run();
}

void LoginSession::resume() {
  if (event_ != Event::AuthFailed) return;
  event_ = Event::None;
  run();
}

void LoginSession::refuse(std::string_view code, std::string_view text) {
  wipe(checkPassword_);
  sasl_.reset();
  // A LOGIN / AUTHENTICATE still waiting for its answer gets it here (after
  // AuthFailed its NO is already queued).
  if (!tag_.empty() && (event_ == Event::CheckPassword || event_ == Event::LoggedIn))
    out_ += tagged(tag_, Cond::No, code, text);
  out_ += untagged(Cond::Bye, "", text);
  state_ = State::Blocked;
  event_ = Event::Close;
}

void LoginSession::tlsStarted() {
  if (event_ != Event::StartTls) return;
  settings_.tlsActive = true;
  event_ = Event::None;
  run();
}

}  // namespace yubin::mrad::imap
