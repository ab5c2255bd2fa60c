// One LMTP connection of mdad: the message being received (in memory, or
// in a spool file when big) and, at its end, its delivery: the recipients
// are resolved here on the loop thread, the copies are made on the
// daemon's worker threads, and once the last copy is durable (or failed)
// the engine gets one reply per recipient, in order. Until then the engine
// only buffers what the client sends (RSET, QUIT, the next message). A
// connection that ends meanwhile cancels its group: copies not started
// are dropped, running ones finish on their own (they share the message
// and the plan, never the connection). The bufferevent, the protocol engine,
// the timers, backpressure and closing are smtp::ServerConnection's, shared
// with mtad; there is no STARTTLS: LMTP here is a local socket.
// Trust: handles untrusted mail from the local MTA; runs as [mdad] user.
// Standards: RFC 2033 §4.2 (one reply per recipient after the data).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "event/event.hpp"
#include "mdad/outcome.hpp"
#include "event/worker_pool.hpp"
#include "mdad/spool.hpp"
#include "smtp/server_connection.hpp"

namespace yubin::mdad {

class Mdad;

class Connection : public smtp::ServerConnection {
 public:
  Connection(Mdad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings);
  ~Connection() override;

  // smtp::Io, message half
  void messageBegin(const smtp::Envelope& env) override;
  void messageData(std::string_view bytes) override;
  void messageEnd() override;
  void messageAbort() override;

 private:
  struct Job;
  void finished() override;
  void delivered(const Job& job);
  void reply(const std::vector<Outcome>& outcomes, uint64_t size, bool async);

  Mdad& server_;
  MessageBuffer message_;
  event::WorkerPool::Ticket delivery_ = 0;  // the group under way, or 0
};

}  // namespace yubin::mdad
