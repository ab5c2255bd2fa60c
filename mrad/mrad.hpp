// The mrad daemon object, in the login process: starts the mail processes
// ([mrad] mail_processes of them, in prepare, still root; each gets its own
// handoff channel and serves the users whose canonical name hashes to its
// index, so all sessions of one user meet in one process), owns the POP3 listeners (pop3_listen with STLS,
// pop3s_listen with implicit TLS) and the IMAP ones (imap_listen with
// STARTTLS, imaps_listen with implicit TLS), the connection limits (shared by
// both protocols), the Directory,
// the password checker and the login throttle; each connection is a
// LoginConnection (login_connection.hpp). When any mail process dies, every
// session is closed and mrad exits with a failure status, so yubin-master
// restarts them all (the login process, having dropped its privileges,
// could not start a new mail process under another user).
// Trust: runs as [mrad] user (default yubin-login) after the skeleton's
// privilege drop: it can read the users file (users_group) but no mailbox
// and not the queue. Parses untrusted pre-authentication input.
// Standards: RFC 1939, RFC 2449, RFC 2595, RFC 5034, RFC 3501, RFC 9051,
// RFC 8314 (implicit TLS on 995 and 993).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "auth/directory.hpp"
#include "base/unique_fd.hpp"
#include "mrad/handoff.hpp"
#include "event/event.hpp"
#include "sasl/password_checker.hpp"
#include "sasl/throttle.hpp"
#include "service/connection_table.hpp"
#include "service/service.hpp"

namespace yubin::mrad {

class LoginConnection;

// How long a closing session (idle timeout, LOGOUT/QUIT, an error, a
// shutdown) waits for its last answer to leave before the connection is
// dropped anyway: a client that never reads must not keep its connection,
// buffers and slot (mtad's ServerConnection has the same linger).
inline constexpr std::chrono::seconds kCloseLinger{10};

// The mail process (0 .. processes-1) that serves a user: FNV-1a of the
// canonical address (auth::User::address) modulo the count. Stable across
// runs and builds, so a user's sessions always meet in the same process.
size_t mailProcessIndex(std::string_view canonicalUser, size_t processes);

// [mrad] mail_processes: the configured count, 0 meaning one per online CPU.
size_t mailProcessCount(uint64_t configured);

// What a connection needs; copied at accept time, so a reload only affects
// new connections.
struct LoginSettings {
  std::string hostname;
  bool loopbackPlaintext = true;
  size_t maxConnections = 1000;
  size_t maxConnectionsPerIp = 20;
  std::chrono::milliseconds idleTimeout{600000};       // POP3 before login
  std::chrono::milliseconds imapLoginTimeout{600000};  // IMAP before login
  static LoginSettings fromConfig(const config::Config& cfg);
};

class Mrad : public service::Daemon {
 public:
  // foreground: the mail process logs to stderr too. *failure receives the
  // exit status main() returns when the mail process died.
  Mrad(bool foreground, int* failure);
  ~Mrad() override;

  // Root: starts the mail processes.
  Status prepare(service::Context& ctx) override;
  Status start(service::Context& ctx) override;
  void reload(const config::Config& cfg) override;
  void stop(service::Context& ctx) override;
  size_t sessions() const override { return connections_.size(); }

  // For connections.
  event_base* base() const { return base_; }
  auth::Directory& directory() { return *directory_; }
  sasl::PasswordChecker& checker() { return *checker_; }
  sasl::Throttle& throttle() { return throttle_; }
  tls::ServerContext* tls() { return ctx_ ? ctx_->tls() : nullptr; }
  // The handoff channel of the mail process that serves this user.
  int channelFor(std::string_view canonicalUser) const;
  void closed(LoginConnection* c);

 private:
  void accept(UniqueFd fd, const event::Peer& peer, bool implicitTls, Protocol protocol);
  struct MailProc;
  void mailProcessGone(const MailProc& p, const std::string& why);
  static void onChannel(evutil_socket_t, short, void* self);

  // One mail process: its index, pid (-1 once reaped) and channel, which
  // the mail process never writes to (readable means it closed).
  struct MailProc {
    Mrad* owner = nullptr;
    size_t index = 0;
    pid_t pid = -1;
    UniqueFd channel;
    event::Event channelEvent;
  };

  bool foreground_;
  int* failure_;
  service::Context* ctx_ = nullptr;
  event_base* base_ = nullptr;
  LoginSettings settings_;
  std::vector<std::unique_ptr<MailProc>> mailProcs_;
  std::unique_ptr<event::Signal> sigchld_;
  // Exits on the loop turn after the mail process went: the connections
  // closed then free their bufferevents on the loop (libevent finalizes
  // them there), which a loop stopped at once left undone (LeakSanitizer).
  std::unique_ptr<event::Timer> exitSoon_;
  std::unique_ptr<auth::Directory> directory_;
  std::unique_ptr<sasl::PasswordChecker> checker_;
  sasl::Throttle throttle_{sasl::Throttle::Settings{}};
  std::vector<std::unique_ptr<event::Listener>> listeners_;
  service::ConnectionTable<LoginConnection> connections_;
  bool stopping_ = false;
};

}  // namespace yubin::mrad
