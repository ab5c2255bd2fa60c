// Tests of the msad daemon object on a real event loop, with a scripted
// mtad on a Unix socket and raw SMTP clients on 127.0.0.1: which addresses
// count as loopback for the AUTH-without-TLS exception, the exception on and
// off, the per-user rate limit (a failed handoff does not count), mtad
// closing the handoff in the middle of a message (451 at the end of the
// data, the session goes on), the per-address connection limit, and stop()
// with sessions open.
#include "msad/msad.hpp"

#include <catch2/catch.hpp>
#include <csignal>
#include <map>

#include "auth/password.hpp"
#include "auth/test_util.hpp"
#include "base/fs.hpp"
#include "base/strings.hpp"
#include "event/event_testing.hpp"
#include "sys/listen.hpp"

using namespace yubin;
using namespace yubin::msad;
namespace et = yubin::event::testing;

namespace {

class FakeContext : public service::Context {
 public:
  FakeContext(event_base* base, config::Config cfg) : base_(base), cfg_(std::move(cfg)) {}
  event_base* base() override { return base_; }
  const config::Config& config() const override { return cfg_; }
  std::vector<UniqueFd> takeListeners(std::string_view key) override {
    auto it = listeners.find(std::string(key));
    if (it == listeners.end()) return {};
    std::vector<UniqueFd> out = std::move(it->second);
    listeners.erase(it);
    return out;
  }
  tls::ServerContext* tls() override { return nullptr; }
  bool stopping() const override { return false; }
  void exit() override { exited = true; }

  std::map<std::string, std::vector<UniqueFd>> listeners;
  bool exited = false;

 private:
  event_base* base_;
  config::Config cfg_;
};

// One scripted mtad session: answers the handoff's commands, keeps the
// content, and either queues it (250) or closes after closeAfter bytes of it.
struct MtadSession {
  et::Conn conn;
  size_t used = 0;
  bool inData = false;
  std::string content;
};

// The last complete reply in `buf` from `*offset` on, or "" if none yet:
// its final line ("250 2.0.0 Ok").
std::string nextReply(const std::string& buf, size_t* offset) {
  size_t pos = *offset;
  size_t lf;
  while ((lf = buf.find("\r\n", pos)) != std::string::npos) {
    std::string line = buf.substr(pos, lf - pos);
    pos = lf + 2;
    if (line.size() >= 4 && line[3] == ' ') {
      *offset = pos;
      return line;
    }
  }
  return {};
}

struct Site {
  auth::testing::TempDir dir;
  yubin::event::EventBase base = yubin::event::newEventBase().value();
  uint16_t port = 0;
  std::unique_ptr<FakeContext> ctx;
  std::unique_ptr<Msad> msad;
  std::unique_ptr<yubin::event::Listener> mtadListener;
  std::vector<std::unique_ptr<MtadSession>> mtad;
  size_t closeAfter = 0;  // >0: the next mtad session closes after this much content
  std::vector<std::string> queued;

  explicit Site(const std::string& msadKeys) {
    ::signal(SIGPIPE, SIG_IGN);  // as the service skeleton does for the daemon
    auto hash = *auth::hashPassword("pw", auth::PasswordCost::minimum());
    REQUIRE(atomicWrite(dir.file("users"), "alice@example.org:" + hash + ":::maildir\n", 0640).ok());
    REQUIRE(atomicWrite(dir.file("aliases"), "", 0640).ok());
    auto cfg = config::Config::parse("version = 1\n[global]\nhostname = msa.test\n"
                                     "domains = example.org\nusers_file = " +
                                         dir.file("users") + "\naliases_file = " +
                                         dir.file("aliases") + "\n[msad]\nmtad_socket = " +
                                         dir.file("submission") +
                                         "\nauth_delay_ms = 0\nauth_workers = 1\n" + msadKeys,
                                     "test.conf");
    REQUIRE(cfg.ok());
    ctx = std::make_unique<FakeContext>(base.get(), std::move(*cfg));
    ctx->listeners["listen"].push_back(et::listenLoopback(&port));
    msad = std::make_unique<Msad>();
    REQUIRE(msad->start(*ctx).ok());
    listenMtad();
  }
  ~Site() {
    msad.reset();
    mtad.clear();
  }

  void listenMtad() {
    auto fd = sys::bindUnix(dir.file("submission"), 0600, static_cast<gid_t>(-1));
    REQUIRE(fd.ok());
    auto l = yubin::event::Listener::create(
        base.get(), std::move(*fd),
        [this](UniqueFd c, const yubin::event::Peer&) { acceptMtad(std::move(c)); });
    REQUIRE(l.ok());
    mtadListener = std::move(*l);
  }

  void acceptMtad(UniqueFd fd) {
    auto s = std::make_unique<MtadSession>();
    MtadSession* m = s.get();
    size_t closeAt = std::exchange(closeAfter, 0);
    m->conn.attach(yubin::event::newSocketBufferevent(base.get(), std::move(fd)).value());
    m->conn.onRead = [this, m, closeAt](et::Conn& c) {
      while (m->used < c.received.size() && c.bev) {
        if (m->inData) {
          m->content.append(c.received, m->used, std::string::npos);
          m->used = c.received.size();
          if (closeAt && m->content.size() >= closeAt) {
            c.bev.reset();  // killed in the middle of the message
            return;
          }
          if (m->content.size() >= 5 && m->content.ends_with("\r\n.\r\n")) {
            m->inData = false;
            queued.push_back(m->content);
            c.write("250 2.0.0 Ok: queued as Q" + std::to_string(queued.size()) + "\r\n");
          }
          return;
        }
        size_t lf = c.received.find("\r\n", m->used);
        if (lf == std::string::npos) return;
        std::string line = c.received.substr(m->used, lf - m->used);
        m->used = lf + 2;
        if (line.starts_with("EHLO")) {
          c.write("250-mtad\r\n250 PIPELINING\r\n");
        } else if (line.starts_with("MAIL") || line.starts_with("RCPT")) {
          c.write("250 2.1.0 Ok\r\n");
        } else if (line == "DATA") {
          c.write("354 go\r\n");
          m->inData = true;
          m->content.clear();
        } else if (line == "QUIT") {
          c.write("221 bye\r\n");
        }
      }
    };
    m->conn.write("220 mtad ESMTP\r\n");
    mtad.push_back(std::move(s));
  }

  // Runs the loop until done() (called once per turn) returns true.
  template <class Pred>
  void runUntil(Pred done) {
    et::Watchdog dog(base.get(), std::chrono::seconds(20));
    bool ok = false;
    while (!(ok = done()) && !dog.fired()) event_base_loop(base.get(), EVLOOP_ONCE);
    REQUIRE(ok);
  }
};

struct Client {
  Site& site;
  et::Conn conn;
  size_t offset = 0;

  explicit Client(Site& s) : site(s) {
    conn.attach(
        yubin::event::newSocketBufferevent(s.base.get(), et::connectLoopback(s.port)).value());
  }
  // The final line of the next reply.
  std::string reply() {
    std::string r;
    site.runUntil([&] {
      r = nextReply(conn.received, &offset);
      return !r.empty() || (conn.events & (BEV_EVENT_EOF | BEV_EVENT_ERROR));
    });
    return r;
  }
  std::string cmd(const std::string& line) {
    conn.write(line + "\r\n");
    return reply();
  }
  void login() {
    REQUIRE(reply().starts_with("220 "));
    REQUIRE(cmd("EHLO laptop.example").starts_with("250 "));
    REQUIRE(cmd("AUTH PLAIN " + base64Encode(std::string("\0alice@example.org\0pw", 21))) ==
            "235 2.7.0 Authentication successful");
  }
  // One message to a remote recipient; the reply to its end of data.
  std::string send(const std::string& body) {
    if (!cmd("MAIL FROM:<alice@example.org>").starts_with("250 ")) return "MAIL refused";
    if (!cmd("RCPT TO:<bob@remote.example>").starts_with("250 ")) return "RCPT refused";
    if (!cmd("DATA").starts_with("354 ")) return "DATA refused";
    conn.write("Subject: t\r\n\r\n" + body + ".\r\n");
    return reply();
  }
};

}  // namespace

TEST_CASE("isLoopback: only 127.0.0.0/8 and ::1") {
  struct Case {
    const char* ip;
    bool loopback;
  };
  const Case cases[] = {
      {"127.0.0.1", true},       {"127.255.255.254", true}, {"127.1.2.3", true},
      {"::1", true},             {"0:0:0:0:0:0:0:1", true}, {"128.0.0.1", false},
      {"126.255.255.255", false}, {"10.0.0.1", false},      {"::", false},
      {"::2", false},            {"::ffff:127.0.0.1", false},  // mapped: not ::1
      {"", false},               {"127.0.0.1 ", false},     {"127.0.0.1.example", false},
      {"localhost", false},      {"127.1", false},          {"unix", false},
  };
  for (const auto& c : cases) {
    INFO(c.ip);
    CHECK(isLoopback(c.ip) == c.loopback);
  }
}

TEST_CASE("msad: AUTH without TLS from loopback only when allowed") {
  SECTION("loopback_plaintext = yes") {
    Site site("loopback_plaintext = yes\n");
    Client c(site);
    REQUIRE(c.reply().starts_with("220 "));
    c.conn.write("EHLO laptop.example\r\n");
    REQUIRE(c.reply().starts_with("250 "));
    CHECK(c.conn.received.find("AUTH PLAIN LOGIN") != std::string::npos);
    CHECK(c.cmd("AUTH PLAIN " + base64Encode(std::string("\0alice@example.org\0no", 21))) ==
          "535 5.7.8 Error: authentication failed");
    CHECK(c.cmd("AUTH PLAIN " + base64Encode(std::string("\0alice@example.org\0pw", 21))) ==
          "235 2.7.0 Authentication successful");
  }
  SECTION("loopback_plaintext = no") {
    Site site("loopback_plaintext = no\n");
    Client c(site);
    REQUIRE(c.reply().starts_with("220 "));
    REQUIRE(c.cmd("EHLO laptop.example").starts_with("250 "));
    CHECK(c.conn.received.find("AUTH") == std::string::npos);
    CHECK(c.cmd("AUTH PLAIN " + base64Encode(std::string("\0alice@example.org\0pw", 21)))
              .starts_with("538 5.7.11 "));
    CHECK(c.cmd("MAIL FROM:<alice@example.org>").starts_with("530 5.7.0 "));
  }
}

TEST_CASE("msad: mtad closing mid-message gives 451 at the end, and does not count") {
  Site site("loopback_plaintext = yes\nrate_messages = 1\n");
  Client c(site);
  c.login();
  // 2 MB against an mtad that closes after 64 KiB: the rest is read from the
  // client and dropped, then the client hears why.
  std::string big;
  for (int i = 0; i < 20000; ++i) big += std::string(100, 'x') + "\r\n";
  site.closeAfter = 64 * 1024;
  CHECK(c.send(big) == "451 4.3.0 Error: local error in processing, try again later");
  CHECK(site.queued.empty());
  // The session goes on; the failed message did not use the hourly allowance.
  CHECK(c.cmd("RSET").starts_with("250 "));
  CHECK(c.send("one\r\n") == "250 2.0.0 Ok: queued as Q1");
  REQUIRE(site.queued.size() == 1);
  CHECK(site.queued[0].find("\r\nSubject: t\r\n") != std::string::npos);
  CHECK(site.queued[0].find("\r\nMessage-ID: <") != std::string::npos);
  CHECK(site.queued[0].ends_with("\r\n\r\none\r\n.\r\n"));
  CHECK(site.queued[0].starts_with("Received: from laptop.example ([127.0.0.1])"));
  // rate_messages = 1: the next one waits.
  CHECK(c.cmd("MAIL FROM:<alice@example.org>") ==
        "450 4.7.1 Error: sending rate limit exceeded, try again later");
  CHECK(site.queued.size() == 1);
}

TEST_CASE("msad: connections per address, and stop() with sessions open") {
  Site site("loopback_plaintext = yes\nmax_connections_per_ip = 2\n");
  Client a(site), b(site);
  REQUIRE(a.reply().starts_with("220 "));
  REQUIRE(b.reply().starts_with("220 "));
  CHECK(site.msad->sessions() == 2);
  {
    Client refused(site);
    CHECK(refused.reply().starts_with("421 4.7.0 "));
    site.runUntil([&] { return site.msad->sessions() == 2; });
  }
  CHECK(a.cmd("QUIT").starts_with("221 "));
  site.runUntil([&] { return site.msad->sessions() == 1; });
  Client again(site);
  CHECK(again.reply().starts_with("220 "));
  CHECK(site.msad->sessions() == 2);

  site.msad->stop(*site.ctx);
  CHECK_FALSE(site.ctx->exited);
  CHECK(b.reply().starts_with("421 4.3.2 "));
  CHECK(again.reply().starts_with("421 4.3.2 "));
  site.runUntil([&] { return site.ctx->exited; });
  CHECK(site.msad->sessions() == 0);
}
