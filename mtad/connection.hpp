// One SMTP connection of mtad: the bufferevent, the protocol engine, the
// timers and the message being written to the queue. The engine decides
// everything protocol-related; this file only moves bytes and commits.
// Trust: handles untrusted network input; runs as yubin-mta.
// Standards: RFC 5321 §4.4 (the Received: header), RFC 3207 (STARTTLS).
#pragma once

#include <event2/buffer.h>

#include <memory>
#include <optional>
#include <string>

#include "event/event.hpp"
#include "queue/queue.hpp"
#include "smtp/session.hpp"

namespace yubin::mtad {

class Mtad;

class Connection : public smtp::Io {
 public:
  Connection(Mtad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings);
  ~Connection() override;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Sends the greeting (or `refusal` and closes) and starts reading.
  Status start(std::optional<smtp::Reply> refusal = std::nullopt);
  // Graceful stop: an idle session gets 421 4.3.2 now, one in a transaction
  // finishes it first.
  void shutdown();
  const event::Peer& peer() const { return peer_; }

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
  static void onLowerDrained(evbuffer* buf, const evbuffer_cb_info* info, void* self);
  size_t pendingOutput() const;  // reply bytes not yet handed to the kernel
  void setCallbacks();
  void readInput();
  void armTimer();
  void onTimer();  // the command/data timeout, or the close linger
  void finish();  // destroys this
  std::string receivedHeader(const smtp::Envelope& env, const std::string& id) const;

  Mtad& server_;
  event::Peer peer_;
  std::string logId_;
  event::Bufferevent bev_;
  UniqueFd pendingFd_;
  smtp::Session session_;
  event::Timer timer_;
  event::Timer reaper_;  // finishes the connection from the loop
  // On close under TLS: watches the socket buffer below the TLS layer.
  evbuffer_cb_entry* lowerDrained_ = nullptr;
  queue::PendingMessage message_;
  std::optional<queue::CommitTicket> commit_;
  std::optional<Error> beginError_;  // queue file could not be created
  std::string tlsInfo_;  // "TLSv1.3 ..." once TLS is up
  bool closing_ = false;
  bool shutdownRequested_ = false;
  uint64_t messages_ = 0;
};

}  // namespace yubin::mtad
