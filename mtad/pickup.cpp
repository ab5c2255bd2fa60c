// mtad's maildrop pickup; see pickup.hpp.
#include "mtad/pickup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>

#include "base/log.hpp"
#include "mail/address.hpp"
#include "yubin_build_config.h"

namespace yubin::mtad {
namespace {

constexpr size_t kHeaderSlack = 1 << 20;  // room for the drop header itself
constexpr auto kRescanInterval = std::chrono::seconds(60);
constexpr auto kRetryAfterFailure = std::chrono::seconds(10);

bool hasNonAscii(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) >= 0x80; });
}

}  // namespace

PickupSettings PickupSettings::fromConfig(const config::Config& cfg) {
  PickupSettings s;
  s.spoolDir = cfg.str("global", "spool_dir");
  s.dir = s.spoolDir + "/maildrop";
  s.dropGroup = cfg.str("sendmail", "maildrop_group");
  s.hostname = cfg.hostname();
  s.qualifyDomain = cfg.str("sendmail", "qualify_domain");
  if (s.qualifyDomain.empty()) s.qualifyDomain = s.hostname;
  s.trustedUsers = cfg.list("sendmail", "trusted_users");
  s.maxMessageSize = cfg.size("mtad", "max_message_size");
  return s;
}

std::string pickupReceived(const std::string& hostname, uint32_t uid, const std::string& id,
                           time_t now) {
  return "Received: by " + hostname + " (Yubin " YUBIN_VERSION ")\r\n\tid " + id + " from userid " +
         std::to_string(uid) + ";\r\n\t" + mail::rfc5322Date(now) + "\r\n";
}

std::string quoteDisplayName(std::string_view name) {
  std::string clean;
  for (char c : name) {
    unsigned char u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) continue;
    clean += c;
  }
  while (!clean.empty() && clean.back() == ' ') clean.pop_back();
  while (!clean.empty() && clean.front() == ' ') clean.erase(0, 1);
  bool atomOnly = !clean.empty();
  for (char c : clean) {
    bool atext = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 std::string_view("!#$%&'*+-/=?^_`{|}~ ").find(c) != std::string_view::npos ||
                 static_cast<unsigned char>(c) >= 0x80;
    if (!atext) atomOnly = false;
  }
  if (clean.empty() || atomOnly) return clean;
  std::string q = "\"";
  for (char c : clean) {
    if (c == '"' || c == '\\') q += '\\';
    q += c;
  }
  return q + "\"";
}

Result<PickupMessage> preparePickup(const ParsedDrop& drop, std::string_view message,
                                    const Submitter& who, time_t now,
                                    const std::string& messageId) {
  PickupMessage p;
  queue::Envelope& env = p.envelope;
  std::string sender = who.address;
  if (drop.header.sender && !drop.header.sender->empty()) {
    const std::string& want = *drop.header.sender;
    if (!who.trusted) {
      p.senderIgnored = want != who.address;
    } else if (want == "<>") {
      sender.clear();
      env.nullSender = true;
    } else {
      auto a = mail::parseMailbox(want, true);
      if (!a) return Error{"bad sender address <" + want + ">", EBADMSG};
      sender = a->normalized();
    }
  }
  env.sender = sender;
  for (const auto& r : drop.header.recipients) {
    auto a = mail::parseMailbox(r, true);
    if (!a) return Error{"bad recipient address <" + r + ">", EBADMSG};
    queue::Recipient qr;
    qr.address = a->normalized();
    if (hasNonAscii(qr.address)) env.smtputf8 = true;
    env.recipients.push_back(std::move(qr));
  }
  if (hasNonAscii(env.sender)) env.smtputf8 = true;
  env.arrivalTime = now;
  env.body = hasNonAscii(message) ? queue::Body::EightBitMime : queue::Body::Unspecified;

  std::string addr = env.nullSender ? who.address : env.sender;
  // The account's GECOS name only names the account's own address.
  std::string name = drop.header.fullName  ? *drop.header.fullName
                     : addr == who.address ? who.fullName
                                           : std::string();
  std::string q = quoteDisplayName(name);
  p.header.from = q.empty() ? addr : q + " <" + addr + ">";
  p.header.date = mail::rfc5322Date(now);
  p.header.messageId = messageId;
  return p;
}

void pickupContent(const PickupMessage& p, std::string received, std::string_view message,
                   const std::function<void(std::string_view)>& sink) {
  mail::HeaderAdditions add = p.header;
  add.trace = std::move(received);
  mail::HeaderFixer fixer(std::move(add));
  constexpr size_t kPiece = 64 * 1024;
  std::string out;
  while (!message.empty()) {
    size_t n = std::min(kPiece, message.size());
    out.clear();
    fixer.feed(message.substr(0, n), out);
    message.remove_prefix(n);
    sink(out);
  }
  out.clear();
  fixer.finish(out);
  if (!out.empty()) sink(out);
}

Pickup::Pickup(event_base* base, queue::Queue& queue, auth::Directory& directory,
               PickupSettings settings, QueuedFn queued)
    : base_(base),
      queue_(queue),
      directory_(directory),
      settings_(std::move(settings)),
      queued_(std::move(queued)),
      rescan_(base, [this] { scan(); }) {}

Pickup::~Pickup() {
  if (ticket_) queue_.cancelCallback(*ticket_);
}

Status Pickup::start() {
  // Local users reach the maildrop through the spool folder: it needs
  // search permission for them (its listing stays private).
  struct stat sst;
  if (stat(settings_.spoolDir.c_str(), &sst) == 0 && !(sst.st_mode & S_IXOTH)) {
    if (chmod(settings_.spoolDir.c_str(), (sst.st_mode & 07777) | S_IXOTH) != 0)
      YLOG_WARN("pickup: cannot make %s searchable (o+x): %s; only root can use yubin-sendmail",
                settings_.spoolDir.c_str(), strerror(errno));
  }
  if (mkdir(settings_.dir.c_str(), 0700) == 0) {
    gid_t gid = static_cast<gid_t>(-1);
    if (!settings_.dropGroup.empty()) {
      struct group* g = getgrnam(settings_.dropGroup.c_str());
      if (!g)
        YLOG_WARN("pickup: group %s does not exist; only root can use yubin-sendmail",
                  settings_.dropGroup.c_str());
      else
        gid = g->gr_gid;
    }
    if (gid != static_cast<gid_t>(-1) && chown(settings_.dir.c_str(), static_cast<uid_t>(-1), gid))
      YLOG_WARN("pickup: cannot give %s to group %s: %s", settings_.dir.c_str(),
                settings_.dropGroup.c_str(), strerror(errno));
    // Sticky: a user cannot remove another's file; group write and search
    // only: the drop group cannot list the folder or read the files.
    if (chmod(settings_.dir.c_str(), 01730) != 0) return errnoError("chmod " + settings_.dir);
    YLOG_INFO("pickup: created %s", settings_.dir.c_str());
  } else if (errno != EEXIST) {
    return errnoError("mkdir " + settings_.dir);
  }
  std::string corrupt = settings_.dir + "/corrupt";
  if (mkdir(corrupt.c_str(), 0700) != 0 && errno != EEXIST) return errnoError("mkdir " + corrupt);

  dirFd_ = UniqueFd(open(settings_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirFd_.valid()) return errnoError("open " + settings_.dir);
  inotify_ = UniqueFd(inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
  if (!inotify_.valid()) return errnoError("inotify_init1");
  if (inotify_add_watch(inotify_.get(), settings_.dir.c_str(),
                        IN_MOVED_TO | IN_CLOSE_WRITE | IN_ONLYDIR) < 0)
    return errnoError("inotify_add_watch " + settings_.dir);
  inotifyEvent_ =
      event::Event(event_new(base_, inotify_.get(), EV_READ | EV_PERSIST, onInotify, this));
  if (!inotifyEvent_ || event_add(inotifyEvent_.get(), nullptr) != 0)
    return Error{"pickup: cannot watch the inotify descriptor"};
  YLOG_INFO("pickup: watching %s", settings_.dir.c_str());
  scan();
  return {};
}

void Pickup::reload(PickupSettings settings) {
  // The folder stays the one being watched; only the rules change.
  settings.dir = settings_.dir;
  settings.spoolDir = settings_.spoolDir;
  settings_ = std::move(settings);
}

void Pickup::stop(std::function<void()> idle) {
  stopped_ = true;
  onIdle_ = std::move(idle);
  if (inotifyEvent_) event_del(inotifyEvent_.get());
  rescan_.cancel();
  todo_.clear();
  pendingNames_.clear();
}

void Pickup::onInotify(evutil_socket_t fd, short, void* self) {
  // Drain the events; which names they carry does not matter: a scan
  // finds every ready file (and covers IN_Q_OVERFLOW too).
  alignas(inotify_event) char buf[4096];
  while (read(fd, buf, sizeof buf) > 0) {
  }
  static_cast<Pickup*>(self)->scan();
}

void Pickup::scan() {
  if (stopped_ || !dirFd_.valid()) return;
  rescan_.arm(kRescanInterval);
  int dup = fcntl(dirFd_.get(), F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    YLOG_WARN("pickup: dup: %s", strerror(errno));
    return;
  }
  DIR* d = fdopendir(dup);
  if (!d) {
    close(dup);
    YLOG_WARN("pickup: opendir %s: %s", settings_.dir.c_str(), strerror(errno));
    return;
  }
  rewinddir(d);
  std::vector<std::string> names;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "corrupt" || !isDropName(name)) continue;
    names.push_back(std::move(name));
  }
  closedir(d);
  // Oldest names first (they start with the time in hex).
  std::sort(names.begin(), names.end());
  for (auto& n : names)
    if (pendingNames_.insert(n).second) todo_.push_back(std::move(n));
  next();
}

void Pickup::next() {
  while (!committing_ && !stopped_ && !todo_.empty()) {
    std::string name = std::move(todo_.front());
    todo_.pop_front();
    pendingNames_.erase(name);
    if (process(name)) return;
  }
}

Submitter Pickup::submitter(uid_t uid) {
  Submitter s;
  s.uid = uid;
  std::vector<char> buf(16384);
  struct passwd pw, *res = nullptr;
  if (getpwuid_r(uid, &pw, buf.data(), buf.size(), &res) == 0 && res) {
    s.login = res->pw_name;
    std::string gecos = res->pw_gecos ? res->pw_gecos : "";
    s.fullName = gecos.substr(0, gecos.find(','));
  } else {
    s.login = "uid" + std::to_string(uid);
  }
  s.trusted = uid == 0 || std::find(settings_.trustedUsers.begin(), settings_.trustedUsers.end(),
                                    s.login) != settings_.trustedUsers.end();
  s.address = s.login + "@" + settings_.qualifyDomain;
  // A mail user of the same name in a local domain: that address.
  for (const auto& d : directory_.domains().list()) {
    std::string candidate = s.login + "@" + d;
    if (directory_.findUser(candidate)) {
      s.address = candidate;
      break;
    }
  }
  return s;
}

void Pickup::quarantine(const std::string& name, const std::string& why) {
  ++quarantined_;
  std::string to = "corrupt/" + name;
  if (renameat(dirFd_.get(), name.c_str(), dirFd_.get(), to.c_str()) != 0) {
    YLOG_ERROR("pickup: file=%s error=\"%s\"; cannot move it to corrupt/ (%s); removing it",
               name.c_str(), why.c_str(), strerror(errno));
    unlinkat(dirFd_.get(), name.c_str(), 0);
    return;
  }
  YLOG_WARN("pickup: bad maildrop file moved to corrupt/ file=%s error=\"%s\"", name.c_str(),
            why.c_str());
}

bool Pickup::process(const std::string& name) {
  UniqueFd fd(openat(dirFd_.get(), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd.valid()) {
    if (errno == ENOENT) return false;  // already taken
    if (errno == ELOOP) {
      quarantine(name, "symbolic link");
      return false;
    }
    YLOG_WARN("pickup: cannot open file=%s: %s", name.c_str(), strerror(errno));
    return false;
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) {
    YLOG_WARN("pickup: fstat file=%s: %s", name.c_str(), strerror(errno));
    return false;
  }
  if (!S_ISREG(st.st_mode)) {
    quarantine(name, "not a regular file");
    return false;
  }
  if (st.st_nlink != 1) {
    quarantine(name, "more than one link");
    return false;
  }
  uint64_t limit = kMaxDropFile;
  if (settings_.maxMessageSize)
    limit = std::min<uint64_t>(limit, settings_.maxMessageSize + kHeaderSlack);
  if (static_cast<uint64_t>(st.st_size) > limit) {
    quarantine(name, "too large (" + std::to_string(st.st_size) + " octets)");
    return false;
  }
  std::string data(static_cast<size_t>(st.st_size), '\0');
  size_t got = 0;
  while (got < data.size()) {
    ssize_t n = read(fd.get(), data.data() + got, data.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  char extra;
  if (got != data.size() || read(fd.get(), &extra, 1) != 0) {
    YLOG_WARN("pickup: file=%s changed size while being read; later", name.c_str());
    rescan_.arm(kRetryAfterFailure);
    return false;
  }
  auto parsed = parseDrop(data);
  if (!parsed) {
    quarantine(name, parsed.error().message);
    return false;
  }
  std::string_view message = std::string_view(data).substr(parsed->messageOffset);
  if (settings_.maxMessageSize && message.size() > settings_.maxMessageSize) {
    quarantine(name, "message larger than max_message_size");
    return false;
  }
  Submitter who = submitter(st.st_uid);
  time_t now = time(nullptr);
  auto prepared = preparePickup(*parsed, message, who, now, mail::newMessageId(settings_.hostname));
  if (!prepared) {
    quarantine(name, prepared.error().message);
    return false;
  }
  if (prepared->senderIgnored)
    YLOG_NOTICE("pickup: sender ignored file=%s uid=%u user=%s requested=<%s> used=<%s>",
                name.c_str(), who.uid, who.login.c_str(), parsed->header.sender->c_str(),
                prepared->envelope.sender.c_str());
  auto msg = queue_.begin(prepared->envelope);
  if (!msg) {
    if (msg.error().errnum == EINVAL) {
      quarantine(name, "envelope refused: " + msg.error().message);
      return false;
    }
    YLOG_WARN("pickup: queue file not created file=%s error=\"%s\"; retrying later", name.c_str(),
              msg.error().message.c_str());
    rescan_.arm(kRetryAfterFailure);
    return false;
  }
  std::string id = msg->id().str();
  pickupContent(*prepared, pickupReceived(settings_.hostname, who.uid, id, now), message,
                [&msg](std::string_view piece) { (void)msg->append(piece); });
  committing_ = true;
  size_t nrcpt = prepared->envelope.recipients.size();
  std::string from = prepared->envelope.sender;
  uint32_t uid = who.uid;
  ticket_ =
      queue_.commit(std::move(*msg), [this, name, id, nrcpt, from, uid](Result<queue::QueueId> r) {
        ticket_.reset();
        committing_ = false;
        if (stopped_ && onIdle_) {
          // Called last: it may destroy this Pickup (mtad exiting).
          auto idle = std::move(onIdle_);
          if (r && unlinkat(dirFd_.get(), name.c_str(), 0) == 0) ++pickedUp_;
          if (r && queued_) queued_(*r);
          idle();
          return;
        }
        if (!r) {
          YLOG_WARN("pickup: queue commit failed file=%s id=%s error=\"%s\"; retrying later",
                    name.c_str(), id.c_str(), r.error().message.c_str());
          rescan_.arm(kRetryAfterFailure);
          return;
        }
        // Durable in the queue: now the maildrop copy may go. A crash before
        // this line leaves both, and the file is queued again (at least once).
        if (unlinkat(dirFd_.get(), name.c_str(), 0) != 0)
          YLOG_ERROR("pickup: cannot remove file=%s after queueing id=%s: %s", name.c_str(),
                     id.c_str(), strerror(errno));
        ++pickedUp_;
        YLOG_INFO("queued id=%s from=<%s> nrcpt=%zu uid=%u source=maildrop file=%s", id.c_str(),
                  from.c_str(), nrcpt, uid, name.c_str());
        if (queued_) queued_(*r);
        next();
      });
  return true;
}

}  // namespace yubin::mtad
