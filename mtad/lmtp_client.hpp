// mtad's LMTP client: delivers queued messages to mdad over its Unix socket,
// one transaction at a time per connection, the connection kept for the
// next message (RSET between transactions). The message is streamed from
// the queue file with dot-stuffing, never loaded whole; every server reply
// goes through the strict smtp::ReplyParser; every wait has a timeout.
// Failures that have no server reply (refused connection, timeout, broken
// reply grammar, the peer closing) become local 4xx replies, so the caller
// sees exactly one reply per recipient whatever happens.
//
// Trust: talks to mdad, a local daemon, but parses its replies as untrusted
// input. Runs in mtad as yubin-mta.
//
// Standards: RFC 2033 (LMTP: LHLO, one reply per accepted recipient after
// the end of data), RFC 5321 §4.5.2 (dot-stuffing), §4.5.3.2 (timeouts),
// RFC 2920 (PIPELINING: RSET, MAIL and the RCPTs go in one write),
// RFC 6152 (BODY=8BITMIME), RFC 6531 (SMTPUTF8).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "event/event.hpp"
#include "queue/queue.hpp"
#include "smtp/client_reply.hpp"
#include "smtp/data.hpp"

namespace yubin::mtad {

// Shared with the SMTP client (smtp/data.hpp).
using smtp::DotEncoder;

struct LmtpSettings {
  std::string socketPath = "/run/yubin/lmtp";
  std::string lhloName = "localhost";
  // From the connect to the greeting.
  std::chrono::milliseconds connectTimeout{std::chrono::seconds(30)};
  // Greeting, LHLO, RSET, MAIL, RCPT, DATA (RFC 5321 §4.5.3.2: 5 minutes).
  std::chrono::milliseconds replyTimeout{std::chrono::minutes(5)};
  // No progress writing the content, and the wait for the replies after the
  // final dot (RFC 5321 §4.5.3.2.5/6: 3 and 10 minutes).
  std::chrono::milliseconds dataTimeout{std::chrono::minutes(10)};
  // An idle connection is closed (with QUIT) after this.
  std::chrono::milliseconds idleTimeout{std::chrono::seconds(60)};
  // Content is read from the queue file while less than this is waiting to
  // be sent.
  size_t outputHighWater = 256 * 1024;
  size_t readChunk = 64 * 1024;
};

struct LmtpRequest {
  std::string sender;  // reverse-path without brackets; empty for <>
  queue::Body body = queue::Body::Unspecified;
  bool smtputf8 = false;
  std::vector<std::string> recipients;     // forward-paths without brackets
  const queue::QueueFile* file = nullptr;  // must outlive the transaction
  std::string logId;                       // queue ID, for log lines
};

struct LmtpResult {
  // One per recipient of the request, same order: the RCPT reply of a
  // refused recipient, else the reply after the final dot, else a local
  // 4xx reply describing the failure.
  std::vector<smtp::ClientReply> replies;
  // The connection had served an earlier transaction and broke before the
  // server answered anything of this one (it closed an idle connection just
  // as we reused it): nothing can have been delivered, so the caller may
  // retry at once on a new connection.
  bool retryable = false;
  // Reading the queue file failed (EBADMSG: corrupt). The transaction was
  // abandoned (connection closed before the final dot).
  std::optional<Error> fileError;
  // Transactions this connection had finished before this one.
  uint64_t reuse = 0;
};

class LmtpClient {
 public:
  using Done = std::function<void(LmtpResult)>;

  LmtpClient(event_base* base, LmtpSettings settings);
  ~LmtpClient();
  LmtpClient(const LmtpClient&) = delete;
  LmtpClient& operator=(const LmtpClient&) = delete;

  // Runs one transaction, connecting first when needed. `done` runs later
  // from the event loop, never inside send(). Requires !busy().
  void send(LmtpRequest request, Done done);
  bool busy() const { return done_ != nullptr; }
  // Connected, greeted, and no transaction running: send() reuses it.
  bool ready() const { return state_ == State::Ready; }
  // Not connected, or the connection broke: a new send() reconnects.
  bool disconnected() const { return state_ == State::Disconnected; }
  // Called (from the loop) when an idle connection is closed by the server
  // or by the idle timeout, so a pool can drop this client.
  void setOnIdleClose(std::function<void()> fn) { onIdleClose_ = std::move(fn); }
  // Sends QUIT if idle and closes. A running transaction fails (done gets
  // local 4xx replies).
  void close();

  // What the server advertised in its LHLO reply.
  bool pipelining() const { return pipelining_; }
  bool eightBitMime() const { return eightBitMime_; }
  bool smtputf8() const { return smtputf8_; }

 private:
  enum class State : uint8_t {
    Disconnected,
    Greeting,  // waiting for 220
    Lhlo,      // waiting for the LHLO reply
    Ready,     // idle, greeted
    Envelope,  // waiting for the RSET, MAIL and RCPT replies
    Data,      // waiting for 354
    Content,   // streaming the message
    Final,     // waiting for one reply per accepted recipient
  };
  static const char* stateName(State s);

  static void onRead(bufferevent* bev, void* self);
  static void onWrite(bufferevent* bev, void* self);
  static void onEvent(bufferevent* bev, short what, void* self);

  void start();
  void connect();
  void readReplies();
  void reply(const smtp::ClientReply& r);
  void sendEnvelope();
  void sendContent();
  void write(std::string_view bytes);
  void armTimer(std::chrono::milliseconds t);
  void onTimeout();
  // Ends the transaction: every recipient without a reply gets `why`.
  void fail(const smtp::ClientReply& why, bool closeConnection);
  void complete();
  void quit();
  void disconnect();
  void setState(State s);

  event_base* base_;
  LmtpSettings settings_;
  event::Bufferevent bev_;
  smtp::ReplyParser parser_;
  event::Timer timer_;
  event::Timer kick_;    // starts a transaction from the loop
  event::Timer finish_;  // reports a result from the loop
  State state_ = State::Disconnected;
  bool pipelining_ = false;
  bool eightBitMime_ = false;
  bool smtputf8_ = false;
  uint64_t transactions_ = 0;  // finished on this connection
  std::function<void()> onIdleClose_;

  // The transaction.
  LmtpRequest req_;
  Done done_;
  LmtpResult result_;
  std::vector<bool> answered_;    // per recipient: result_.replies[i] is final
  std::vector<size_t> accepted_;  // recipients whose RCPT got 2xx, in order
  size_t expected_ = 0;           // replies still due in this state
  size_t rcptIndex_ = 0;          // next RCPT reply belongs to this recipient
  size_t finalIndex_ = 0;         // next final reply belongs to accepted_[finalIndex_]
  bool sentRset_ = false;
  bool mailOk_ = false;
  bool gotReply_ = false;  // any reply of this transaction arrived
  std::optional<smtp::ClientReply> mailFailure_;
  std::optional<queue::QueueFile::Reader> reader_;
  DotEncoder dot_;
  bool contentDone_ = false;
  bool reused_ = false;
};

}  // namespace yubin::mtad
