// mtad's SMTP client protocol: a pure state machine that is fed the server's
// reply bytes and produces the commands to write, with no socket, timer or
// file of its own (the glue, smtp_connection.hpp, owns those). One
// SmtpClient is one connection: greeting, EHLO (HELO when EHLO is refused),
// STARTTLS, AUTH, then any number of transactions, then QUIT.
//
// Every reply goes through the strict smtp::ReplyParser: a reply that
// breaks the grammar (CVE-2020-8794 class: a continuation line with
// another code, a bare LF, an overlong line) fails the connection with a
// local 4xx reply; it never shifts the pairing of replies and commands.
// Replies are paired with commands by count, and a reply that no command
// asked for fails the connection too. When the server's "220" to STARTTLS
// arrives, every byte received after it in clear is discarded (a reply
// injected before the handshake must never be read as a protected one).
//
// Trust: the server is any host on the Internet: untrusted. Runs in mtad
// as yubin-mta.
//
// Standards: RFC 5321 (§3.1 greeting, §4.1.1.1 EHLO/HELO, §4.2 replies,
// §4.5.3.2 timeouts, §3.8 QUIT), RFC 2920 (PIPELINING: MAIL, the RCPTs and
// DATA in one group), RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 6531
// (SMTPUTF8), RFC 3461 (DSN: NOTIFY, ORCPT, RET, ENVID), RFC 3207
// (STARTTLS), RFC 4954 (AUTH) with RFC 4616 (PLAIN) and LOGIN.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "queue/format.hpp"
#include "smtp/client_reply.hpp"

namespace yubin::mtad {

struct SmtpRecipient {
  std::string address;  // forward-path without brackets
  uint8_t notify = 0;   // queue::kNotify* bits; 0 = none given
  std::string orcptType;
  std::string orcpt;  // xtext-decoded; empty = no ORCPT
};

// One message as the client sends it.
struct SmtpMessage {
  std::string sender;  // reverse-path without brackets; empty for <>
  std::vector<SmtpRecipient> recipients;
  queue::Body body = queue::Body::Unspecified;
  bool smtputf8 = false;
  queue::Ret ret = queue::Ret::Unspecified;
  std::string envid;  // xtext-decoded
  uint64_t size = 0;  // message bytes (for SIZE=)
};

struct SmtpCredentials {
  std::string user;
  std::string password;
};

struct SmtpClientSettings {
  std::string helo = "localhost";
  // STARTTLS when the server offers it.
  bool startTls = true;
  // A connection that does not reach TLS fails (policy encrypt / verify).
  bool requireTls = false;
  // The connection is TLS from the start (a relay on port 465): no STARTTLS.
  bool implicitTls = false;
  // AUTH after TLS (never in clear). PLAIN when offered, else LOGIN.
  std::optional<SmtpCredentials> auth;
  smtp::ReplyLimits limits;
  // RFC 5321 §4.5.3.2.
  std::chrono::milliseconds greetingTimeout{std::chrono::minutes(5)};
  std::chrono::milliseconds commandTimeout{std::chrono::minutes(5)};  // EHLO, MAIL, RCPT...
  std::chrono::milliseconds dataTimeout{std::chrono::minutes(2)};     // the 354
  std::chrono::milliseconds blockTimeout{std::chrono::minutes(3)};    // progress of the content
  std::chrono::milliseconds finalTimeout{std::chrono::minutes(10)};   // reply to the dot
};

// What the server said it can do (EHLO keywords).
struct SmtpExtensions {
  bool esmtp = false;  // EHLO worked
  bool pipelining = false;
  bool eightBitMime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool startTls = false;
  bool authPlain = false;
  bool authLogin = false;
  bool chunking = false;
  std::optional<uint64_t> size;  // SIZE n; 0 = no fixed limit
};

// The connection failed before it was ready for a transaction.
struct SetupFailure {
  smtp::ClientReply reply;  // the server's, or a local 4xx
  bool tls = false;         // the failure is about TLS (handshake, policy)
};

struct TransactionResult {
  // One per recipient of the message, in order: the RCPT reply of a
  // refused recipient, else the reply to the final dot, else what went
  // wrong (a local 4xx when there was no reply).
  std::vector<smtp::ClientReply> replies;
  // The server offered DSN: NOTIFY/ORCPT went along, so success reports
  // are its job; without it a NOTIFY=SUCCESS recipient gets a "relayed"
  // report from us.
  bool dsnPassed = false;
  // The connection had carried an earlier transaction and broke before any
  // reply of this one: nothing was delivered, retry on a new connection.
  bool retryable = false;
};

class SmtpClient {
 public:
  enum class State : uint8_t {
    Greeting,      // waiting for 220
    Ehlo,          // EHLO sent
    Helo,          // EHLO refused, HELO sent
    StartTls,      // STARTTLS sent
    TlsHandshake,  // 220 to STARTTLS: the glue runs the handshake, then tlsStarted()
    Auth,          // AUTH sent (PLAIN, or a step of LOGIN)
    Ready,         // idle: send() may start a transaction
    Envelope,      // RSET/MAIL/RCPT/DATA replies due
    Content,       // 354 received: the glue streams the content, then contentSent()
    Final,         // waiting for the reply to the final dot
    Quit,          // QUIT sent
    Closed,        // done or failed: the glue closes the socket
  };
  static const char* stateName(State s);

  explicit SmtpClient(SmtpClientSettings settings);

  // Bytes from the server. Replies are acted upon at once.
  void feed(std::string_view bytes);
  // The TLS handshake after STARTTLS (or of an implicit-TLS connection)
  // completed: EHLO again (RFC 3207 §4.2: forget what was said in clear).
  void tlsStarted();
  // Starts a transaction. Requires state() == Ready. When the server cannot
  // take the message (SIZE, 8BITMIME, SMTPUTF8) the result is ready at once
  // with permanent failures and nothing is sent.
  void send(const SmtpMessage& message);
  // The glue wrote the whole content and the final dot.
  void contentSent();
  // Polite end: QUIT when idle.
  void quit();
  // The transport failed (EOF, error, timeout, failed handshake): the
  // connection is over; a running transaction gets `why` for every
  // recipient without a reply, else it becomes the setup failure.
  void connectionLost(const smtp::ClientReply& why, bool tls = false);

  State state() const { return state_; }
  // Bytes to write to the server (cleared by the call).
  std::string takeOutput();
  // The result of the transaction that ended, once.
  std::optional<TransactionResult> takeResult();
  // Why the connection never became ready (set when Closed before Ready).
  const std::optional<SetupFailure>& setupFailure() const { return setupFailure_; }
  // How long the current state may wait for the server.
  std::chrono::milliseconds timeout() const;
  const SmtpExtensions& extensions() const { return ext_; }
  bool tls() const { return tls_; }
  bool authenticated() const { return authenticated_; }
  // Bytes received in clear after the 220 to STARTTLS and thrown away.
  size_t discardedAfterStartTls() const { return discarded_; }
  // Transactions finished on this connection.
  uint64_t transactions() const { return transactions_; }
  // The greeting's first line, for logs.
  const std::string& banner() const { return banner_; }

 private:
  void reply(const smtp::ClientReply& r);
  void onEhlo(const smtp::ClientReply& r);
  void afterHello();
  void startAuth();
  void onAuth(const smtp::ClientReply& r);
  void onEnvelope(const smtp::ClientReply& r);
  void sendNextStep();
  void failSetup(const smtp::ClientReply& why, bool tls);
  void endTransaction();
  void failTransaction(const smtp::ClientReply& why, bool close);
  void protocolError(const std::string& what);
  void setState(State s);

  SmtpClientSettings settings_;
  smtp::ReplyParser parser_;
  State state_ = State::Greeting;
  std::string out_;
  SmtpExtensions ext_;
  bool tls_ = false;
  bool authenticated_ = false;
  int authStep_ = 0;
  bool authLogin_ = false;
  size_t discarded_ = 0;
  uint64_t transactions_ = 0;
  bool dirty_ = false;  // the last transaction ended early: RSET first
  std::string banner_;
  std::optional<SetupFailure> setupFailure_;

  // The transaction. Commands sent and not yet answered, in order.
  enum class Cmd : uint8_t { Rset, Mail, Rcpt, Data };
  std::vector<Cmd> due_;
  size_t dueHead_ = 0;
  SmtpMessage msg_;
  std::vector<std::string> rcptLines_;
  size_t rcptSent_ = 0;   // RCPT commands written
  size_t rcptReply_ = 0;  // RCPT replies received
  std::vector<bool> answered_;
  size_t accepted_ = 0;
  bool dataSent_ = false;
  bool mailOk_ = false;
  bool gotReply_ = false;
  bool discardData_ = false;  // 354 with no accepted recipient: send just the dot
  std::optional<smtp::ClientReply> mailFailure_;
  TransactionResult result_;
  std::optional<TransactionResult> done_;
};

// The MAIL FROM and RCPT TO command lines (without CRLF) for a message,
// with the parameters the server's extensions allow. Exposed for tests.
std::string mailCommand(const SmtpMessage& m, const SmtpExtensions& ext);
std::string rcptCommand(const SmtpRecipient& r, const SmtpExtensions& ext);

// A reason the server cannot take this message at all ("" when it can),
// as a permanent reply: SIZE over the limit (552 5.3.4), 8-bit content to
// a server without 8BITMIME (554 5.6.3), SMTPUTF8 without SMTPUTF8
// (553 5.6.7), BINARYMIME (this client has no BDAT: 554 5.6.3).
std::optional<smtp::ClientReply> refusal(const SmtpMessage& m, const SmtpExtensions& ext);

}  // namespace yubin::mtad
