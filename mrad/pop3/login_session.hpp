// The POP3 AUTHORIZATION state (RFC 1939 §4): greeting, CAPA, STLS, USER /
// PASS, AUTH, APOP (refused), QUIT. A pure state machine: fed bytes, it
// queues replies and, when it needs the outside world, stops and names one
// Event for the glue (start TLS, check a password, hand the session over to
// the mail process, close); the glue answers with the matching call and the
// session goes on with the input it already holds.
// It never opens a mailbox: on a successful login it stops with LoggedIn
// and the mail process sends the "+OK" (or "-ERR [IN-USE]") that ends the
// AUTHORIZATION state, then serves the TRANSACTION state (mail_session.hpp).
// Trust: parses untrusted pre-authentication input; runs in the login
// process as [mrad] user. Passwords pass through password() to the checker
// and are never logged or echoed.
// Standards: RFC 1939, RFC 2449 (CAPA, response codes), RFC 2595 (STLS),
// RFC 3206 ([AUTH], [SYS/*]), RFC 5034 (AUTH, "+ " continuations, "*" to
// cancel).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mrad/pop3/pop3.hpp"

namespace yubin::mrad::pop3 {

// One SASL exchange as the session drives it; the glue adapts
// sasl::Exchange (libcommon/sasl) to this, tests script it.
struct SaslStep {
  enum class Kind { Challenge, CheckPassword, Success, Failure };
  Kind kind = Kind::Failure;
  std::string challenge;      // raw; the session base64-encodes it
  std::string user;           // CheckPassword / Failure: the authcid
  std::string password;       // CheckPassword only
  std::string authenticated;  // Success: canonical address
  std::string serverFinal;    // Success: raw data to send as a last "+ " line
  std::string reason;         // Failure: for the log
};
class SaslExchange {
 public:
  virtual ~SaslExchange() = default;
  virtual SaslStep begin(std::optional<std::string_view> initialResponse) = 0;
  virtual SaslStep respond(std::string_view response) = 0;
  virtual SaslStep passwordChecked(bool ok) = 0;
};
// nullptr: no such mechanism.
using SaslFactory = std::function<std::unique_ptr<SaslExchange>(std::string_view mechanism)>;

struct LoginSettings {
  std::string greeting = "Yubin POP3 server ready";
  bool tlsAvailable = false;      // STLS may be offered (a certificate exists)
  bool tlsActive = false;         // the connection is already encrypted
  bool plaintextAllowed = false;  // USER/PASS and AUTH without TLS (trusted loopback)
  std::vector<std::string> mechanisms;  // SASL mechanisms to advertise
  Limits limits;
};

class LoginSession {
 public:
  enum class Event {
    None,           // keep feeding
    StartTls,       // flush output, start TLS, then tlsStarted()
    CheckPassword,  // check user()/password() off the loop, then passwordChecked()
    AuthFailed,     // the -ERR is queued; count it (throttle, log), then resume()
    LoggedIn,       // hand authenticated() and takePendingInput() to the mail process
    Close,          // flush output, then close
  };

  LoginSession(LoginSettings s, SaslFactory sasl = {});
  // Queues the greeting.
  void start();
  // Takes bytes from the client and runs the commands that can run now.
  void feed(std::string_view bytes);
  std::string takeOutput();
  bool hasOutput() const { return !out_.empty(); }
  Event event() const { return event_; }
  // The mechanisms to advertise changed (TLS came up; channel binding data
  // is known only after the handshake).
  void setMechanisms(std::vector<std::string> m) { settings_.mechanisms = std::move(m); }

  // CheckPassword: what to check (for AUTH, the mechanism's authcid).
  const std::string& user() const { return checkUser_; }
  const std::string& password() const { return checkPassword_; }
  // The check's answer; canonical is the user's address when ok (USER/PASS).
  void passwordChecked(bool ok, const std::string& canonical = {});
  // The glue refuses the attempt itself (throttling lockout, lookup error):
  // sends reply and closes.
  void refuse(const std::string& reply);
  // AuthFailed: go on with the next command.
  void resume();
  // AuthFailed: the name the client tried (may be empty).
  const std::string& failedUser() const { return checkUser_; }
  // StartTls: the handshake is done; input read before it was discarded.
  void tlsStarted();

  // LoggedIn: the canonical address, and the bytes that followed the login
  // command (pipelined commands for the mail process).
  const std::string& authenticated() const { return authenticated_; }
  std::string takePendingInput() { return lines_.takeRest(); }
  // The mechanism of the login ("USER" for USER/PASS), for the log.
  const std::string& method() const { return method_; }

  size_t badCommands() const { return bad_; }

 private:
  enum class State { Idle, HaveUser, SaslWait, SaslFinal, Blocked };
  void run();
  void handle(const Command& c);
  void handleSaslLine(const std::string& line);
  void applyStep(SaslStep step);
  void bad(const std::string& reply);
  std::string capabilities() const;
  bool loginAllowed() const { return settings_.tlsActive || settings_.plaintextAllowed; }

  LoginSettings settings_;
  SaslFactory saslFactory_;
  LineReader lines_;
  std::string out_;
  Event event_ = Event::None;
  State state_ = State::Idle;
  std::string user_;  // from USER
  std::string checkUser_;
  std::string checkPassword_;
  std::string authenticated_;
  std::string method_;
  std::unique_ptr<SaslExchange> sasl_;
  unsigned bad_ = 0;
};

}  // namespace yubin::mrad::pop3
