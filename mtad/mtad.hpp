// The mtad daemon object: listeners, connection limits, the queue and the
// shared objects every SMTP connection uses.
// Trust: runs as yubin-mta after the privilege drop; owns the queue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "event/event.hpp"
#include "mtad/pickup.hpp"
#include "mtad/policy.hpp"
#include "mtad/qmgr.hpp"
#include "queue/queue.hpp"
#include "service/connection_table.hpp"
#include "service/service.hpp"
#include "smtp/session.hpp"
#include "tls/tls.hpp"

namespace yubin::mtad {

class Connection;
class QueueControl;

// What a connection needs from the daemon; settings are copied at accept
// time so a reload only affects new connections.
struct ServerSettings {
  smtp::Settings smtp;
  size_t maxConnections = 10000;
  size_t maxConnectionsPerIp = 50;
  std::string catchall;
  bool tls = true;
  static ServerSettings fromConfig(const config::Config& cfg);
};

class Mtad : public service::Daemon {
 public:
  Mtad();
  ~Mtad() override;

  Status start(service::Context& ctx) override;
  void reload(const config::Config& cfg) override;
  void stop(service::Context& ctx) override;
  size_t sessions() const override { return connections_.size(); }

  // For connections.
  event_base* base() const { return base_; }
  queue::Queue& queue() { return *queue_; }
  InboundPolicy& policy() { return *policy_; }
  SubmissionInPolicy& submissionPolicy() { return *submissionPolicy_; }
  tls::ServerContext* tlsContext() { return settings_.tls ? tls_ : nullptr; }
  const ServerSettings& settings() const { return settings_; }
  // A connection ended: forget it (it is destroyed here).
  void closed(Connection* c);
  // A message was committed to the queue: the queue manager delivers it.
  void queued(const queue::QueueId& id);

 private:
  // `submission`: from the submission socket (msad), trusted.
  void accept(UniqueFd fd, const event::Peer& peer, bool submission);
  // On stop: exits once no session and no delivery is left.
  void exitWhenIdle();

  service::Context* ctx_ = nullptr;
  event_base* base_ = nullptr;
  ServerSettings settings_;
  std::unique_ptr<queue::Queue> queue_;
  std::unique_ptr<auth::Directory> directory_;
  std::unique_ptr<InboundPolicy> policy_;
  std::unique_ptr<SubmissionInPolicy> submissionPolicy_;
  tls::ServerContext* tls_ = nullptr;  // owned by the skeleton
  std::unique_ptr<Qmgr> qmgr_;
  std::unique_ptr<QueueControl> control_;  // the admin's queue commands (control.hpp)
  std::unique_ptr<Pickup> pickup_;         // yubin-sendmail's maildrop (pickup.hpp)
  std::vector<std::unique_ptr<event::Listener>> listeners_;
  service::ConnectionTable<Connection> connections_;
  bool stopping_ = false;
};

}  // namespace yubin::mtad
