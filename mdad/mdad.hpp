// The mdad daemon object: the LMTP listeners, the connection limit, the
// Directory, the Deliverer, the delivery worker threads and the recipient
// policy every LMTP connection shares.
// Trust: runs as [mdad] user (the mailboxes' owner) after the skeleton's
// privilege drop; its socket is reachable only by lmtp_socket_group (the
// MTA), but what comes through it is still untrusted mail.
// Standards: RFC 2033 (LMTP).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "event/event.hpp"
#include "mdad/delivery.hpp"
#include "event/worker_pool.hpp"
#include "service/connection_table.hpp"
#include "service/service.hpp"
#include "smtp/session.hpp"

namespace yubin::mdad {

class Connection;

// RCPT: each recipient goes through the Directory. Unknown, or only remote
// addresses (mdad does not forward): 550 5.1.1. Users file unreadable or a
// broken alias: 451 4.3.0. Any sender is accepted: the MTA already judged it.
class RecipientPolicy : public smtp::Policy {
 public:
  explicit RecipientPolicy(auth::Directory& directory) : directory_(directory) {}
  std::optional<smtp::Reply> checkSender(const smtp::Envelope& env,
                                         const mail::Address& from) override;
  std::optional<smtp::Reply> checkRecipient(const smtp::Envelope& env,
                                            const mail::Address& rcpt) override;
  // <Postmaster> becomes postmaster@<first local domain> (RFC 5321 §4.5.1).
  std::string addressOf(const mail::Address& rcpt) const;

 private:
  auth::Directory& directory_;
};

// What a connection needs from the daemon; copied at accept time so a
// reload only affects new connections.
struct ServerSettings {
  smtp::Settings smtp;
  size_t maxConnections = 100;
  std::string spoolDir;
  // A message up to this size is kept in memory while it is delivered;
  // a bigger one goes to a spool file in spoolDir. Bounds the memory of a
  // connection's message (x max_connections for the daemon).
  size_t memoryMessageSize = 256 * 1024;
  size_t deliveryWorkers = 4;  // [mdad] delivery_workers; read at start only
  static ServerSettings fromConfig(const config::Config& cfg);
};

class Mdad : public service::Daemon {
 public:
  Mdad();
  ~Mdad() override;

  // Root: create the spool folder and give it to [mdad] user.
  Status prepare(service::Context& ctx) override;
  Status start(service::Context& ctx) override;
  void reload(const config::Config& cfg) override;
  void stop(service::Context& ctx) override;
  size_t sessions() const override { return connections_.size(); }

  // For connections.
  event_base* base() const { return base_; }
  auth::Directory& directory() { return *directory_; }
  RecipientPolicy& policy() { return *policy_; }
  Deliverer& deliverer() { return *deliverer_; }
  event::WorkerPool& pool() { return *pool_; }
  const ServerSettings& settings() const { return settings_; }
  // A connection ended: forget it (it is destroyed here).
  void closed(Connection* c);

 private:
  void accept(UniqueFd fd, const event::Peer& peer);

  service::Context* ctx_ = nullptr;
  event_base* base_ = nullptr;
  ServerSettings settings_;
  std::unique_ptr<auth::Directory> directory_;
  std::unique_ptr<RecipientPolicy> policy_;
  std::unique_ptr<Deliverer> deliverer_;
  // Declared after what its tasks use, so it goes first (and waits for
  // the running ones).
  std::unique_ptr<event::WorkerPool> pool_;
  std::vector<std::unique_ptr<event::Listener>> listeners_;
  service::ConnectionTable<Connection> connections_;
  bool stopping_ = false;
};

}  // namespace yubin::mdad
