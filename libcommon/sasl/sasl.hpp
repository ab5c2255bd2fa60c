// SASL server exchanges shared by msad (SMTP AUTH, RFC 4954) and mrad (POP3
// AUTH, IMAP AUTHENTICATE): PLAIN, LOGIN, SCRAM-SHA-256 and
// SCRAM-SHA-256-PLUS with tls-exporter channel binding. An Exchange is a
// pure state machine over raw (already base64-decoded) client messages; the
// protocol glue does the base64, the line limits, the replies, the logging
// and the slow password check (PasswordChecker, password_checker.hpp).
//
// Trust: every input is untrusted network data (pre-authentication). Never
// logs or returns a password except in Step::password, which only goes to
// the password check. Unknown users cost the same as wrong passwords:
// PLAIN/LOGIN through PasswordChecker's dummy hash, SCRAM through
// Directory::scramKeys' fake-but-stable keys.
//
// Standards: RFC 4422 (SASL), RFC 4616 (PLAIN), draft-murchison-sasl-login
// (LOGIN), RFC 5802 + RFC 7677 (SCRAM-SHA-256), RFC 5056 / RFC 9266
// (channel binding, tls-exporter).
// Not done: SASLprep of user names and passwords (see auth/scram.hpp).
//
// Use, in the glue:
//   auto ex = sasl::Exchange::start(mech, directory, options);   // error: 504
//   Step s = ex->begin(initialResponse);                          // or nullopt
//   loop:
//     Challenge     -> send it (334 / "+"), read a line, s = ex->respond(decoded)
//     CheckPassword -> [throttle delay] checker.check(s.user, s.password, cb);
//                      cb(ok): s = ex->passwordChecked(ok)
//     Success       -> if s.serverFinal is not empty, send it as one more
//                      challenge and expect an empty response (RFC 4954 §4);
//                      then 235 / OK. The user is s.authenticated.
//     Failure       -> 535 / NO; log s.reason with the client IP and s.user.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::auth {
class Directory;
}

namespace yubin::sasl {

// Longest raw client message accepted by any mechanism (a PLAIN response
// is three fields of at most 255 octets, RFC 4616 §2; SCRAM messages are
// short): longer input fails the exchange.
inline constexpr size_t kMaxResponse = 4096;

struct Options {
  // The connection is encrypted. Only informative here: whether PLAIN and
  // LOGIN may run without TLS is the protocol's decision.
  bool tls = false;
  // RFC 9266 channel binding data (tls::channelBindingExporter), empty
  // without TLS or when the exporter is unavailable: no -PLUS then.
  std::string tlsExporter;
};

// The mechanisms to advertise: "PLAIN", "LOGIN", "SCRAM-SHA-256", then
// "SCRAM-SHA-256-PLUS" when o.tlsExporter is set.
std::vector<std::string> mechanisms(const Options& o);

struct Step {
  enum class Kind : uint8_t { Challenge, CheckPassword, Success, Failure };
  Kind kind = Kind::Failure;
  std::string challenge;      // Challenge: raw bytes (the protocol base64-encodes)
  std::string user;           // CheckPassword, Success, and Failure once known: the authcid
  std::string password;       // CheckPassword only: check it OFF the event loop
  std::string authenticated;  // Success: the user's canonical address
  std::string serverFinal;    // Success of SCRAM: server-final-message (raw) to send
  std::string reason;         // Failure: for the log, never a secret
};

class Exchange {
 public:
  // `mechanism` is case-insensitive; an unknown one (or -PLUS without
  // o.tlsExporter) is an error: reply 504 5.5.4. The Directory must outlive
  // the Exchange.
  static Result<std::unique_ptr<Exchange>> start(std::string_view mechanism, auth::Directory& dir,
                                                 const Options& o);
  virtual ~Exchange() = default;
  Exchange(const Exchange&) = delete;
  Exchange& operator=(const Exchange&) = delete;

  // The first step: `initialResponse` is the SASL initial response when the
  // client sent one ("=" in SMTP is an empty one), nullopt otherwise.
  virtual Step begin(std::optional<std::string_view> initialResponse) = 0;
  // The client's answer to the last Challenge.
  virtual Step respond(std::string_view response) = 0;
  // The result of the CheckPassword step.
  virtual Step passwordChecked(bool ok) = 0;
  // Canonical mechanism name ("SCRAM-SHA-256").
  virtual std::string_view name() const = 0;

 protected:
  Exchange() = default;
};

}  // namespace yubin::sasl
