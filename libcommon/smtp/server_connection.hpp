// The transport half of one SMTP or LMTP server connection: the protocol
// engine (session.hpp) on a libevent bufferevent. Owns reading with
// backpressure, the command/data timer (Session::timeoutNow()), STARTTLS,
// closing once the last reply has left (TLS layer included) or a linger
// has passed, and finishing the connection from the loop, never inside the
// engine's call stack. The message half of smtp::Io (messageBegin, Data,
// End, Abort) and what happens when the connection is over are the
// daemon's: mtad queues the message, mdad delivers it.
// Replies on a plain socket are gathered and written straight to the
// kernel at the end of the loop turn that made them, when nothing is
// queued before them (the replies to one read, or to a pipelined group, in
// one write, and every session's after all the turn's input is read), so
// a reply costs no epoll_ctl to arm and disarm a write event and waits for
// no further turn; whatever the kernel does not take, and everything under
// TLS, goes through the bufferevent.
// Kept apart from the engine's library so that smtp/ stays free of libevent.
// Trust: carries untrusted network input to the engine but never parses it;
// runs inside mtad (as yubin-mta) and mdad after the privilege drop.
// Standards: RFC 3207 (STARTTLS; nothing pipelined past it is kept),
// RFC 8314 (implicit TLS, for msad's port 465), RFC 5321 §4.5.3.2
// (timeouts, as the engine states them; plus a minimum data rate, so a
// message dripped a byte per data timeout cannot hold a session for ever).
#pragma once

#include <event2/buffer.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

#include "event/event.hpp"
#include "smtp/session.hpp"

namespace yubin::tls {
class ServerContext;
}

namespace yubin::smtp {

class ServerConnection : public Io {
 public:
  // `peerLog` names the client in log lines, as key=value pairs
  // ("client=192.0.2.1:4711", "peer=\"uid=8 pid=42\""); the session ID is
  // settings.logId. `policy` must outlive the connection.
  ServerConnection(event_base* base, UniqueFd&& fd, Settings settings, Policy& policy,
                   std::string peerLog);
  ~ServerConnection() override;
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  // Sends the greeting (or `refusal` and closes) and starts reading. With
  // `implicitTls` (an SSL from the server context) the connection is TLS
  // from the first byte (RFC 8314); settings.tlsActive must then be set.
  Status start(std::optional<Reply> refusal = std::nullopt,
               std::optional<event::SslPtr> implicitTls = std::nullopt);
  // Graceful stop: an idle session gets 421 4.3.2 now, one in a transaction
  // finishes it first.
  void shutdown();

  // smtp::Io, transport half
  void send(std::string_view bytes) final;
  void startTls() final;
  void close() final;

 protected:
  Session& session() { return session_; }
  const Session& session() const { return session_; }
  const std::string& logId() const { return logId_; }
  // "TLSv1.3 ..." once STARTTLS completed, else empty.
  const std::string& tlsInfo() const { return tlsInfo_; }
  // No command timeout while a message is being committed.
  void stopTimer() { timer_.cancel(); }
  // After a messageDone() given outside messageEnd(): read on.
  void resumeReading();
  // Counted in the disconnect log line.
  void countMessage() { ++messages_; }
  // The SSL of the connection once TLS is on (STARTTLS done or implicit),
  // else nullptr: for the RFC 9266 channel binding.
  SSL* ssl() const;
  // Stop reading from the client while the daemon's own downstream is
  // full (msad's handoff to mtad); holdInput(false) reads on.
  void holdInput(bool hold);

  // The context for STARTTLS, asked at the time of the command (it may be
  // reloaded); nullptr when TLS is not offered.
  virtual tls::ServerContext* tlsContext() { return nullptr; }
  // The connection is over (client gone, or closed and its output flushed
  // or given up): drop what the message half holds and hand this to the
  // owner, which may destroy it. Called from the loop only, once.
  virtual void finished() = 0;

 private:
  static void onRead(bufferevent* bev, void* self);
  static void onWrite(bufferevent* bev, void* self);
  static void onEvent(bufferevent* bev, short what, void* self);
  static void onLowerDrained(evbuffer* buf, const evbuffer_cb_info* info, void* self);
  size_t pendingOutput() const;  // reply bytes not yet handed to the kernel
  // Hands `bytes` to the kernel at once when the connection is a plain
  // socket with nothing queued before them; the rest (or all of it) goes
  // into the bufferevent, which writes it when the socket is writable.
  void writeOut(std::string_view bytes);
  // Writes the gathered replies (replyBatch_) now.
  void flushReplies();
  static void onFlush(evutil_socket_t, short, void* self);
  void setCallbacks();
  void readInput();
  // On a plain socket: one read of up to kReadAhead bytes past libevent's
  // 4,096, into a buffer shared by the thread's connections (the engine
  // copies the bytes in at once). Empty on EAGAIN, end of file or an
  // error, which the bufferevent's own next read meets and reports.
  std::string_view readAhead();
  void armTimer();
  // In a message transfer: the deadline credited by `octets` just read at
  // settings.dataMinRate (session.hpp), capped at the data timeout.
  void armTransferTimer(size_t octets);
  void onTimer();  // the command/data timeout, or the close linger
  void abandon();  // closes at once, from the loop
  void finish();   // may destroy this

  event_base* base_;
  std::string logId_;
  std::string peerLog_;
  event::Bufferevent bev_;
  UniqueFd pendingFd_;
  Session session_;
  event::Timer timer_;
  event::Timer reaper_;  // finishes the connection from the loop
  // On close under TLS: watches the socket buffer below the TLS layer.
  evbuffer_cb_entry* lowerDrained_ = nullptr;
  std::string tlsInfo_;
  // Replies sent, and their count when the timer was last armed: the
  // command timeout runs from the last reply, not from the last byte read.
  uint64_t replies_ = 0;
  uint64_t repliesAtArm_ = 0;
  // A DATA or BDAT transfer is under way (from its first read to the end
  // of the message) and must end before this deadline.
  bool transfer_ = false;
  std::chrono::steady_clock::time_point transferDeadline_{};
  bool closing_ = false;
  bool shutdownRequested_ = false;
  bool implicitTls_ = false;
  bool held_ = false;
  // The bufferevent is the socket itself (no TLS yet, none to come): its
  // fd may be written directly.
  bool plain_ = false;
  // Replies gathered on a plain socket, written by flush_ (made active when
  // the first is gathered, so it runs after the events already due in this
  // loop turn) or earlier when order requires (STARTTLS, close, the bound).
  std::string replyBatch_;
  event::Event flush_;
  uint64_t messages_ = 0;
};

}  // namespace yubin::smtp
