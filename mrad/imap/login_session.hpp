// The IMAP not-authenticated state (RFC 3501 / RFC 9051 §3.1): greeting,
// CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE (with SASL-IR and
// "*" to cancel), ID; ENABLE and the authenticated / selected state
// commands are refused. A pure state machine like pop3::LoginSession: fed
// bytes, it queues responses and, when it needs the outside world, stops and
// names one Event for the glue (start TLS, check a password, hand the session
// to the mail process, close); the glue answers with the matching call and
// the session goes on with the input it already holds.
// It never opens a mailbox: on a successful LOGIN / AUTHENTICATE it stops
// with LoggedIn, and the mail process sends the tagged OK (with the
// post-login capabilities) through imap::MailSession::start(loginTag(), ...).
// Trust: parses untrusted pre-authentication input (imap::Parser with small
// limits: no APPEND literal or large string is ever buffered here); runs in
// the login process as [mrad] user. Passwords pass through password() to the
// checker and are wiped afterwards, never logged or echoed.
// Standards: RFC 3501, RFC 9051 (§6.1, §6.2, STARTTLS §6.2.1 with the
// pipelining rule of RFC 2595 §3.1: input after STARTTLS is discarded),
// RFC 4959 (SASL-IR), RFC 2971 (ID), RFC 5530 (AUTHENTICATIONFAILED,
// PRIVACYREQUIRED, UNAVAILABLE), RFC 7888 (LITERAL+).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "imap/parser.hpp"
#include "mrad/pop3/login_session.hpp"  // the SASL step vocabulary, shared with POP3

namespace yubin::mrad::imap {

using pop3::SaslExchange;
using pop3::SaslFactory;
using pop3::SaslStep;

// Limits before login: LOGIN's strings and AUTHENTICATE's lines are short;
// an APPEND literal is refused unread.
yubin::imap::ParserSettings loginParserSettings();

struct LoginSettings {
  std::string greeting = "Yubin IMAP server ready";
  bool tlsAvailable = false;      // STARTTLS may be offered (a certificate exists)
  bool tlsActive = false;         // the connection is already encrypted
  bool plaintextAllowed = false;  // LOGIN / AUTHENTICATE without TLS (trusted loopback)
  std::vector<std::string> mechanisms;  // SASL mechanisms to advertise (AUTH=...)
  yubin::imap::ParserSettings parser = loginParserSettings();
  unsigned maxBadCommands = 10;
};

class LoginSession {
 public:
  enum class Event {
    None,           // keep feeding
    StartTls,       // flush output, start TLS, then tlsStarted()
    CheckPassword,  // check user()/password() off the loop, then passwordChecked()
    AuthFailed,     // the tagged NO is queued; count it (throttle, log), then resume()
    LoggedIn,       // hand authenticated(), loginTag() and takePendingInput() over
    Close,          // flush output, then close
  };

  LoginSession(LoginSettings s, SaslFactory sasl = {});
  // Queues the greeting ("* OK [CAPABILITY ...] ...").
  void start();
  // Takes bytes from the client and runs the commands that can run now.
  void feed(std::string_view bytes);
  std::string takeOutput();
  bool hasOutput() const { return !out_.empty(); }
  Event event() const { return event_; }
  // The mechanisms to advertise changed (TLS came up: channel binding data
  // is known only after the handshake).
  void setMechanisms(std::vector<std::string> m) { settings_.mechanisms = std::move(m); }
  // The capability list as CAPABILITY shows it now (without "CAPABILITY").
  std::string capabilities() const;

  // CheckPassword: what to check (for AUTHENTICATE, the mechanism's authcid).
  const std::string& user() const { return checkUser_; }
  const std::string& password() const { return checkPassword_; }
  // The check's answer; canonical is the user's address when ok (LOGIN).
  void passwordChecked(bool ok, const std::string& canonical = {});
  // The glue refuses the attempt itself (lockout, busy checker, hand-over
  // failure): "<tag> NO [code] text", "* BYE", then Close.
  void refuse(std::string_view code, std::string_view text);
  // AuthFailed: go on with the next command.
  void resume();
  // AuthFailed: the name the client tried (may be empty).
  const std::string& failedUser() const { return checkUser_; }
  // StartTls: the handshake is done; input read before it was discarded.
  void tlsStarted();

  // LoggedIn: the canonical address, the tag of the LOGIN / AUTHENTICATE
  // command (the mail process answers it), and the bytes that followed the
  // command (pipelined commands for the mail process).
  const std::string& authenticated() const { return authenticated_; }
  const std::string& loginTag() const { return tag_; }
  std::string takePendingInput();
  // "login" or the SASL mechanism in lower case, for the log.
  const std::string& method() const { return method_; }

  size_t badCommands() const { return bad_; }

 private:
  enum class State { Idle, SaslWait, SaslFinal, Blocked };
  void run();
  void handle(yubin::imap::Command& c);
  void handleSaslLine(std::string& line);
  void applyStep(SaslStep step);
  void authFailed();
  void bad(std::string_view tag, std::string_view text, std::string_view code = {});
  void endSasl();
  bool loginAllowed() const { return settings_.tlsActive || settings_.plaintextAllowed; }

  LoginSettings settings_;
  SaslFactory saslFactory_;
  std::unique_ptr<yubin::imap::Parser> parser_;
  // The bytes fed and not yet consumed by the parser (its last buffered()
  // octets): what follows the login command goes to the mail process.
  std::string raw_;
  std::string out_;
  Event event_ = Event::None;
  State state_ = State::Idle;
  std::string tag_;  // of the command waiting for an answer (LOGIN, AUTHENTICATE)
  std::string checkUser_;
  std::string checkPassword_;
  std::string authenticated_;
  std::string method_;
  std::unique_ptr<SaslExchange> sasl_;
  unsigned bad_ = 0;
};

}  // namespace yubin::mrad::imap
