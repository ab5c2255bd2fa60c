// The SMTP / LMTP server protocol engine: a pure state machine. The glue
// (mtad, msad, mdad) feeds it the bytes it reads; the engine answers through
// an Io object (replies to send, message content to store, TLS to start, the
// connection to close) and asks a Policy object about senders and
// recipients. No sockets, no event loop, no clock: the caller owns timers
// (timeoutNow() says which one applies) and calls timeout() when one fires.
//
// Trust: parses untrusted network input; runs inside mtad (as yubin-mta),
// msad and mdad.
//
// Standards: RFC 5321 (SMTP), RFC 2033 (LMTP), RFC 1870 (SIZE), RFC 2920
// (PIPELINING), RFC 3030 (CHUNKING, BINARYMIME), RFC 3207 (STARTTLS),
// RFC 3461 (DSN parameters), RFC 6152 (8BITMIME), RFC 6531 (SMTPUTF8),
// RFC 2034 / RFC 3463 (enhanced status codes), RFC 4954 (AUTH, submission
// mode only), RFC 6409 (submission: MAIL needs AUTH).
//
// Glue contract, in short:
//   Session s(settings, policy, io);  s.greet();
//   on readable:   s.feed(bytes); stop reading while s.buffered() is large
//   on messageEnd: commit, then s.messageDone(reply) (SMTP, submission) or
//                  s.messageDone(replies) (LMTP, one per accepted recipient)
//   on startTls:   handshake, then s.tlsStarted()
//   on timer:      s.timeout();  re-arm with s.timeoutNow() after each feed
//   on EOF/error:  s.peerClosed()
//   on authStart / authResponse (submission): run the SASL step, then call
//                  s.authChallenge(raw), s.authSucceeded(user) or
//                  s.authFailed(reply); the engine reads nothing meanwhile.
//                  authAbort: forget the exchange (no call back expected).
// Callbacks may call back into the Session (messageDone from inside
// messageEnd, tlsStarted from inside startTls) but must not destroy it.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mail/address.hpp"
#include "smtp/data.hpp"
#include "smtp/reply.hpp"

namespace yubin::smtp {

enum class Mode { Smtp, Submission, Lmtp };

struct Settings {
  Mode mode = Mode::Smtp;
  std::string hostname = "localhost";          // in the greeting, HELO/EHLO and 421 replies
  uint64_t maxMessageSize = 35 * 1024 * 1024;  // octets; 0 = no limit
  size_t maxRecipients = 1000;
  size_t maxCommandLine = 2048;  // octets including CRLF (RFC 5321 §4.5.3.1.4: ≥ 512)
  unsigned maxErrors = 10;       // refused commands allowed before 421 4.7.0
  bool normalizeBareLf = false;  // bare CR/LF in content: false = 550 5.6.0, true = CRLF
  bool binaryMime = false;       // advertise BINARYMIME, accept BODY=BINARYMIME (BDAT only)
  bool tlsAvailable = false;     // STARTTLS may be offered (a certificate is loaded)
  bool tlsActive = false;        // implicit TLS: the connection is already encrypted
  bool requireTls = false;       // refuse MAIL/RCPT/DATA/BDAT/VRFY before TLS (530 5.7.0)
  std::chrono::seconds commandTimeout{300};  // RFC 5321 §4.5.3.2.7
  std::chrono::seconds dataTimeout{180};     // RFC 5321 §4.5.3.2.6
  // The slowest message transfer (DATA, or BDAT from the first chunk to
  // the last) the transport tolerates, in octets per second: each read
  // credits its octets / dataMinRate seconds to a deadline that starts
  // dataTimeout ahead and never reaches further (Postfix's
  // smtpd_min_data_rate with smtpd_per_record_deadline). 0 = the data
  // timeout alone, restarted by every read. Used by ServerConnection.
  uint64_t dataMinRate = 500;
  std::string clientAddress;                 // copied into the Envelope, for policy and logs
  std::string logId;                         // session ID for log lines
  // Submission (RFC 4954): AUTH is offered and accepted before TLS too (the
  // loopback exception); otherwise AUTH before TLS gets 538 5.7.11.
  bool authWithoutTls = false;
  // Submission: MAIL (and the rest of a transaction) needs a successful AUTH
  // first, 530 5.7.0 (RFC 6409 §4.3).
  bool requireAuth = true;
};

// RFC 4954 §4: an AUTH command line, or a line of an AUTH exchange, may be
// this long (CRLF included) whatever maxCommandLine says.
inline constexpr size_t kMaxAuthLine = 12288;

struct Recipient {
  mail::Address address;
  std::string raw;        // the forward-path as received, with brackets
  uint8_t notify = 0;     // mail::NotifyBits; 0 = NOTIFY not given
  std::string orcptType;  // ORCPT address type ("rfc822"); empty = not given
  std::string orcpt;      // ORCPT address, xtext-decoded
};

// What is known about the session and the current transaction.
struct Envelope {
  // Session.
  std::string helo;    // HELO/EHLO/LHLO argument; empty before it
  bool esmtp = false;  // EHLO or LHLO (not HELO)
  bool tls = false;
  std::string clientAddress;
  std::string authUser;  // submission: the user AUTH succeeded for; empty before
  // Transaction (cleared by RSET, HELO/EHLO and the end of each message).
  mail::Address from;
  bool nullSender = false;  // MAIL FROM:<>
  std::string fromRaw;      // the reverse-path as received, with brackets
  mail::Body body = mail::Body::Unspecified;
  bool smtputf8 = false;
  std::optional<uint64_t> declaredSize;  // SIZE=
  mail::Ret ret = mail::Ret::Unspecified;
  std::string envid;                  // xtext-decoded
  std::optional<std::string> auth;    // AUTH= as given by the client, xtext-decoded
  std::vector<Recipient> recipients;  // accepted ones, in order
};

// Decides on senders and recipients. nullopt = accept; otherwise a 4xx or
// 5xx reply (use smtp::reply() with a catalogue ID). Refusals count toward
// Settings::maxErrors, except 452 and 552.
class Policy {
 public:
  virtual ~Policy() = default;
  // After HELO/EHLO/LHLO: env.helo and env.esmtp are set.
  virtual std::optional<Reply> checkHelo(const Envelope& env);
  // env holds the MAIL parameters; `from` is empty when env.nullSender.
  virtual std::optional<Reply> checkSender(const Envelope& env, const mail::Address& from) = 0;
  // env.recipients holds the ones already accepted. <Postmaster> comes as an
  // Address with isPostmaster().
  virtual std::optional<Reply> checkRecipient(const Envelope& env, const mail::Address& rcpt) = 0;
};

// What the engine asks of the connection.
class Io {
 public:
  virtual ~Io() = default;
  // Rendered replies, in order; one call per processed batch.
  virtual void send(std::string_view bytes) = 0;
  // After the 220 to STARTTLS has been sent: switch the connection to TLS
  // and call Session::tlsStarted() when the handshake is done.
  virtual void startTls() = 0;
  // After the last reply (221, 421): close the connection. No callbacks follow.
  virtual void close() = 0;
  // A message begins (354 sent, or the first BDAT chunk accepted).
  virtual void messageBegin(const Envelope& env) = 0;
  // Content: dot-unstuffed, CRLF line ends, in pieces of any size.
  virtual void messageData(std::string_view bytes) = 0;
  // The message is complete: commit it, then call Session::messageDone().
  virtual void messageEnd() = 0;
  // Discard what was received since messageBegin (size exceeded, bare LF
  // rejected, RSET, EHLO, QUIT, timeout or disconnect in the middle).
  virtual void messageAbort() = 0;

  // Submission only (RFC 4954); the defaults offer no AUTH.
  // The SASL mechanisms to offer now (env.tls says whether TLS is on), in
  // upper case; empty: AUTH is not offered.
  virtual std::vector<std::string> authMechanisms(const Envelope& env);
  // AUTH <mechanism> [initial-response]: `mechanism` is one of
  // authMechanisms() (upper case); `initial` is decoded ("=" gives "").
  // Answer later (or at once) with authChallenge/authSucceeded/authFailed.
  virtual void authStart(std::string_view mechanism, std::optional<std::string> initial);
  // The client's (decoded) answer to the last authChallenge().
  virtual void authResponse(std::string response);
  // The exchange is over from the engine's side ('*', a bad line, the
  // connection closing): drop it; no answer is expected.
  virtual void authAbort();
};

class Session {
 public:
  enum class State : uint8_t {
    Connected,       // before greet()
    NeedHelo,        // greeted, or TLS just started
    Idle,            // HELO/EHLO done, no transaction
    Mail,            // MAIL accepted; RCPT, DATA, BDAT may follow
    Data,            // reading DATA content
    Chunk,           // reading the octets of a BDAT chunk
    Chunked,         // between BDAT chunks of one message
    Committing,      // messageEnd() called, waiting for messageDone()
    StartingTls,     // startTls() called, waiting for tlsStarted()
    Authenticating,  // authStart()/authResponse() called, waiting for the glue
    AuthResponse,    // 334 sent, reading the client's response line
    Closed,
  };

  Session(Settings settings, Policy& policy, Io& io);
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Sends the 220 greeting ("<host> ESMTP" or "<host> LMTP").
  void greet();
  // Sends `r` (a 421 or 554, instead of the greeting or at any time) and
  // closes: for connection limits and refused clients.
  void refuse(const Reply& r);
  // Sends 421 4.3.2 and closes: the server is stopping.
  void shutdown();
  // Processes as much of the input as the state allows. While committing a
  // message it only buffers; input that arrives between STARTTLS and
  // tlsStarted() is discarded.
  void feed(std::string_view bytes);
  // feed() in two steps, for a caller whose bytes sit in a buffer it must
  // release before the engine acts on them (a callback may replace that
  // buffer, as STARTTLS does): take() only copies them in, under the same
  // rules, and run() processes them. Saves the caller a copy of its own.
  void take(std::string_view bytes);
  void run();
  // The end-of-data reply. SMTP/submission: one reply. LMTP: one per
  // accepted recipient, in order (a single reply is repeated for all).
  void messageDone(const Reply& r);
  void messageDone(const std::vector<Reply>& replies);
  // The TLS handshake completed: back to the fresh state (RFC 3207 §4.2).
  void tlsStarted();
  // Answers to authStart()/authResponse() (state Authenticating):
  // send "334 <base64 of raw>" and read the client's response;
  void authChallenge(std::string_view raw);
  // 235 2.7.0: env.authUser = user;
  void authSucceeded(std::string user);
  // a refusal (535 5.7.8, 454 4.7.0, 504; a 421 closes the connection).
  void authFailed(const Reply& r);
  // The timer for timeoutNow() fired: 421 4.4.2 and close.
  void timeout();
  // The client closed the connection or it failed: abort any message in
  // progress and stop. Calls neither send() nor close().
  void peerClosed();

  // The RFC 5321 §4.5.3.2 server timeout for the current state: the data
  // timeout while message content is being read, else the command timeout.
  std::chrono::seconds timeoutNow() const;
  // Bytes received but not yet processed (backpressure: stop reading when
  // this is large; it only grows while a message is being committed).
  size_t buffered() const { return in_.size() - pos_; }
  bool closed() const { return state_ == State::Closed; }
  State state() const { return state_; }
  const Settings& settings() const { return settings_; }
  const Envelope& envelope() const { return env_; }
  unsigned errors() const { return errors_; }
  static std::string_view stateName(State s);

 private:
  struct Line;
  struct Spec;
  static const Spec* findCommand(std::string_view verb);

  void setState(State s);
  void process();
  bool readCommand(std::string_view in);
  bool readData(std::string_view in);
  bool readChunk(std::string_view in);
  void command(std::string_view line);
  void authLine(std::string_view line);
  void endAuth();
  void absorb(size_t before, bool bare);
  void finishChunk();
  void finishMessage();
  void rejectMessage(const Reply& r);
  void startChunk(uint64_t size, bool last, std::optional<Reply> failure);

  void send(const Reply& r);
  void sendPerRecipient(const Reply& r);
  void fail(const Reply& r);
  void flush();
  void flushData();
  void openMessage();
  void abortMessage();
  void resetTransaction();
  void closeNow();
  std::vector<std::string> capabilities() const;
  void greeting(const Line& line, bool esmtp);

  // The command table's check (syntax and state) and proceed steps.
  std::optional<Reply> checkHelo(Line& line);
  std::optional<Reply> checkMail(Line& line);
  std::optional<Reply> checkRcpt(Line& line);
  std::optional<Reply> checkData(Line& line);
  std::optional<Reply> checkBdat(Line& line);
  std::optional<Reply> checkNoArguments(Line& line);
  std::optional<Reply> checkNothing(Line& line);
  std::optional<Reply> checkVrfy(Line& line);
  std::optional<Reply> checkStartTls(Line& line);
  std::optional<Reply> checkNotImplemented(Line& line);
  std::optional<Reply> checkAuth(Line& line);
  void doEhlo(Line& line);
  void doHelo(Line& line);
  void doMail(Line& line);
  void doRcpt(Line& line);
  void doData(Line& line);
  void doBdat(Line& line);
  void doRset(Line& line);
  void doNoop(Line& line);
  void doQuit(Line& line);
  void doVrfy(Line& line);
  void doHelp(Line& line);
  void doStartTls(Line& line);
  void doNonSmtp(Line& line);
  void doAuth(Line& line);

  Settings settings_;
  Policy& policy_;
  Io& io_;
  State state_ = State::Connected;
  Envelope env_;
  unsigned errors_ = 0;

  std::string in_;  // received bytes; in_[pos_..] not yet processed
  size_t pos_ = 0;
  size_t scanned_ = 0;           // bytes after pos_ known to hold no LF
  bool discardingLine_ = false;  // inside a command line that is too long
  bool processing_ = false;
  std::string out_;   // rendered replies not yet sent
  std::string data_;  // message content not yet passed to messageData()

  // The message being received.
  bool messageOpen_ = false;  // messageBegin() called, no messageEnd/Abort yet
  uint64_t messageSize_ = 0;
  bool tooBig_ = false;
  DotDecoder dot_;
  ChunkDecoder chunk_;
  uint64_t chunkLeft_ = 0;
  uint64_t chunkSize_ = 0;
  bool chunkLast_ = false;
  std::optional<Reply> chunkFailure_;  // a refused BDAT: drain, then this
  State chunkReturn_ = State::Idle;    // where a refused BDAT goes back to
};

}  // namespace yubin::smtp
