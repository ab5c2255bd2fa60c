// One LMTP connection of mdad: the bufferevent, the protocol engine, the
// timers and the spool file of the message being received. The engine
// decides everything protocol-related; this file moves bytes, spools the
// message and, at its end, delivers it to each recipient in turn and gives
// the engine one reply per recipient.
// Follows mtad/connection.cpp (engine on a bufferevent, backpressure, a
// reaper timer so the connection is finished from the loop, never inside
// the engine's call stack), without STARTTLS: LMTP here is a local socket.
// Trust: handles untrusted mail from the local MTA; runs as [mdad] user.
// Standards: RFC 2033 §4.2 (one reply per recipient after the data).
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "event/event.hpp"
#include "mdad/spool.hpp"
#include "smtp/session.hpp"

namespace yubin::mdad {

class Mdad;

class Connection : public smtp::Io {
 public:
  Connection(Mdad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends the greeting (or `refusal` and closes) and starts reading.
  Status start(std::optional<smtp::Reply> refusal = std::nullopt);
  // Graceful stop: an idle session gets 421 4.3.2 now, one in a transaction
  // finishes it first.
  void shutdown();

  // smtp::Io
  void send(std::string_view bytes) override;
  void startTls() override;
  void close() override;
  void messageBegin(const smtp::Envelope& env) override;
  void messageData(std::string_view bytes) override;
  void messageEnd() override;
  void messageAbort() override;

 private:
  static void onRead(bufferevent* bev, void* self);
  static void onWrite(bufferevent* bev, void* self);
  static void onEvent(bufferevent* bev, short what, void* self);
  void readInput();
  void armTimer();
  void finish();  // destroys this

  Mdad& server_;
  std::string logId_;
  std::string peerText_;  // "uid=N pid=M" from SO_PEERCRED
  event::Bufferevent bev_;
  UniqueFd pendingFd_;
  smtp::Session session_;
  event::Timer timer_;
  event::Timer reaper_;  // finishes the connection from the loop
  SpoolFile spool_;
  std::optional<Error> spoolError_;  // the spool file could not be created
  bool closing_ = false;
  bool shutdownRequested_ = false;
  uint64_t messages_ = 0;
};

}  // namespace yubin::mdad
