// mtad's remote delivery: takes one message's recipients in one domain (a
// "job") and delivers them over SMTP. Finds the hosts (MX, then A/AAAA, or
// the relay host), tries them in order, applies the TLS policy of the
// domain, keeps connections open for the next message to the same
// destination, and bounds the connections (per destination and in all).
// The result is one reply per recipient, real or made up locally (a 4xx
// for "try later", a 5xx for a domain that does not exist or has a null
// MX); the queue manager turns them into recipient states.
//
// The connection cache (Postfix: smtp_connection_cache_on_demand,
// smtp_connection_cache_time_limit): a connection whose transaction ended
// with the server's final reply (else RSET goes first on its next use) and
// for whose destination no message waits stays open and idle for
// connection.idleTimeout ([mtad] remote_connection_cache_time, 2 s) and
// takes the next message for that destination. It keeps its slot (it
// counts against both limits) but gives it up at once to a destination
// that waits with no connection when every slot is taken; a 421 or a close
// by the server while idle just ends it (logged at debug level); stop()
// closes it.
//
// Routing decisions (RFC 5321 §5.1, RFC 7505):
//   MX NXDOMAIN           -> 550 5.1.2 for every recipient (bounce)
//   null MX               -> 556 5.1.10 (bounce)
//   MX lookup TempFail    -> 451 4.4.3 (deferred)
//   no MX (NoData)        -> the domain's own A/AAAA (implicit MX); none
//                            either -> 550 5.1.2
//   a host: connect failure, 4xx/5xx greeting or EHLO, TLS failure, AUTH
//   failure -> the next address, then the next host; when all fail, the
//   last reason as a 4xx (deferred). The rest of the jobs waiting for the
//   same destination get the same answer instead of trying again each.
// TLS policy per destination: none (never STARTTLS), may (STARTTLS when
// offered, no certificate check; a failed handshake is retried once in
// clear on the same address, as Postfix does, since the policy accepts
// clear), encrypt (TLS required, not verified), verify (TLS required,
// chain checked against the system CA store plus [mtad] tls_ca_file, name
// checked against the MX host name).
//
// Trust: DNS answers and SMTP servers are untrusted; the relay credentials
// file must be readable by mtad's user only. Runs in mtad as yubin-mta.
// Standards: RFC 5321 §5.1 and §4.5.4.1, RFC 7505, RFC 3207, RFC 4954,
// RFC 8314 (implicit TLS to a relay).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "dns/resolver.hpp"
#include "event/event.hpp"
#include "mtad/smtp_connection.hpp"
#include "tls/tls.hpp"

namespace yubin::mtad {

enum class TlsPolicy : uint8_t { None, May, Encrypt, Verify };
std::optional<TlsPolicy> parseTlsPolicy(std::string_view s);
const char* tlsPolicyName(TlsPolicy p);

// "example.com=verify" items (the [mtad] tls_policy list); domains
// lowercase. An Error names the bad item.
Result<std::map<std::string, TlsPolicy>> parseTlsPolicies(const std::vector<std::string>& items);

// [mtad] relay_host: "host", "host:port", "[host]:port", "[2001:db8::1]:587",
// "192.0.2.1:25". Brackets (or an IP address) mean: no MX lookup.
struct RelayHost {
  std::string host;
  uint16_t port = 25;
  bool mxLookup = true;
};
Result<RelayHost> parseRelayHost(std::string_view s, uint16_t defaultPort);

enum class RelayTls : uint8_t { StartTls, Implicit, None };

// The relay credentials file: one line "user password" (the password is
// the rest of the line); '#' comments and empty lines are skipped. The file
// must be a regular file without group or other permissions.
Result<SmtpCredentials> readAuthFile(const std::string& path);

struct RemoteSettings {
  std::string helo = "localhost";
  uint16_t port = 25;
  size_t maxConnections = 100;
  size_t maxPerDestination = 10;
  TlsPolicy tlsPolicy = TlsPolicy::May;
  std::map<std::string, TlsPolicy> tlsPolicies;  // per domain
  std::string tlsCaFile;                         // in addition to the system store
  std::optional<RelayHost> relay;
  RelayTls relayTls = RelayTls::StartTls;
  bool relayVerify = true;
  std::string relayAuthFile;  // empty: no AUTH
  dns::ResolverSettings dns;
  // Addresses tried for one job before giving up for now.
  size_t maxAddresses = 10;
  SmtpConnectionSettings connection;  // timeouts; client.helo and TLS are set per connection
};

struct RemoteJob {
  std::string domain;  // lowercase
  SmtpMessage message;
  const queue::QueueFile* file = nullptr;  // must outlive the job
  std::string logId;
};

struct RemoteResult {
  std::vector<smtp::ClientReply> replies;  // one per message recipient
  bool dsnPassed = false;                  // the accepting server took NOTIFY/ORCPT
  std::string host;                        // who answered ("mx.example.net[192.0.2.1]:25")
  bool notTried = false;  // stop(): the job never had a connection; nothing was sent
};

class RemoteDelivery {
 public:
  using Done = std::function<void(RemoteResult)>;

  static Result<std::unique_ptr<RemoteDelivery>> create(event_base* base, RemoteSettings settings);
  ~RemoteDelivery();
  RemoteDelivery(const RemoteDelivery&) = delete;
  RemoteDelivery& operator=(const RemoteDelivery&) = delete;

  // Delivers later; `done` runs from the loop, never inside deliver().
  void deliver(RemoteJob job, Done done);
  // Closes idle connections; running jobs go on.
  void closeIdle();
  // mtad stops: idle connections close, and so does each connection whose
  // transaction ends from now on; jobs still waiting for a connection end
  // at once with notTried (from the loop). Jobs under way (DNS, connect,
  // a transaction) go on to their end.
  void stop();
  size_t jobs() const { return jobs_.size(); }
  // No job running and no result waiting to be reported.
  bool idle() const { return jobs_.empty() && reports_.empty(); }
  size_t connections() const { return conns_.size(); }

 private:
  struct Job;
  struct Dest;
  struct Conn;
  struct Attempt;

  RemoteDelivery(event_base* base, RemoteSettings settings);
  std::string destKey(const std::string& domain) const;
  void kick();
  void onKick();
  void dispatch(const std::string& key);
  void dispatchAll();
  void startAttempt(Dest& dest, uint64_t jobId);
  void resolveHosts(uint64_t attemptId);
  void nextHost(uint64_t attemptId);
  void nextAddress(uint64_t attemptId);
  void attemptFailed(uint64_t attemptId, const smtp::ClientReply& why, bool wholeDestination);
  void runJob(Conn& conn, uint64_t jobId);
  void jobDone(uint64_t jobId, RemoteResult result);
  // Ends a job that never got a connection (stop): notTried.
  void notTried(uint64_t jobId);
  void connectionIdle(Conn& conn);
  void dropConnection(SmtpConnection* c);
  bool closeAnIdleConnection();
  // Another destination waits with no connection while every slot is taken.
  bool othersStarve(const std::string& key) const;
  // Messages a connection sends in a row before it gives its slot up to a
  // destination that has none (othersStarve).
  static constexpr size_t kReuseBurst = 100;
  SmtpConnectionSettings connectionSettings(const Dest& dest, const std::string& host,
                                            bool plain, std::string* error) const;
  TlsPolicy policyFor(const std::string& key) const;
  Attempt* attempt(uint64_t id);

  event_base* base_;
  RemoteSettings settings_;
  std::unique_ptr<dns::Resolver> resolver_;
  tls::SslCtxPtr plainCtx_;   // TLS without verification
  tls::SslCtxPtr verifyCtx_;  // system store + tls_ca_file
  std::mt19937 rng_;

  uint64_t nextId_ = 1;
  std::map<uint64_t, std::unique_ptr<Job>> jobs_;
  std::map<std::string, std::unique_ptr<Dest>> dests_;
  std::map<SmtpConnection*, std::unique_ptr<Conn>> conns_;
  std::map<uint64_t, std::unique_ptr<Attempt>> attempts_;
  std::vector<std::unique_ptr<SmtpConnection>> dead_;  // destroyed from the loop
  bool stopping_ = false;
  std::deque<std::pair<Done, RemoteResult>> reports_;  // job results, run from the loop
  event::Timer kicker_;  // from the loop: reap, report, dispatch
};

}  // namespace yubin::mtad
