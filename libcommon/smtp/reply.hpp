// The catalogue of every SMTP/LMTP reply the engine and its glue send: reply
// code, enhanced status code and text in one table (reply.cpp), rendered by
// one function. Handlers pick a ReplyId; they never write reply strings.
//
// Trust: renders text that may carry a host name or queue ID chosen by the
// glue; control characters are replaced so a reply can never be split.
//
// Standards: RFC 5321 §4.2 (reply codes, multi-line replies), RFC 2034 and
// RFC 3463 (enhanced status codes: on every 2xx/4xx/5xx reply except the
// greeting and the HELO/EHLO/LHLO reply, as RFC 2034 §3 says), RFC 5248.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace yubin::smtp {

// One reply. `enhanced` is "x.y.z" or empty (greeting, HELO/EHLO, 3xx).
// `text` may hold several lines separated by '\n': rendered as a
// multi-line reply.
struct Reply {
  int code = 0;
  std::string enhanced;
  std::string text;

  bool positive() const { return code >= 200 && code < 400; }
  bool operator==(const Reply&) const = default;
};

enum class ReplyId {
  // Connection.
  GreetingSmtp,    // 220 <host> ESMTP
  GreetingLmtp,    // 220 <host> LMTP
  Closing,         // 221 2.0.0
  Timeout,         // 421 4.4.2
  TooManyErrors,   // 421 4.7.0
  ShuttingDown,    // 421 4.3.2
  NonSmtpCommand,  // 421 4.7.0 (an HTTP request on the SMTP port)
  // Positive.
  HeloOk,           // 250 <host>
  Ok,               // 250 2.0.0
  SenderOk,         // 250 2.1.0
  RecipientOk,      // 250 2.1.5
  StartData,        // 354
  ChunkOk,          // 250 2.0.0 <n> octets received
  CannotVrfy,       // 252 2.5.0
  Help,             // 214 2.0.0
  ReadyToStartTls,  // 220 2.0.0
  // Command syntax and sequence.
  UnknownCommand,         // 500 5.5.2
  LineTooLong,            // 500 5.5.2
  BadCharacter,           // 500 5.5.2
  UseLhlo,                // 500 5.5.1 (EHLO/HELO in LMTP)
  NotLmtp,                // 500 5.5.1 (LHLO in SMTP)
  NotImplemented,         // 502 5.5.1
  TlsNotAvailable,        // 502 5.5.1
  NeedHelo,               // 503 5.5.1
  NeedLhlo,               // 503 5.5.1
  NeedEhlo,               // 503 5.5.1 (STARTTLS before EHLO)
  NestedMail,             // 503 5.5.1
  NeedMail,               // 503 5.5.1
  NeedRcpt,               // 503 5.5.1 (LMTP DATA without recipients)
  BdatInProgress,         // 503 5.5.1
  BinaryNeedsBdat,        // 503 5.5.1
  TlsAlreadyActive,       // 503 5.5.1
  TransactionInProgress,  // 503 5.5.1
  SyntaxHelo,             // 501 5.5.4
  SyntaxMail,             // 501 5.5.4
  SyntaxRcpt,             // 501 5.5.4
  SyntaxBdat,             // 501 5.5.4
  SyntaxVrfy,             // 501 5.5.4
  NoArguments,            // 501 5.5.4
  BadParameter,           // 501 5.5.4
  UnknownParameter,       // 555 5.5.4
  BadSender,              // 501 5.1.7
  BadRecipient,           // 501 5.1.3
  NonAsciiAddress,        // 553 5.6.7
  TlsRequired,            // 530 5.7.0
  // Transaction limits.
  NoValidRecipients,  // 554 5.5.1
  TooManyRecipients,  // 452 4.5.3
  MessageTooBig,      // 552 5.3.4
  BareLineEnding,     // 550 5.6.0
  // For the glue: end-of-data and policy answers.
  Queued,                // 250 2.0.0 queued as <id>
  Delivered,             // 250 2.0.0 (LMTP, per recipient)
  LocalError,            // 451 4.3.0
  InsufficientStorage,   // 452 4.3.1
  MailboxFull,           // 552 5.2.2
  MailboxFullTemporary,  // 452 4.2.2
  UserUnknown,           // 550 5.1.1
  RelayDenied,           // 554 5.7.1
  SenderRejected,        // 550 5.7.1
  RecipientRejected,     // 550 5.7.1
  RoutingRejected,       // 550 5.7.1 ('%', '!' or quoted '@' in the local part)
  TooManyConnections,    // 421 4.7.0 (at the greeting: server full)
  TooManyFromAddress,    // 421 4.7.0 (at the greeting: per-client limit)
  // Submission: SMTP AUTH (RFC 4954) and the submission policy (RFC 6409).
  AuthChallenge,         // 334 <base64>
  AuthOk,                // 235 2.7.0
  AuthFailed,            // 535 5.7.8
  AuthNeedsTls,          // 538 5.7.11 (AUTH before TLS)
  AuthRequired,          // 530 5.7.0 (MAIL before AUTH)
  AuthNotAvailable,      // 503 5.5.1 (no mechanism offered)
  AlreadyAuthenticated,  // 503 5.5.1
  AuthCancelled,         // 501 5.0.0 ('*')
  AuthBadBase64,         // 501 5.5.2
  AuthUnknownMechanism,  // 504 5.5.4
  SyntaxAuth,            // 501 5.5.4
  AuthLineTooLong,       // 500 5.5.6
  AuthTemporary,         // 454 4.7.0
  AuthTooManyFailures,   // 421 4.7.0 (throttled: the connection closes)
  SenderNotOwned,        // 553 5.7.1
  RateLimited,           // 450 4.7.1
  TemporaryFailure,      // 451 4.7.1 (policy could not decide now); keep last
};

// The catalogue entry, with "{}" in its text replaced by `arg` (a host
// name, a count, a queue ID). Entries without "{}" ignore `arg`. With an
// empty `arg` the placeholder goes with the ": " or " " that joins it.
Reply reply(ReplyId id, std::string_view arg = {});

// The reply to EHLO or LHLO: "<host>" then one capability per line, no
// enhanced code (RFC 2034 §3).
Reply capabilityReply(std::string_view host, const std::vector<std::string>& capabilities);

// Wire form: "ddd-..." continuation lines then "ddd ...", each with the
// enhanced code when it has one, each ending in CRLF. Aborts on a code
// outside 200-599 or an enhanced code whose class differs from the code's
// first digit: those are bugs, not input.
std::string render(const Reply& r);

}  // namespace yubin::smtp
