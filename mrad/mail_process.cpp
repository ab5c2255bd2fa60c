// The mail process; see mail_process.hpp.
#include "mrad/mail_process.hpp"

#include <event2/buffer.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include "auth/directory.hpp"
#include "base/log.hpp"
#include "config/config.hpp"
#include "event/event.hpp"
#include "imap/response.hpp"
#include "event/worker_pool.hpp"
#include "mrad/handoff.hpp"
#include "mrad/imap/mail_session.hpp"
#include "mrad/mrad.hpp"
#include "mrad/pop3/mail_session.hpp"
#include "service/privdrop.hpp"
#include "service/service.hpp"
#include "store/append_commit.hpp"
#include "store/maildir_folder.hpp"
#include "store/maildir_store.hpp"
#include "store/mbox_folder.hpp"
#include "store/mbox_store.hpp"
#include "store/watch_pool.hpp"

namespace yubin::mrad {
namespace {

// A transfer is pumped whenever the client's output falls under kLowWater,
// kBudget bytes at a time: a session holds at most about both in memory.
constexpr size_t kLowWater = 32 * 1024;
constexpr size_t kBudget = 64 * 1024;
constexpr size_t kReadPiece = 16 * 1024;
// A POP3 session sends at most this much per turn of the loop, then lets
// the others run (its pump timer brings it back): fairness among sessions
// when the socket takes everything at once.
constexpr size_t kTurn = 256 * 1024;

struct Settings {
  pop3::Limits limits;
  std::chrono::milliseconds idleTimeout{600000};
  store::MboxLockSettings lock;
  std::chrono::milliseconds imapIdleTimeout{1800000};
  size_t maxImapPerUser = 20;
  std::string commitGate;  // [mrad] imap_commit_gate (tests)
};

// Threads for the blocking steps of IMAP APPEND commits: they spend their
// time waiting for the disk, one commit each, so this bounds the commits
// in flight (Dovecot has a process per session); the directory and log
// syncs of concurrent commits are shared (store/fsync_batcher.hpp).
constexpr size_t kCommitThreads = 32;

// [mrad] imap_commit_gate, for tests: a blocking step first connects to
// this Unix socket and waits for one byte (a minute at most), so a test
// holds each step as long as it wants without timing: a connection it
// accepts is one step held. Nobody listening: no wait.
void waitAtGate(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  struct sockaddr_un addr {};
  addr.sun_family = AF_UNIX;
  if (!fd || path.size() >= sizeof addr.sun_path) return;
  path.copy(addr.sun_path, path.size());
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) return;
  struct pollfd p {
    fd.get(), POLLIN, 0
  };
  if (::poll(&p, 1, 60000) > 0) {
    char c;
    [[maybe_unused]] ssize_t n = ::read(fd.get(), &c, 1);
  }
}

// The runner of the blocking steps of IMAP APPEND commits
// (store/append_commit.hpp): worker threads that report back on the loop.
// Its work touches only the transaction it was given.
class CommitRunner final : public store::BlockingRunner {
 public:
  CommitRunner(std::unique_ptr<event::WorkerPool> pool, std::string gate)
      : pool_(std::move(pool)), gate_(std::move(gate)) {}
  void run(std::function<void()> work, std::function<void()> then) override {
    if (!gate_.empty())
      work = [gate = gate_, inner = std::move(work)] {
        waitAtGate(gate);
        inner();
      };
    std::vector<event::WorkerPool::Task> tasks;
    tasks.push_back(std::move(work));
    pool_->submit(std::move(tasks), std::move(then));
  }

 private:
  std::unique_ptr<event::WorkerPool> pool_;
  std::string gate_;
};

// While an IMAP session idles over a backend without a change descriptor,
// it looks at the mailbox this often.
constexpr std::chrono::milliseconds kIdlePoll{1000};

class MailProcess;

// One handed-over session, of either protocol.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void start() = 0;
  // A direct session's link to the login process (handoff.hpp): held, and
  // closed with the connection, which tells the login process the session
  // ended.
  void holdLink(UniqueFd link) { link_ = std::move(link); }

 private:
  UniqueFd link_;
};

class MailConnection : public Connection {
 public:
  MailConnection(MailProcess& owner, Handoff h, event::Bufferevent bev);
  ~MailConnection() override;
  void start() override;

 private:
  static void onRead(bufferevent* bev, void* self);
  static void onWrite(bufferevent* bev, void* self);
  static void onEvent(bufferevent* bev, short what, void* self);
  void refuse(const std::string& reply, const char* why);
  void serve();
  void send(std::string_view bytes);
  void finish(const char* reason);
  // Frees the mailbox for the user's next session (the in-use table), once.
  void releaseMailbox();
  Status openFolder();

  MailProcess& owner_;
  Handoff h_;
  event::Bufferevent bev_;
  std::unique_ptr<store::Folder> folder_;
  std::unique_ptr<pop3::MailSession> session_;
  // The idle time runs from the last answer (or transfer progress), not
  // from the last byte read: a client dripping an endless line gets none.
  event::Timer idle_;
  event::Timer linger_;  // a closing session's bound (kCloseLinger)
  // Brings back a session that used up its turn (kTurn) with more to send.
  event::Timer pump_;
  // finish() never destroys the connection inside a callback: the reaper
  // does it on the next loop turn.
  event::Timer reaper_;
  bool dead_ = false;
  bool holdsMailbox_ = false;
  bool closing_ = false;
};

class MailProcess {
 public:
  MailProcess(const config::Config& cfg, event_base* base)
      : base_(base), directory_(auth::DirectorySettings::fromConfig(cfg)) {
    settings_.idleTimeout = cfg.duration("mrad", "pop3_idle_timeout");
    settings_.lock.timeout = cfg.duration("mrad", "lock_timeout");
    settings_.lock.dotLock = store::DotLock::Try;
    settings_.imapIdleTimeout = cfg.duration("mrad", "imap_idle_timeout");
    settings_.maxImapPerUser = static_cast<size_t>(cfg.integer("mrad", "max_imap_sessions_per_user"));
    settings_.commitGate = cfg.str("mrad", "imap_commit_gate");
  }
  Status start();
  event_base* base() const { return base_; }
  const Settings& settings() const { return settings_; }
  auth::Directory& directory() { return directory_; }
  // The Maildir folder states every IMAP session of this process shares
  // (one per selected folder, maildir_store.hpp).
  const std::shared_ptr<store::MaildirFolderStates>& folderStates() const { return folderStates_; }
  const std::shared_ptr<store::WatchPool>& watches() const { return watches_; }
  // Where the IMAP sessions' APPEND commits wait for the disk.
  store::BlockingRunner* commitRunner() const { return commitRunner_.get(); }

  // The in-use table: false when another session holds the mailbox.
  bool acquire(const std::string& mailbox) { return inUse_.insert(mailbox).second; }
  void release(const std::string& mailbox) { inUse_.erase(mailbox); }
  void closed(Connection* c) { sessions_.erase(c); }
  // IMAP sessions per user (many are normal: one per folder a client
  // watches); false when the user has settings().maxImapPerUser already.
  bool acquireImap(const std::string& user) {
    size_t& n = imapUsers_[user];
    if (n >= settings_.maxImapPerUser) return false;
    ++n;
    return true;
  }
  void releaseImap(const std::string& user) {
    auto it = imapUsers_.find(user);
    if (it != imapUsers_.end() && --it->second == 0) imapUsers_.erase(it);
  }

 private:
  static void onChannel(evutil_socket_t, short, void* self);
  void receive();

  event_base* base_;
  auth::Directory directory_;
  // Kept inotify descriptors of closed mailboxes, Maildir and mbox alike.
  std::shared_ptr<store::WatchPool> watches_ = std::make_shared<store::WatchPool>();
  std::shared_ptr<store::MaildirFolderStates> folderStates_ =
      store::makeMaildirFolderStates(watches_);
  Settings settings_;
  // Destroyed after the sessions: the commits under way end first (the
  // pool waits for its running steps and drops the rest, whose
  // transactions then remove their temporary files).
  std::unique_ptr<CommitRunner> commitRunner_;
  event::Event channel_;
  std::unordered_set<std::string> inUse_;
  std::unordered_map<std::string, size_t> imapUsers_;
  // Declared last: sessions release their mailbox into inUse_ (and their
  // count into imapUsers_) when destroyed.
  std::unordered_map<Connection*, std::unique_ptr<Connection>> sessions_;
};

// The login process named the mailbox; it must be the one the user
// database gives this user, or a subverted login process could point us at
// any file we can open.
bool matchesDirectory(MailProcess& owner, const Handoff& h);

// ---- MailConnection ----

MailConnection::MailConnection(MailProcess& owner, Handoff h, event::Bufferevent bev)
    : owner_(owner), h_(std::move(h)), bev_(std::move(bev)), idle_(owner.base(), [this] {
        YLOG_INFO("idle timeout session=%s user=%s", h_.sessionId.c_str(), h_.user.c_str());
        bufferevent_write(bev_.get(), "-ERR Disconnected for inactivity\r\n", 34);
        closing_ = true;
        bufferevent_disable(bev_.get(), EV_READ);
        serve();
      }),
      linger_(owner.base(),
              [this] {
                YLOG_INFO("closing linger expired, answers unread session=%s user=%s unsent=%zu",
                          h_.sessionId.c_str(), h_.user.c_str(),
                          evbuffer_get_length(bufferevent_get_output(bev_.get())));
                finish("linger expired");
              }),
      pump_(owner.base(), [this] { serve(); }),
      reaper_(owner.base(), [this] { owner_.closed(this); }) {}

MailConnection::~MailConnection() {
  releaseMailbox();
}

void MailConnection::releaseMailbox() {
  if (!holdsMailbox_) return;
  owner_.release(h_.mailbox);
  holdsMailbox_ = false;
}

Status MailConnection::openFolder() {
  if (h_.kind == MailboxKind::Maildir) {
    auto f = store::MaildirFolder::open(h_.mailbox);
    if (!f) return f.error();
    folder_ = std::move(*f);
  } else {
    auto f = store::MboxFolder::open(h_.mailbox, owner_.settings().lock);
    if (!f) return f.error();
    folder_ = std::move(*f);
  }
  return {};
}

void MailConnection::start() {
  bufferevent_setcb(bev_.get(), &MailConnection::onRead, &MailConnection::onWrite,
                    &MailConnection::onEvent, this);
  bufferevent_setwatermark(bev_.get(), EV_WRITE, kLowWater, 0);
  // Without a read bound libevent takes the client's commands into the
  // input buffer whether or not serve() feeds them (clients that never
  // read their RETR replies: 20 of them grew it by 1.2 GB in 10 s).
  bufferevent_setwatermark(bev_.get(), EV_READ, 0, kReadPiece);
  bufferevent_set_max_single_write(bev_.get(), kBudget);
  bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);

  if (!matchesDirectory(owner_, h_))
    return refuse(pop3::errCode(pop3::kSysTemp, "Mailbox unavailable, try again later"),
                  "the handoff does not match the user database");
  if (!owner_.acquire(h_.mailbox))
    return refuse(pop3::errCode(pop3::kInUse, "Mailbox is in use by another session"),
                  "mailbox in use");
  holdsMailbox_ = true;
  if (auto st = openFolder(); !st) {
    YLOG_ERROR("cannot open mailbox session=%s user=%s mailbox=%s error=\"%s\"",
               h_.sessionId.c_str(), h_.user.c_str(), h_.mailbox.c_str(),
               st.error().message.c_str());
    return refuse(pop3::errCode(pop3::kSysTemp, "Cannot open the mailbox now, try again later"),
                  "mailbox not opened");
  }
  pop3::MailSettings ms;
  ms.limits = owner_.settings().limits;
  ms.user = h_.user;
  ms.logId = h_.sessionId;
  session_ = std::make_unique<pop3::MailSession>(*folder_, ms);
  YLOG_INFO("mailbox opened session=%s user=%s messages=%zu", h_.sessionId.c_str(),
            h_.user.c_str(), folder_->messages().size());
  idle_.arm(owner_.settings().idleTimeout);
  std::string pending = std::move(h_.pending);
  session_->start(pending);
  serve();
}

void MailConnection::refuse(const std::string& reply, const char* why) {
  YLOG_NOTICE("session refused session=%s user=%s reason=\"%s\"", h_.sessionId.c_str(),
              h_.user.c_str(), why);
  bufferevent_write(bev_.get(), reply.data(), reply.size());
  closing_ = true;
  bufferevent_disable(bev_.get(), EV_READ);
  serve();
}

// While nothing waits in the bufferevent, bytes go to the socket at once:
// no copy into it and no write event to arm and disarm per piece. What the
// socket does not take is queued behind (the order is kept: nothing is
// sent directly while anything is queued). A failed send queues too; the
// bufferevent's own write then meets the error and reports it (onEvent).
void MailConnection::send(std::string_view bytes) {
  if (bytes.empty()) return;
  if (evbuffer_get_length(bufferevent_get_output(bev_.get())) == 0) {
    ssize_t n;
    do {
      n = ::send(bufferevent_getfd(bev_.get()), bytes.data(), bytes.size(),
                 MSG_NOSIGNAL | MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n > 0) bytes.remove_prefix(static_cast<size_t>(n));
  }
  if (!bytes.empty()) bufferevent_write(bev_.get(), bytes.data(), bytes.size());
}

// The session's loop: feeds the commands that wait (none while a RETR or
// TOP is sent, nor while kLowWater of answers wait for a client that does
// not read them: they stay in the socket, so both the input and the output
// held here are bounded), sends what the session queued, pumps a transfer while the
// output is short and the turn lasts, and closes once a closing session's
// output is gone or kCloseLinger has passed. Every answer, and every piece
// of a transfer the client made room for, restarts the idle time.
void MailConnection::serve() {
  if (dead_) return;
  evbuffer* in = bufferevent_get_input(bev_.get());
  evbuffer* out = bufferevent_get_output(bev_.get());
  size_t sent = 0;
  while (session_) {
    char buf[kReadPiece];
    while (!closing_ && !session_->closing() && !session_->transferring() &&
           evbuffer_get_length(in) > 0 && evbuffer_get_length(out) < kLowWater) {
      int n = evbuffer_remove(in, buf, sizeof buf);
      if (n <= 0) break;
      session_->feed(std::string_view(buf, static_cast<size_t>(n)));
    }
    if (session_->hasOutput()) {
      std::string o = session_->takeOutput();
      sent += o.size();
      send(o);
    }
    if (!session_->transferring() || evbuffer_get_length(out) >= kLowWater) break;
    if (sent >= kTurn) {
      pump_.arm(std::chrono::milliseconds(0));
      break;
    }
    session_->produce(kBudget);
  }
  if (session_ && session_->closing() && !closing_) {
    closing_ = true;
    bufferevent_disable(bev_.get(), EV_READ);
  }
  // The session is over (QUIT's update is done, or it failed): the next
  // session of this user may start while this one's last answer is still
  // on its way. Without this a client that QUITs and logs in again at once
  // (fetchmail in a loop; a cached password check makes it quick) got
  // [IN-USE] until this connection was reaped.
  if (session_ && session_->closing()) releaseMailbox();
  if (closing_) {
    idle_.cancel();
    bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
    if (evbuffer_get_length(out) == 0) return finish("closed");
    if (!linger_.pending()) linger_.arm(kCloseLinger);
  } else if (sent > 0) {
    idle_.arm(owner_.settings().idleTimeout);
  }
}

void MailConnection::finish(const char* reason) {
  if (dead_) return;
  dead_ = true;
  // Free for the user's next session now, not when this one is reaped a
  // loop turn later (a client gone mid-RETR, then a new login at once).
  releaseMailbox();
  idle_.cancel();
  linger_.cancel();
  pump_.cancel();
  bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
  reaper_.arm(std::chrono::milliseconds(0));
  if (session_) {
    const auto& s = session_->stats();
    YLOG_INFO("session ended session=%s user=%s reason=%s quit=%s retr=%llu bytes=%llu top=%llu "
              "deleted=%llu",
              h_.sessionId.c_str(), h_.user.c_str(), reason, session_->updated() ? "yes" : "no",
              static_cast<unsigned long long>(s.retrieved),
              static_cast<unsigned long long>(s.retrievedBytes),
              static_cast<unsigned long long>(s.tops), static_cast<unsigned long long>(s.deleted));
  }
}

void MailConnection::onRead(bufferevent*, void* self) {
  auto* c = static_cast<MailConnection*>(self);
  if (c->dead_) return;
  if (!c->session_ || c->closing_) return;
  c->serve();
}

void MailConnection::onWrite(bufferevent*, void* self) {
  auto* c = static_cast<MailConnection*>(self);
  if (c->dead_) return;
  c->serve();
}

void MailConnection::onEvent(bufferevent*, short what, void* self) {
  auto* c = static_cast<MailConnection*>(self);
  if (c->dead_) return;
  if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
    c->finish(what & BEV_EVENT_EOF ? "client gone" : "connection error");
}

bool matchesDirectory(MailProcess& owner, const Handoff& h) {
  auto user = owner.directory().findUser(h.user);
  MailboxKind kind =
      user && user->format == auth::MailboxFormat::Mbox ? MailboxKind::Mbox : MailboxKind::Maildir;
  return user && user->mailbox == h.mailbox && kind == h.kind;
}

// ---- ImapConnection ----

// One IMAP session after login: the user's MailStore and an
// imap::MailSession on the socket to the login process's proxy. The glue
// pumps streamed FETCH bodies with produce(), hands APPEND commits' disk
// waits to the process's commit threads (reading nothing more from the
// client until the session resumes), watches the selected
// mailbox's change descriptor (registered anew at each SELECT, EXAMINE,
// CLOSE and UNSELECT) so an idling client hears of new mail at once, and
// logs the client out after
// imap_idle_timeout without an answer to it: any command answered, IDLE
// included (RFC 2177: a client re-issues IDLE within 29 minutes), and each
// piece of a FETCH the client made room for restart it; bytes that complete
// no command and the updates sent to an idling client do not. A closing
// session is dropped once its output is gone or after kCloseLinger.
class ImapConnection : public Connection {
 public:
  ImapConnection(MailProcess& owner, Handoff h, event::Bufferevent bev)
      : owner_(owner),
        h_(std::move(h)),
        bev_(std::move(bev)),
        idle_(owner.base(),
              [this] {
                YLOG_INFO("idle timeout session=%s user=%s", h_.sessionId.c_str(),
                          h_.user.c_str());
                static constexpr std::string_view kBye =
                    "* BYE Autologout; idle for too long\r\n";
                bufferevent_write(bev_.get(), kBye.data(), kBye.size());
                closing_ = true;
                bufferevent_disable(bev_.get(), EV_READ);
                flush();
              }),
        linger_(owner.base(),
                [this] {
                  YLOG_INFO("closing linger expired, answers unread session=%s user=%s "
                            "unsent=%zu",
                            h_.sessionId.c_str(), h_.user.c_str(),
                            evbuffer_get_length(bufferevent_get_output(bev_.get())));
                  finish("linger expired");
                }),
        poll_(owner.base(),
              [this] {
                if (dead_ || !session_) return;
                session_->changed();
                flush(false);
              }),
        reaper_(owner.base(), [this] { owner_.closed(this); }) {}

  // An mbox user's other folders are mbox files in "<inbox>.folders"
  // (mbox_store.hpp); a Maildir user's are Maildir++ folders.
  Result<std::unique_ptr<store::MailStore>> openStore() {
    if (h_.kind != MailboxKind::Mbox)
      return store::openMaildirStore(h_.mailbox, owner_.folderStates());
    store::MboxStoreSettings ms;
    ms.inbox = h_.mailbox;
    ms.lock = owner_.settings().lock;
    ms.watches = owner_.watches();
    return store::openMboxStore(ms);
  }

  ~ImapConnection() override {
    watch_.reset();
    session_.reset();
    store_.reset();
    if (counted_) owner_.releaseImap(h_.user);
  }

  void start() override {
    bufferevent_setcb(bev_.get(), &ImapConnection::onRead, &ImapConnection::onWrite,
                      &ImapConnection::onEvent, this);
    bufferevent_setwatermark(bev_.get(), EV_WRITE, kLowWater, 0);
    // As MailConnection: later commands wait in the socket, not here.
    bufferevent_setwatermark(bev_.get(), EV_READ, 0, kReadPiece);
    bufferevent_set_max_single_write(bev_.get(), kBudget);
    bufferevent_enable(bev_.get(), EV_READ | EV_WRITE);

    if (!matchesDirectory(owner_, h_))
      return refuse("Mailbox unavailable, try again later",
                    "the handoff does not match the user database");
    if (!owner_.acquireImap(h_.user))
      return refuse("Too many IMAP sessions for this user", "too many sessions", "LIMIT");
    counted_ = true;
    auto st = openStore();
    if (!st) {
      YLOG_ERROR("cannot open mail store session=%s user=%s mailbox=%s error=\"%s\"",
                 h_.sessionId.c_str(), h_.user.c_str(), h_.mailbox.c_str(),
                 st.error().message.c_str());
      return refuse("Cannot open the mailbox now, try again later", "mail store not opened");
    }
    store_ = std::move(*st);
    imap::MailSettings ms;
    ms.user = h_.user;
    ms.logId = h_.sessionId;
    ms.tls = h_.tls;
    session_ = std::make_unique<imap::MailSession>(
        *store_, ms, imap::Offload{owner_.commitRunner(), [this] { resume(); }});
    YLOG_INFO("imap session started session=%s user=%s", h_.sessionId.c_str(), h_.user.c_str());
    idle_.arm(owner_.settings().imapIdleTimeout);
    std::string pending = std::move(h_.pending);
    session_->start(h_.tag, pending);
    flush();
  }

 private:
  // The login command is answered NO here, then the connection closes.
  void refuse(std::string_view text, const char* why, std::string_view code = "UNAVAILABLE") {
    YLOG_NOTICE("session refused session=%s user=%s reason=\"%s\"", h_.sessionId.c_str(),
                h_.user.c_str(), why);
    std::string reply = yubin::imap::tagged(h_.tag, yubin::imap::Cond::No, code, text) +
                        yubin::imap::untagged(yubin::imap::Cond::Bye, "", text);
    bufferevent_write(bev_.get(), reply.data(), reply.size());
    closing_ = true;
    bufferevent_disable(bev_.get(), EV_READ);
    flush();
  }

  // Writes what the session queued, pumps a streaming FETCH while the
  // output is short, follows the change descriptor, closes once a closing
  // session's output is gone (or at the linger's end). `answering`: the
  // output answers the client (its command, or room it made for a FETCH),
  // which restarts the idle time; updates sent to an idling client do not.
  void flush(bool answering = true) {
    if (dead_) return;
    evbuffer* out = bufferevent_get_output(bev_.get());
    bool wrote = false;
    if (session_) {
      if (session_->hasOutput()) {
        std::string o = session_->takeOutput();
        bufferevent_write(bev_.get(), o.data(), o.size());
        wrote = true;
      }
      while (session_->producing() && evbuffer_get_length(out) < kLowWater) {
        session_->produce(kBudget);
        std::string o = session_->takeOutput();
        bufferevent_write(bev_.get(), o.data(), o.size());
        wrote = true;
      }
      if (session_->closing() && !closing_) {
        closing_ = true;
        bufferevent_disable(bev_.get(), EV_READ);
      }
      if (!closing_) follow();
    }
    if (closing_) {
      idle_.cancel();
      watch_.reset();
      poll_.cancel();
      bufferevent_setwatermark(bev_.get(), EV_WRITE, 0, 0);
      if (evbuffer_get_length(out) == 0) return finish("closed");
      if (!linger_.pending()) linger_.arm(kCloseLinger);
    } else if (wrote && answering) {
      idle_.arm(owner_.settings().imapIdleTimeout);
    }
  }

  // An APPEND's commit ended (from the runner's continuation): its answer
  // goes out, and the input held meanwhile is read.
  void resume() {
    if (dead_ || !session_) return;
    flush();
    if (!dead_ && !closing_ && !session_->producing() &&
        evbuffer_get_length(bufferevent_get_input(bev_.get())) > 0)
      onRead(bev_.get(), this);
  }

  // SELECT, EXAMINE, CLOSE and UNSELECT change the descriptor to watch.
  // By the session's count of selections, not by the number alone: a
  // SELECT that closed a descriptor may get a new one with the same
  // number, which the registration of the old one (gone from epoll with
  // its file) would not watch.
  void follow() {
    int fd = session_->changeFd();
    const uint64_t selection = session_->selections();
    if (fd != watchedFd_ || selection != watchedSelection_) {
      watch_.reset();
      watchedFd_ = -1;
      watchedSelection_ = selection;
      if (fd >= 0) {
        watch_.reset(event_new(owner_.base(), fd, EV_READ | EV_PERSIST, &ImapConnection::onChange,
                               this));
        if (watch_ && event_add(watch_.get(), nullptr) == 0) {
          watchedFd_ = fd;
        } else {
          watch_.reset();
          YLOG_WARN("cannot watch the mailbox session=%s (polling while idle)",
                    h_.sessionId.c_str());
        }
      }
    }
    if (session_->idling() && watchedFd_ < 0) {
      if (!poll_.pending()) poll_.arm(kIdlePoll);
    } else {
      poll_.cancel();
    }
  }

  void finish(const char* reason) {
    if (dead_) return;
    dead_ = true;
    idle_.cancel();
    linger_.cancel();
    poll_.cancel();
    watch_.reset();
    bufferevent_disable(bev_.get(), EV_READ | EV_WRITE);
    reaper_.arm(std::chrono::milliseconds(0));
    if (session_) {
      const auto& s = session_->stats();
      YLOG_INFO("session ended session=%s user=%s reason=%s commands=%llu fetched=%llu "
                "appended=%llu expunged=%llu",
                h_.sessionId.c_str(), h_.user.c_str(), reason,
                static_cast<unsigned long long>(s.commands),
                static_cast<unsigned long long>(s.fetchedBytes),
                static_cast<unsigned long long>(s.appended),
                static_cast<unsigned long long>(s.expunged));
    }
  }

  static void onChange(evutil_socket_t, short, void* self) {
    auto* c = static_cast<ImapConnection*>(self);
    if (c->dead_ || !c->session_) return;
    c->session_->changed();
    c->flush(false);
  }

  static void onRead(bufferevent* bev, void* self) {
    auto* c = static_cast<ImapConnection*>(self);
    if (c->dead_ || !c->session_ || c->closing_) return;
    evbuffer* in = bufferevent_get_input(bev);
    char buf[kReadPiece];
    // While a FETCH streams, an APPEND waits for its commit, or kLowWater
    // of answers wait for a client that does not read them, later commands
    // wait in the socket: the input and the output held here stay bounded.
    while (evbuffer_get_length(in) > 0 && !c->session_->producing() &&
           !c->session_->waiting() && !c->closing_ &&
           evbuffer_get_length(bufferevent_get_output(bev)) < kLowWater) {
      int n = evbuffer_remove(in, buf, sizeof buf);
      if (n <= 0) break;
      c->session_->feed(std::string_view(buf, static_cast<size_t>(n)));
      if (c->session_->closing()) break;
      // Answers leave as they are made: a client that pipelines a lot
      // does not make the output grow without bound.
      c->flush();
      if (c->dead_ || c->closing_) return;
    }
    c->flush();
  }

  static void onWrite(bufferevent* bev, void* self) {
    auto* c = static_cast<ImapConnection*>(self);
    if (c->dead_) return;
    c->flush();
    if (!c->dead_ && c->session_ && !c->closing_ && !c->session_->producing() &&
        !c->session_->waiting() && evbuffer_get_length(bufferevent_get_input(bev)) > 0)
      onRead(bev, self);
  }

  static void onEvent(bufferevent*, short what, void* self) {
    auto* c = static_cast<ImapConnection*>(self);
    if (c->dead_) return;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
      c->finish(what & BEV_EVENT_EOF ? "client gone" : "connection error");
  }

  MailProcess& owner_;
  Handoff h_;
  event::Bufferevent bev_;
  std::unique_ptr<store::MailStore> store_;
  std::unique_ptr<imap::MailSession> session_;
  event::Event watch_;
  int watchedFd_ = -1;
  uint64_t watchedSelection_ = 0;  // session_->selections() when watch_ was made
  event::Timer idle_;
  event::Timer linger_;
  event::Timer poll_;
  event::Timer reaper_;
  bool dead_ = false;
  bool closing_ = false;
  bool counted_ = false;
};

// ---- MailProcess ----

Status MailProcess::start() {
  auto pool = event::WorkerPool::start(base_, kCommitThreads);
  if (!pool) return pool.error();
  commitRunner_ = std::make_unique<CommitRunner>(std::move(*pool), settings_.commitGate);
  if (auto st = directory_.reload(); !st)
    YLOG_WARN("user database: %s (sessions are refused until it is fixed)",
              st.error().message.c_str());
  channel_.reset(event_new(base_, kChannelFd, EV_READ | EV_PERSIST, &MailProcess::onChannel, this));
  if (!channel_ || event_add(channel_.get(), nullptr) != 0)
    return Error{"cannot watch the handoff channel"};
  return {};
}

void MailProcess::onChannel(evutil_socket_t, short, void* self) {
  static_cast<MailProcess*>(self)->receive();
}

void MailProcess::receive() {
  for (;;) {
    auto r = receiveHandoff(kChannelFd);
    if (!r) {
      if (r.error().errnum == EAGAIN) return;
      if (r.error().errnum == 0)
        YLOG_INFO("login process gone: ending sessions=%zu", sessions_.size());
      else
        YLOG_ERROR("handoff channel: %s: exiting", r.error().message.c_str());
      event_del(channel_.get());
      event_base_loopbreak(base_);
      return;
    }
    // A direct session talks to the client's socket itself; a proxied one
    // to the link, whose other end the login process relays.
    const bool direct = r->handoff.direct;
    auto bev = event::newSocketBufferevent(base_, std::move(direct ? r->client : r->fd));
    if (!bev) {
      YLOG_ERROR("session not started session=%s error=\"%s\"", r->handoff.sessionId.c_str(),
                 bev.error().message.c_str());
      continue;
    }
    YLOG_DEBUG("session handed over session=%s user=%s ip=%s tls=%s direct=%s",
               r->handoff.sessionId.c_str(), r->handoff.user.c_str(), r->handoff.clientIp.c_str(),
               r->handoff.tls ? "yes" : "no", direct ? "yes" : "no");
    std::unique_ptr<Connection> c;
    if (r->handoff.protocol == Protocol::Imap)
      c = std::make_unique<ImapConnection>(*this, std::move(r->handoff), std::move(*bev));
    else
      c = std::make_unique<MailConnection>(*this, std::move(r->handoff), std::move(*bev));
    if (direct) c->holdLink(std::move(r->fd));
    Connection* raw = c.get();
    sessions_.emplace(raw, std::move(c));
    raw->start();
  }
}

}  // namespace

int runMailProcess(const std::string& configPath, bool foreground) {
  logInit("mrad-mail", LogTarget::Stderr);
  auto cfg = config::Config::load(configPath);
  if (!cfg) {
    YLOG_ERROR("%s", cfg.error().message.c_str());
    return service::kExitConfig;
  }
  LogTarget target = foreground || cfg->str("global", "log") == "stderr" ? LogTarget::Stderr
                                                                          : LogTarget::Syslog;
  logInit("mrad-mail", target, logLevelFromName(cfg->str("global", "log_level")));

  // The drop: mail_user / mail_group, users_group kept for the users file.
  if (::geteuid() == 0) {
    auto id = service::resolveIdentity(cfg->str("mrad", "mail_user"), cfg->str("mrad", "mail_group"));
    if (!id) {
      YLOG_ERROR("%s: %s", cfg->where("mrad", "mail_user").c_str(), id.error().message.c_str());
      return service::kExitConfig;
    }
    service::DropPlan plan;
    plan.target = *id;
    plan.usersGroup = cfg->str("global", "users_group");
    if (!plan.usersGroup.empty()) {
      auto g = service::resolveIdentity(id->user, plan.usersGroup);
      if (!g) {
        YLOG_ERROR("%s: %s", cfg->where("global", "users_group").c_str(), g.error().message.c_str());
        return service::kExitConfig;
      }
      plan.usersGid = g->gid;
    }
    if (auto st = service::dropPrivileges(plan); !st) {
      YLOG_ERROR("%s", st.error().message.c_str());
      return service::kExitOsError;
    }
    YLOG_INFO("privileges dropped to %s", service::describe(plan).c_str());
  }
  if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
    YLOG_WARN("no-new-privs not set errno=%d", errno);

  // The login process decides when to stop: signals meant for the process
  // group (Ctrl-C in the foreground) must not cut sessions short; the
  // channel closing ends this process.
  ::signal(SIGPIPE, SIG_IGN);
  ::signal(SIGINT, SIG_IGN);
  ::signal(SIGTERM, SIG_IGN);
  ::signal(SIGHUP, SIG_IGN);

  auto base = event::newEventBase();
  if (!base) {
    YLOG_ERROR("%s", base.error().message.c_str());
    return service::kExitOsError;
  }
  {
    MailProcess mp(*cfg, base->get());
    if (auto st = mp.start(); !st) {
      YLOG_ERROR("%s", st.error().message.c_str());
      return service::kExitStartFailed;
    }
    YLOG_INFO("mail process started pid=%d", int(::getpid()));
    event_base_dispatch(base->get());
  }
  YLOG_INFO("mail process stopped");
  return service::kExitOk;
}

}  // namespace yubin::mrad
