// One SMTP connection of mtad: the message being written to the queue and
// its Received: header, on smtp::ServerConnection (the bufferevent, the
// protocol engine, the timers, STARTTLS with mtad's certificate). The
// engine decides everything protocol-related; this file only commits.
// Trust: handles untrusted network input; runs as yubin-mta.
// Standards: RFC 5321 §4.4 (the Received: header), RFC 3207 (STARTTLS),
// RFC 4954 §5 (AUTH=: kept from msad's submission socket only).
#pragma once

#include <optional>
#include <string>

#include "event/event.hpp"
#include "queue/queue.hpp"
#include "smtp/server_connection.hpp"

namespace yubin::mtad {

class Mtad;

class Connection : public smtp::ServerConnection {
 public:
  // `submission`: a connection on the submission socket (msad): trusted
  // policy, AUTH= kept as the queue's authUser, no Received: of our own
  // (msad wrote one).
  Connection(Mtad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings,
             bool submission = false);
  ~Connection() override;

  const event::Peer& peer() const { return peer_; }

  // smtp::Io, message half
  void messageBegin(const smtp::Envelope& env) override;
  void messageData(std::string_view bytes) override;
  void messageEnd() override;
  void messageAbort() override;

 private:
  tls::ServerContext* tlsContext() override;
  void finished() override;
  std::string receivedHeader(const smtp::Envelope& env, const std::string& id) const;

  Mtad& server_;
  event::Peer peer_;
  bool submission_;
  queue::PendingMessage message_;
  std::optional<queue::CommitTicket> commit_;
  std::optional<Error> beginError_;  // queue file could not be created
};

}  // namespace yubin::mtad
