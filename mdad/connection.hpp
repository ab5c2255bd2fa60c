// One LMTP connection of mdad: the spool file of the message being
// received and, at its end, delivery to each recipient in turn with one
// reply per recipient for the engine. The bufferevent, the protocol engine,
// the timers, backpressure and closing are smtp::ServerConnection's, shared
// with mtad; there is no STARTTLS: LMTP here is a local socket.
// Trust: handles untrusted mail from the local MTA; runs as [mdad] user.
// Standards: RFC 2033 §4.2 (one reply per recipient after the data).
#pragma once

#include <optional>
#include <string>

#include "event/event.hpp"
#include "mdad/spool.hpp"
#include "smtp/server_connection.hpp"

namespace yubin::mdad {

class Mdad;

class Connection : public smtp::ServerConnection {
 public:
  Connection(Mdad& server, UniqueFd fd, const event::Peer& peer, smtp::Settings settings);

  // smtp::Io, message half
  void messageBegin(const smtp::Envelope& env) override;
  void messageData(std::string_view bytes) override;
  void messageEnd() override;
  void messageAbort() override;

 private:
  void finished() override;

  Mdad& server_;
  SpoolFile spool_;
  std::optional<Error> spoolError_;  // the spool file could not be created
};

}  // namespace yubin::mdad
