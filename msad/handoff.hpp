// The handoff of one submitted message from msad to mtad: an SMTP client on
// mtad's submission socket ([msad] mtad_socket = [mtad] submission_socket).
// msad never writes the queue; it opens this connection when the client's
// message begins, sends EHLO, then MAIL FROM with AUTH=<user> (RFC 4954 §5:
// the identity travels with the message), the RCPTs and DATA in one
// pipelined write, streams the content dot-stuffed as it arrives, and
// reports mtad's reply to the final dot: a 250 only once mtad has committed
// the message to its queue. Every failure without a server reply
// (connection refused, mtad gone, timeout, a garbled reply) becomes
// 451 4.3.0, so the client retries and nothing is lost.
// Trust: mtad is local and trusted, but its replies are parsed strictly
// (smtp::ReplyParser). Runs in msad as yubin-msa.
// Standards: RFC 5321 (client side), RFC 2920 (PIPELINING), RFC 4954 §5
// (AUTH=), RFC 3461 (NOTIFY, ORCPT, RET, ENVID passed on), RFC 6152,
// RFC 6531.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "event/event.hpp"
#include "smtp/client_reply.hpp"
#include "smtp/data.hpp"
#include "smtp/reply.hpp"
#include "smtp/session.hpp"

namespace yubin::msad {

struct HandoffSettings {
  std::string socketPath = "/run/yubin/submission";
  std::string heloName = "localhost";
  // Greeting, EHLO, MAIL, RCPT, DATA replies; and no progress writing.
  std::chrono::milliseconds replyTimeout{std::chrono::seconds(60)};
  // The reply to the final dot (mtad commits: fsync).
  std::chrono::milliseconds finalTimeout{std::chrono::minutes(10)};
  // Output past this is "full": the caller should stop reading its client.
  size_t highWater = 1024 * 1024;
};

// The MAIL and RCPT commands for an envelope (exposed for tests). AUTH=
// carries `authUser` (xtext), never what the client gave.
std::string mailCommand(const smtp::Envelope& env, const std::string& authUser);
std::string rcptCommand(const smtp::Recipient& r);
// mtad's reply as the reply to the client's end of data; a reply that is
// not a usable SMTP reply becomes 451 4.3.0.
smtp::Reply clientReplyFor(const smtp::ClientReply& r);

class Handoff {
 public:
  // Called once: the reply to give the client (the final reply, or the
  // failure as soon as it happens).
  using Done = std::function<void(const smtp::Reply&)>;

  // Starts connecting; never calls `done` from inside this call.
  Handoff(event_base* base, const HandoffSettings& settings, const smtp::Envelope& env,
          std::string authUser, std::string logId, Done done);
  ~Handoff();
  Handoff(const Handoff&) = delete;
  Handoff& operator=(const Handoff&) = delete;

  // Message content (as the engine gives it: unstuffed, CRLF); held until
  // mtad has answered DATA.
  void data(std::string_view bytes);
  // The content is complete: send the final dot, then report the reply.
  void end();
  // Bytes not yet handed to the kernel.
  size_t pending() const;
  bool full() const { return pending() > settings_.highWater; }
  // Called when a full() handoff has drained below half the high water.
  std::function<void()> onDrained;

 private:
  enum class Phase : uint8_t { Greeting, Ehlo, Envelope, Streaming, Final, Done };
  static void onRead(bufferevent* bev, void* self);
  static void onWrite(bufferevent* bev, void* self);
  static void onEvent(bufferevent* bev, short what, void* self);
  void connect();
  void readReplies();
  void reply(const smtp::ClientReply& r);
  void write(std::string_view bytes);
  void flushHeld();
  void finish(const smtp::Reply& r, const std::string& why);

  event_base* base_;
  HandoffSettings settings_;
  std::string mail_;
  std::vector<std::string> rcpts_;
  std::string logId_;
  Done done_;
  event::Bufferevent bev_;
  event::Timer timer_;
  event::Timer starter_;
  smtp::ReplyParser parser_;
  smtp::DotEncoder dot_;
  Phase phase_ = Phase::Greeting;
  size_t envelopeReplies_ = 0;  // MAIL, RCPTs, DATA answered so far
  std::string held_;            // content before mtad's 354
  bool ended_ = false;
  bool wasFull_ = false;
};

}  // namespace yubin::msad
