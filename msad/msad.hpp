// The msad daemon object: the submission listeners (587 with STARTTLS, 465
// with implicit TLS), connection limits, and what every connection shares:
// the Directory, the submission policy and rate limiter, the login
// throttle and the password checker.
// Trust: runs as yubin-msa after the privilege drop; holds no queue and no
// mailbox, only the TLS context and read access to the users file.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "auth/directory.hpp"
#include "event/event.hpp"
#include "msad/handoff.hpp"
#include "msad/policy.hpp"
#include "sasl/password_checker.hpp"
#include "sasl/throttle.hpp"
#include "service/connection_table.hpp"
#include "service/service.hpp"
#include "smtp/session.hpp"
#include "tls/tls.hpp"

namespace yubin::msad {

class Connection;

// Settings copied at accept time, so a reload only affects new connections.
struct ServerSettings {
  smtp::Settings smtp;
  size_t maxConnections = 1000;
  size_t maxConnectionsPerIp = 20;
  bool authWithoutTlsLoopback = false;
  HandoffSettings handoff;
  sasl::Throttle::Settings throttle;
  RateLimiter::Settings rate;
  unsigned authWorkers = 2;
  static ServerSettings fromConfig(const config::Config& cfg);
};

// 127.0.0.0/8 and ::1.
bool isLoopback(const std::string& ip);

class Msad : public service::Daemon {
 public:
  Msad();
  ~Msad() override;

  Status start(service::Context& ctx) override;
  void reload(const config::Config& cfg) override;
  void stop(service::Context& ctx) override;
  size_t sessions() const override { return connections_.size(); }

  // For connections.
  event_base* base() const { return base_; }
  auth::Directory& directory() { return *directory_; }
  SubmissionPolicy& policy() { return *policy_; }
  RateLimiter& rate() { return *rate_; }
  sasl::Throttle& throttle() { return *throttle_; }
  sasl::PasswordChecker& checker() { return *checker_; }
  tls::ServerContext* tlsContext() { return tls_; }
  const ServerSettings& settings() const { return settings_; }
  void closed(Connection* c);

 private:
  void accept(UniqueFd fd, const event::Peer& peer, bool implicitTls);
  void exitWhenIdle();

  service::Context* ctx_ = nullptr;
  event_base* base_ = nullptr;
  ServerSettings settings_;
  std::unique_ptr<auth::Directory> directory_;
  std::unique_ptr<RateLimiter> rate_;
  std::unique_ptr<SubmissionPolicy> policy_;
  std::unique_ptr<sasl::Throttle> throttle_;
  std::unique_ptr<sasl::PasswordChecker> checker_;
  tls::ServerContext* tls_ = nullptr;  // owned by the skeleton
  std::vector<std::unique_ptr<event::Listener>> listeners_;
  service::ConnectionTable<Connection> connections_;
  bool stopping_ = false;
};

}  // namespace yubin::msad
