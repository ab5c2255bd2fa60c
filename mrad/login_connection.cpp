// One connection in the login process; see login_connection.hpp.
#include "mrad/login_connection.hpp"

#include <event2/buffer.h>
#include <sys/socket.h>

#include <cstring>

#include "base/log.hpp"
#include "mrad/handoff.hpp"
#include "mrad/imap/login_session.hpp"
#include "mrad/pop3/login_session.hpp"
#include "sasl/sasl.hpp"
#include "tls/tls.hpp"

namespace yubin::mrad {

// What the connection needs of a login state machine; the two sessions
// have the same shape and differ in their refusals and their tag.
class LoginProtocol {
 public:
  enum class Event { None, StartTls, CheckPassword, AuthFailed, LoggedIn, Close };
  enum class Refusal { LockedOut, Busy, Unavailable };
  virtual ~LoginProtocol() = default;
  virtual void start() = 0;
  virtual void feed(std::string_view bytes) = 0;
  virtual std::string takeOutput() = 0;
  virtual bool hasOutput() const = 0;
  virtual Event event() const = 0;
  virtual void setMechanisms(std::vector<std::string> m) = 0;
  virtual const std::string& user() const = 0;
  virtual const std::string& password() const = 0;
  virtual void passwordChecked(bool ok, const std::string& canonical) = 0;
  virtual void resume() = 0;
  virtual const std::string& failedUser() const = 0;
  virtual void tlsStarted() = 0;
  virtual const std::string& authenticated() const = 0;
  virtual std::string takePendingInput() = 0;
  virtual const std::string& method() const = 0;
  virtual std::string tag() const = 0;
  virtual void refuse(Refusal r) = 0;
};

namespace {

template <typename S>
class SessionAdapter : public LoginProtocol {
 public:
  explicit SessionAdapter(std::unique_ptr<S> s) : s_(std::move(s)) {}
  void start() override { s_->start(); }
  void feed(std::string_view b) override { s_->feed(b); }
  std::string takeOutput() override { return s_->takeOutput(); }
  bool hasOutput() const override { return s_->hasOutput(); }
  Event event() const override { return static_cast<Event>(s_->event()); }
  void setMechanisms(std::vector<std::string> m) override { s_->setMechanisms(std::move(m)); }
  const std::string& user() const override { return s_->user(); }
  const std::string& password() const override { return s_->password(); }
  void passwordChecked(bool ok, const std::string& c) override { s_->passwordChecked(ok, c); }
  void resume() override { s_->resume(); }
  const std::string& failedUser() const override { return s_->failedUser(); }
  void tlsStarted() override { s_->tlsStarted(); }
  const std::string& authenticated() const override { return s_->authenticated(); }
  std::string takePendingInput() override { return s_->takePendingInput(); }
  const std::string& method() const override { return s_->method(); }
  std::string tag() const override;
  void refuse(Refusal r) override;

 private:
  std::unique_ptr<S> s_;
};

// The adapter casts between the event enums: keep them in step.
static_assert(int(LoginProtocol::Event::Close) == int(LoginProtocol::Event::Close) &&
              int(LoginProtocol::Event::LoggedIn) == int(LoginProtocol::Event::LoggedIn) &&
              int(LoginProtocol::Event::StartTls) == int(LoginProtocol::Event::StartTls));
static_assert(int(imap::LoginSession::Event::Close) == int(LoginProtocol::Event::Close) &&
              int(imap::LoginSession::Event::LoggedIn) == int(LoginProtocol::Event::LoggedIn) &&
              int(imap::LoginSession::Event::StartTls) == int(LoginProtocol::Event::StartTls) &&
              int(imap::LoginSession::Event::AuthFailed) == int(LoginProtocol::Event::AuthFailed) &&
              int(imap::LoginSession::Event::CheckPassword) ==
                  int(LoginProtocol::Event::CheckPassword));

template <>
std::string SessionAdapter<pop3::LoginSession>::tag() const {
  return {};
}
template <>
void SessionAdapter<pop3::LoginSession>::refuse(Refusal r) {
  switch (r) {
    case Refusal::LockedOut:
      return s_->refuse(pop3::errCode(pop3::kAuth, "Too many failed logins, try again later"));
    case Refusal::Busy:
      return s_->refuse(pop3::errCode(pop3::kSysTemp, "Server busy, try again later"));
    case Refusal::Unavailable:
      return s_->refuse(pop3::errCode(pop3::kSysTemp, "Mailbox unavailable, try again later"));
  }
}
template <>
std::string SessionAdapter<imap::LoginSession>::tag() const {
  return s_->loginTag();
}
template <>
void SessionAdapter<imap::LoginSession>::refuse(Refusal r) {
  switch (r) {
    case Refusal::LockedOut:
      return s_->refuse("AUTHENTICATIONFAILED", "Too many failed logins, try again later");
    case Refusal::Busy:
      return s_->refuse("UNAVAILABLE", "Server busy, try again later");
    case Refusal::Unavailable:
      return s_->refuse("UNAVAILABLE", "Mailbox unavailable, try again later");
  }
}

// What the connection itself says, in the protocol's words.
const char* idleMessage(Protocol p) {
  return p == Protocol::Imap ? "* BYE Disconnected for inactivity\r\n"
                             : "-ERR Disconnected for inactivity\r\n";
}
const char* shutdownMessage(Protocol p) {
  return p == Protocol::Imap ? "* BYE [UNAVAILABLE] Server shutting down\r\n"
                             : "-ERR [SYS/TEMP] Server shutting down\r\n";
}

// The proxy stops reading one side while the other side's output holds
// this much, and resumes under half of it: bounded memory per session.
constexpr size_t kProxyHigh = 64 * 1024;
// Input taken from the client before login (the session's line buffer is
// bounded by its line limit; this bounds what waits in the bufferevent).
constexpr size_t kInputHigh = 16 * 1024;

bool isLoopback(const std::string& ip) { return ip.rfind("127.", 0) == 0 || ip == "::1"; }

// sasl::Exchange as the LoginSession drives it.
class SaslAdapter final : public pop3::SaslExchange {
 public:
  explicit SaslAdapter(std::unique_ptr<sasl::Exchange> ex) : ex_(std::move(ex)) {}
  pop3::SaslStep begin(std::optional<std::string_view> ir) override { return map(ex_->begin(ir)); }
  pop3::SaslStep respond(std::string_view r) override { return map(ex_->respond(r)); }
  pop3::SaslStep passwordChecked(bool ok) override { return map(ex_->passwordChecked(ok)); }

 private:
  static pop3::SaslStep map(sasl::Step s) {
    pop3::SaslStep o;
    switch (s.kind) {
      case sasl::Step::Kind::Challenge: o.kind = pop3::SaslStep::Kind::Challenge; break;
      case sasl::Step::Kind::CheckPassword: o.kind = pop3::SaslStep::Kind::CheckPassword; break;
      case sasl::Step::Kind::Success: o.kind = pop3::SaslStep::Kind::Success; break;
      case sasl::Step::Kind::Failure: o.kind = pop3::SaslStep::Kind::Failure; break;
    }
    o.challenge = std::move(s.challenge);
    o.user = std::move(s.user);
    o.password = std::move(s.password);
    o.authenticated = std::move(s.authenticated);
    o.serverFinal = std::move(s.serverFinal);
    o.reason = std::move(s.reason);
    return o;
  }
  std::unique_ptr<sasl::Exchange> ex_;
};

}  // namespace

LoginConnection::LoginConnection(Mrad& d, const LoginSettings& s, const event::Peer& peer,
                                 std::string id, bool implicitTls, Protocol protocol)
    : d_(d),
      settings_(s),
      peer_(peer),
      id_(std::move(id)),
      implicitTls_(implicitTls),
      protocol_(protocol),
      idle_(d.base(),
            [this] {
              YLOG_INFO("idle timeout before login session=%s ip=%s", id_.c_str(),
                        peer_.ip.c_str());
              bufferevent_write(bev_.get(), idleMessage(protocol_),
                                std::strlen(idleMessage(protocol_)));
              closeAfterFlush();
            }),
      delay_(d.base(), [this] { checkPassword(); }),
      linger_(d.base(),
              [this] {
                YLOG_INFO("closing linger expired, answers unread session=%s ip=%s unsent=%zu",
                          id_.c_str(), peer_.ip.c_str(), pendingOutput());
                done("linger expired");
              }),
      reaper_(d.base(), [this] { d_.closed(this); }) {}

LoginConnection::~LoginConnection() {
  if (ticket_) d_.checker().cancel(*ticket_);
  if (lowerDrained_ && bev_)
    if (bufferevent* lower = bufferevent_get_underlying(bev_.get()))
      evbuffer_remove_cb_entry(bufferevent_get_output(lower), lowerDrained_);
}

void LoginConnection::setCallbacks() {
  bufferevent_setcb(bev_.get(), &LoginConnection::onRead, &LoginConnection::onWrite,
                    &LoginConnection::onEvent, this);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, kInputHigh);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  // Under a STARTTLS filter the TLS layer moves the answers into the
  // socket's bufferevent below it without limit unless that one has a high
  // write mark: with it, they wait in bev_'s output, where the feeding
  // bound (kProxyHigh) sees them, and the filter's write callback resumes.
  if (bufferevent* lower = bufferevent_get_underlying(bev_.get()))
    bufferevent_setwatermark(lower, EV_WRITE, 0, kProxyHigh);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);
}

Status LoginConnection::start(UniqueFd fd, const std::optional<std::string>& refusal) {
  if (implicitTls_) {
    if (!d_.tls()) return Error{"no TLS context"};
    auto ssl = d_.tls()->newSsl();
    if (!ssl) return ssl.error();
    auto b = event::newTlsBufferevent(d_.base(), std::move(fd), std::move(*ssl),
                                      event::TlsRole::Server);
    if (!b) return b.error();
    bev_ = std::move(*b);
    tlsActive_ = true;
  } else {
    auto b = event::newSocketBufferevent(d_.base(), std::move(fd));
    if (!b) return b.error();
    bev_ = std::move(*b);
  }
  setCallbacks();
  if (refusal) {
    bufferevent_write(bev_.get(), refusal->data(), refusal->size());
    closeAfterFlush();
    return {};
  }
  // Over implicit TLS an IMAP greeting waits for the handshake: its
  // capabilities name SCRAM-SHA-256-PLUS only once channel binding data
  // exists.
  if (!(implicitTls_ && protocol_ == Protocol::Imap)) startSession();
  idle_.arm(protocol_ == Protocol::Imap ? settings_.imapLoginTimeout : settings_.idleTimeout);
  return {};
}

void LoginConnection::startSession() {
  auto sasl = [this](std::string_view mech) -> std::unique_ptr<pop3::SaslExchange> {
    sasl::Options o;
    o.tls = tlsActive_;
    o.tlsExporter = tlsExporter_;
    auto ex = sasl::Exchange::start(mech, d_.directory(), o);
    if (!ex) return nullptr;
    return std::make_unique<SaslAdapter>(std::move(*ex));
  };
  const bool tlsAvailable = d_.tls() != nullptr && !implicitTls_;
  const bool plaintextAllowed = settings_.loopbackPlaintext && isLoopback(peer_.ip);
  if (protocol_ == Protocol::Imap) {
    imap::LoginSettings ls;
    ls.tlsAvailable = tlsAvailable;
    ls.tlsActive = tlsActive_;
    ls.plaintextAllowed = plaintextAllowed;
    session_ = std::make_unique<SessionAdapter<imap::LoginSession>>(
        std::make_unique<imap::LoginSession>(ls, sasl));
  } else {
    pop3::LoginSettings ls;
    ls.greeting = "Yubin POP3 server ready";
    ls.tlsAvailable = tlsAvailable;
    ls.tlsActive = tlsActive_;
    ls.plaintextAllowed = plaintextAllowed;
    session_ = std::make_unique<SessionAdapter<pop3::LoginSession>>(
        std::make_unique<pop3::LoginSession>(ls, sasl));
  }
  refreshMechanisms();
  session_->start();
  flush();
}

void LoginConnection::refreshMechanisms() {
  if (!session_) return;
  tlsExporter_.clear();
  if (tlsActive_) {
    if (SSL* ssl = event::sslOf(bev_.get()); ssl && SSL_is_init_finished(ssl)) {
      if (auto e = tls::channelBindingExporter(ssl)) tlsExporter_ = *e;
    }
  }
  sasl::Options o;
  o.tls = tlsActive_;
  o.tlsExporter = tlsExporter_;
  session_->setMechanisms(sasl::mechanisms(o));
}

void LoginConnection::flush() {
  if (!session_ || !session_->hasOutput()) return;
  std::string o = session_->takeOutput();
  bufferevent_write(bev_.get(), o.data(), o.size());
  // The idle time runs from the last answer, not from the last byte read:
  // a client that drips an endless line a byte at a time (slow-loris) is
  // not idle by the byte, but it gets no answer either.
  if (!closing_ && !proxying_)
    idle_.arm(protocol_ == Protocol::Imap ? settings_.imapLoginTimeout : settings_.idleTimeout);
}

void LoginConnection::step() {
  while (session_) {
    switch (session_->event()) {
      case LoginProtocol::Event::None:
        return;
      case LoginProtocol::Event::StartTls: {
        flush();
        auto ssl = d_.tls() ? d_.tls()->newSsl() : Result<tls::SslPtr>(Error{"no TLS context"});
        if (!ssl) {
          YLOG_ERROR("STLS failed session=%s error=\"%s\"", id_.c_str(),
                     ssl.error().message.c_str());
          return done("tls error");
        }
        auto b = event::startTls(std::move(bev_), std::move(*ssl), event::TlsRole::Server);
        if (!b) {
          YLOG_ERROR("STLS failed session=%s error=\"%s\"", id_.c_str(), b.error().message.c_str());
          return done("tls error");
        }
        bev_ = std::move(*b);
        setCallbacks();
        tlsActive_ = true;
        session_->tlsStarted();
        break;
      }
      case LoginProtocol::Event::CheckPassword: {
        // The client waits for us now: its idle time starts again with
        // the answer (flush).
        idle_.cancel();
        auto now = sasl::Throttle::Clock::now();
        auto wait = d_.throttle().delay(peer_.ip, session_->user(), now);
        if (wait.count() > 0)
          delay_.arm(wait);
        else
          checkPassword();
        return;
      }
      case LoginProtocol::Event::AuthFailed: {
        auto now = sasl::Throttle::Clock::now();
        d_.throttle().failure(peer_.ip, session_->failedUser(), now);
        YLOG_NOTICE("authentication failed session=%s ip=%s user=\"%s\" method=%s",
                    id_.c_str(), peer_.ip.c_str(), session_->failedUser().c_str(),
                    session_->method().c_str());
        if (d_.throttle().locked(peer_.ip, session_->failedUser(), now)) {
          session_->refuse(LoginProtocol::Refusal::LockedOut);
        } else {
          session_->resume();
        }
        break;
      }
      case LoginProtocol::Event::LoggedIn:
        return handOver();
      case LoginProtocol::Event::Close:
        flush();
        return closeAfterFlush();
    }
    flush();
  }
}

void LoginConnection::checkPassword() {
  if (dead_ || !session_) return;
  auto now = sasl::Throttle::Clock::now();
  if (d_.throttle().locked(peer_.ip, session_->user(), now)) {
    YLOG_NOTICE("login refused, locked out session=%s ip=%s user=\"%s\"", id_.c_str(),
                peer_.ip.c_str(), session_->user().c_str());
    session_->refuse(LoginProtocol::Refusal::LockedOut);
    flush();
    return step();
  }
  ticket_ = d_.checker().check(session_->user(), session_->password(), [this](bool ok) {
    ticket_.reset();
    std::string canonical;
    if (ok) {
      auto u = d_.directory().findUser(session_->user());
      if (u)
        canonical = u->address;
      else
        ok = false;  // removed meanwhile
    }
    session_->passwordChecked(ok, canonical);
    flush();
    step();
  });
  if (!ticket_) {
    session_->refuse(LoginProtocol::Refusal::Busy);
    flush();
    step();
  }
}

void LoginConnection::handOver() {
  const bool direct = !tlsActive_;
  if (direct && evbuffer_get_length(bufferevent_get_output(bev_.get())) > 0) {
    // The client's socket leaves this process: what is queued for it goes
    // out first (onWrite comes back here once it has), and its input waits
    // in the bufferevent (taken below).
    if (!handOverWaiting_)
      YLOG_INFO("hand-over waits for the client to read session=%s queued=%zu", id_.c_str(),
                evbuffer_get_length(bufferevent_get_output(bev_.get())));
    handOverWaiting_ = true;
    bufferevent_disable(bev_.get(), EV_READ);
    // The password check stopped the idle timer and the login's answer is
    // the mail process's: a client that never reads what it was sent
    // before is timed out (then lingered) from here.
    if (!idle_.pending())
      idle_.arm(protocol_ == Protocol::Imap ? settings_.imapLoginTimeout : settings_.idleTimeout);
    return;
  }
  handOverWaiting_ = false;
  user_ = session_->authenticated();
  d_.throttle().success(peer_.ip, user_);
  auto fail = [this](const std::string& why) {
    YLOG_ERROR("hand-over failed session=%s user=%s error=\"%s\"", id_.c_str(), user_.c_str(),
               why.c_str());
    session_->refuse(LoginProtocol::Refusal::Unavailable);
    flush();
    closeAfterFlush();
  };
  auto u = d_.directory().findUser(user_);
  if (!u) return fail("user not in the user database");
  Handoff h;
  h.protocol = protocol_;
  h.tag = session_->tag();
  h.user = u->address;
  h.mailbox = u->mailbox;
  h.kind = u->format == auth::MailboxFormat::Mbox ? MailboxKind::Mbox : MailboxKind::Maildir;
  h.sessionId = id_;
  h.clientIp = peer_.ip;
  h.tls = tlsActive_;
  h.method = session_->method();
  h.pending = session_->takePendingInput();
  h.direct = direct;
  evbuffer* in = bufferevent_get_input(bev_.get());
  size_t waiting = evbuffer_get_length(in);
  if (h.pending.size() + waiting > kMaxHandoffRecord / 2) return fail("too much pipelined input");
  if (waiting) {
    size_t old = h.pending.size();
    h.pending.resize(old + waiting);
    evbuffer_remove(in, h.pending.data() + old, waiting);
  }
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0)
    return fail(errnoError("socketpair").message);
  UniqueFd mine(sv[0]), theirs(sv[1]);
  int client = direct ? bufferevent_getfd(bev_.get()) : -1;
  if (auto st = sendHandoff(d_.channelFor(h.user), h, theirs.get(), client); !st)
    return fail(st.error().message);
  theirs.reset();
  auto b = event::newSocketBufferevent(d_.base(), std::move(mine));
  if (!b) {
    // The mail process has the session: dropping the link ends it there.
    YLOG_ERROR("hand-over failed session=%s user=%s error=\"%s\"", id_.c_str(), user_.c_str(),
               b.error().message.c_str());
    return done("hand-over failed");
  }
  local_ = std::move(*b);
  bufferevent_setcb(local_.get(), &LoginConnection::onLocalRead, &LoginConnection::onLocalWrite,
                    &LoginConnection::onLocalEvent, this);
  proxying_ = true;
  idle_.cancel();  // the mail process times idle sessions out from here on
  YLOG_INFO("login session=%s ip=%s user=%s method=%s tls=%s", id_.c_str(), peer_.ip.c_str(),
            user_.c_str(), h.method.c_str(), tlsActive_ ? "yes" : "no");
  session_.reset();
  if (direct) {
    // The mail process owns the client's socket now; this process only
    // waits for the link to close (the session's end).
    direct_ = true;
    bev_.reset();
    bufferevent_enable(local_.get(), EV_READ);
    return;
  }
  bufferevent_setwatermark(local_.get(), EV_WRITE, kProxyHigh / 2, 0);
  // libevent reads 4 KiB at a time by default: a RETR of 10 KB would cost
  // three wake-ups on each side. Move up to 64 KiB per call.
  for (bufferevent* b : {local_.get(), bev_.get()}) {
    bufferevent_set_max_single_read(b, kProxyHigh);
    bufferevent_set_max_single_write(b, kProxyHigh);
  }
  bufferevent_enable(local_.get(), EV_READ | EV_WRITE);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, kProxyHigh / 2, 0);
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, 0);
}

void LoginConnection::closeAfterFlush() {
  if (!bev_) return done("closed");
  closing_ = true;
  idle_.cancel();
  bufferevent_disable(bev_.get(), EV_READ);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
  if (pendingOutput() == 0) return done("closed");
  // Under STARTTLS the last answer waits below the TLS filter once the top
  // buffer is empty: onLowerDrained sees it leave. A client that never
  // reads it is dropped after kCloseLinger (a proxied TLS session that
  // stopped reading: the mail process's idle timeout and linger, then this
  // one for what the proxy still holds).
  if (bufferevent* lower = bufferevent_get_underlying(bev_.get()); lower && !lowerDrained_)
    lowerDrained_ =
        evbuffer_add_cb(bufferevent_get_output(lower), &LoginConnection::onLowerDrained, this);
  if (!linger_.pending()) linger_.arm(kCloseLinger);
}

size_t LoginConnection::pendingOutput() const { return event::pendingOutput(bev_.get()); }

void LoginConnection::onLowerDrained(evbuffer*, const evbuffer_cb_info* info, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (info->n_deleted > 0 && c->closing_ && !c->dead_ && c->pendingOutput() == 0)
    c->done("closed");
}

void LoginConnection::shutdown() {
  if (proxying_ || closing_) return;
  session_.reset();
  bufferevent_write(bev_.get(), shutdownMessage(protocol_), std::strlen(shutdownMessage(protocol_)));
  closeAfterFlush();
}

void LoginConnection::done(const char* reason) {
  if (dead_) return;
  dead_ = true;
  idle_.cancel();
  delay_.cancel();
  linger_.cancel();
  if (bev_) bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
  if (local_) bufferevent_disable(local_.get(), EV_READ | EV_WRITE);
  reaper_.arm(std::chrono::milliseconds(0));
  YLOG_INFO("connection closed session=%s ip=%s user=%s reason=\"%s\"", id_.c_str(),
            peer_.ip.c_str(), user_.empty() ? "-" : user_.c_str(), reason);
}

void LoginConnection::onRead(bufferevent* bev, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (c->dead_) return;
  evbuffer* in = bufferevent_get_input(bev);
  if (c->proxying_) {
    if (!c->local_) return;
    evbuffer_add_buffer(bufferevent_get_output(c->local_.get()), in);
    if (evbuffer_get_length(bufferevent_get_output(c->local_.get())) >= kProxyHigh)
      bufferevent_disable(bev, EV_READ);
    return;
  }
  if (!c->session_ || c->closing_) return;
  char buf[4096];
  // While the session waits (password check, TLS), or while kProxyHigh of
  // answers wait for a client that does not read them, input stays in the
  // bufferevent, whose read watermark bounds it (onWrite resumes).
  while (c->session_ && c->session_->event() == LoginProtocol::Event::None &&
         evbuffer_get_length(in) > 0 && c->pendingOutput() < kProxyHigh) {
    int n = evbuffer_remove(in, buf, sizeof buf);
    if (n <= 0) break;
    c->session_->feed(std::string_view(buf, static_cast<size_t>(n)));
    c->flush();
    c->step();
    if (c->dead_ || c->closing_ || c->proxying_) return;
  }
}

void LoginConnection::onWrite(bufferevent* bev, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (c->dead_) return;
  if (c->handOverWaiting_ && !c->closing_ && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
    return c->handOver();
  // Commands that waited for the answers to drain.
  if (!c->proxying_ && !c->closing_ && c->session_ &&
      evbuffer_get_length(bufferevent_get_input(bev)) > 0)
    return onRead(bev, self);
  if (c->proxying_ && c->local_) bufferevent_enable(c->local_.get(), EV_READ);
  if (c->closing_ && c->pendingOutput() == 0) c->done("closed");
}

void LoginConnection::onEvent(bufferevent*, short what, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (c->dead_) return;
  if (what & BEV_EVENT_CONNECTED) {
    // TLS handshake done: channel binding known.
    if (!c->session_ && !c->proxying_ && !c->closing_)
      c->startSession();
    else
      c->refreshMechanisms();
    return;
  }
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
    if (what & BEV_EVENT_ERROR)
      YLOG_DEBUG("client connection error session=%s error=\"%s\"", c->id_.c_str(),
                 event::bufferevError(c->bev_.get()).c_str());
    c->done(what & BEV_EVENT_EOF ? "client closed" : "connection error");
  }
}

void LoginConnection::onLocalRead(bufferevent* local, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (c->dead_) return;
  if (c->direct_) {
    // Nothing is sent on a direct session's link.
    evbuffer_drain(bufferevent_get_input(local), evbuffer_get_length(bufferevent_get_input(local)));
    return;
  }
  evbuffer* out = bufferevent_get_output(c->bev_.get());
  evbuffer_add_buffer(out, bufferevent_get_input(local));
  if (evbuffer_get_length(out) >= kProxyHigh) bufferevent_disable(local, EV_READ);
}

void LoginConnection::onLocalWrite(bufferevent*, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (c->dead_) return;
  if (!c->closing_ && c->bev_) bufferevent_enable(c->bev_.get(), EV_READ);
}

void LoginConnection::onLocalEvent(bufferevent* local, short what, void* self) {
  auto* c = static_cast<LoginConnection*>(self);
  if (c->dead_) return;
  if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))) return;
  if (c->direct_) {
    c->local_.reset();
    return c->done("session ended");
  }
  // The mail process ended the session: pass on what it sent, then close.
  evbuffer_add_buffer(bufferevent_get_output(c->bev_.get()), bufferevent_get_input(local));
  c->local_.reset();
  c->closeAfterFlush();
}

}  // namespace yubin::mrad
