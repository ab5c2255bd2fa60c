// Binding listening sockets and passing them to a child with the systemd
// socket-activation protocol; see listen.hpp.
// Trust: runs as root in yubin-master; reads only the admin's config and the
// environment our own parent (the master or systemd) set.
#include "sys/listen.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <grp.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"

namespace yubin::sys {
namespace {

constexpr int kFirstFd = 3;  // SD_LISTEN_FDS_START

std::string describe(const config::Endpoint& ep) {
  std::string host = ep.host.empty() ? "*" : ep.host;
  if (host.find(':') != std::string::npos) host = "[" + host + "]";
  return host + ":" + std::to_string(ep.port);
}

Status setFlag(int fd, int level, int opt, int value, const char* what) {
  if (::setsockopt(fd, level, opt, &value, sizeof value) != 0) return errnoError(what);
  return {};
}

// Resolves the endpoint's host to one socket address. Numeric addresses are
// the norm; a name (say "localhost") takes its first address.
Result<sockaddr_storage> resolve(const config::Endpoint& ep, socklen_t& len, bool& dualStack) {
  sockaddr_storage ss{};
  dualStack = false;
  if (ep.host.empty()) {
    // "*": the IPv6 wildcard with IPV6_V6ONLY off serves both families;
    // bindTcp falls back to 0.0.0.0 when the host has no IPv6.
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    s6->sin6_addr = in6addr_any;
    s6->sin6_port = htons(ep.port);
    len = sizeof *s6;
    dualStack = true;
    return ss;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port = std::to_string(ep.port);
  int rc = ::getaddrinfo(ep.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || !res)
    return Error{"cannot resolve '" + ep.host + "': " + (rc ? gai_strerror(rc) : "no address")};
  CPtr<addrinfo, freeaddrinfo> owner(res);
  std::memcpy(&ss, res->ai_addr, res->ai_addrlen);
  len = res->ai_addrlen;
  return ss;
}

Result<UniqueFd> bindAddress(const sockaddr_storage& ss, socklen_t len, bool dualStack,
                             int backlog, const std::string& name) {
  int family = ss.ss_family;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errnoError("socket for " + name);
  if (auto s = setFlag(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR"); !s) return s.error();
  if (family == AF_INET6) {
    if (auto s = setFlag(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, dualStack ? 0 : 1, "IPV6_V6ONLY"); !s)
      return s.error();
  }
  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&ss), len) != 0)
    return errnoError("bind " + name);
  if (::listen(fd.get(), backlog) != 0) return errnoError("listen " + name);
  return fd;
}

Result<gid_t> lookupGroup(const std::string& name) {
  std::vector<char> buf(16384);
  group gr{};
  group* out = nullptr;
  int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &out);
  if (rc != 0) return errnoError("getgrnam " + name, rc);
  if (!out) return Error{"no such group '" + name + "'", ENOENT};
  return out->gr_gid;
}

}  // namespace

Result<UniqueFd> bindTcp(const config::Endpoint& ep, int backlog) {
  std::string name = describe(ep);
  socklen_t len = 0;
  bool dualStack = false;
  auto ss = resolve(ep, len, dualStack);
  if (!ss) return Error{name + ": " + ss.error().message};
  auto fd = bindAddress(*ss, len, dualStack, backlog, name);
  if (!fd && dualStack && fd.error().errnum == EAFNOSUPPORT) {
    sockaddr_storage v4{};
    auto* s4 = reinterpret_cast<sockaddr_in*>(&v4);
    s4->sin_family = AF_INET;
    s4->sin_addr.s_addr = htonl(INADDR_ANY);
    s4->sin_port = htons(ep.port);
    return bindAddress(v4, sizeof *s4, false, backlog, name);
  }
  return fd;
}

Result<UniqueFd> bindUnix(const std::string& path, unsigned mode, gid_t group, int backlog) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sun.sun_path)
    return Error{"unix socket path '" + path + "' is empty or longer than " +
                 std::to_string(sizeof sun.sun_path - 1) + " bytes", ENAMETOOLONG};
  std::memcpy(sun.sun_path, path.c_str(), path.size() + 1);
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);

  if (auto s = makeDirs(dirName(path), 0755); !s) return s.error();

  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd) return errnoError("socket for " + path);

  // A socket file left by a process that died is removed; one that still
  // has a listener means another instance runs; any other file is the
  // admin's and stays.
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return Error{path + ": exists and is not a socket; not removing it", EEXIST};
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!probe) return errnoError("socket for " + path);
    if (::connect(probe.get(), reinterpret_cast<const sockaddr*>(&sun), len) == 0)
      return Error{path + ": another process is listening on it", EADDRINUSE};
    if (::unlink(path.c_str()) != 0 && errno != ENOENT)
      return errnoError("remove stale socket " + path);
  } else if (errno != ENOENT) {
    return errnoError("lstat " + path);
  }

  if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&sun), len) != 0)
    return errnoError("bind " + path);
  if (::chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) return errnoError("chmod " + path);
  if (group != static_cast<gid_t>(-1) && ::chown(path.c_str(), static_cast<uid_t>(-1), group) != 0)
    return errnoError("chown " + path + " to group " + std::to_string(group));
  if (::listen(fd.get(), backlog) != 0) return errnoError("listen " + path);
  return fd;
}

Result<std::vector<Listener>> bindForSection(const config::Config& cfg, std::string_view section) {
  std::vector<Listener> out;
  for (const auto& spec : config::schema()) {
    if (spec.section != section) continue;
    std::string key(spec.key);
    auto fail = [&](const Error& e) -> Result<std::vector<Listener>> {
      return Error{cfg.where(section, key) + ": [" + std::string(section) + "] " + key + ": " +
                       e.message,
                   e.errnum};
    };
    if (spec.type == config::Type::Listen) {
      for (const auto& ep : cfg.endpoints(section, key)) {
        auto fd = bindTcp(ep);
        if (!fd) return fail(fd.error());
        out.push_back({key, std::move(*fd)});
      }
    } else if (spec.type == config::Type::UnixListen) {
      const std::string& path = cfg.str(section, key);
      if (path.empty()) continue;
      // Companion keys: <key>_mode and <key>_group, when the schema has them.
      unsigned mode = 0666;
      if (const auto* m = config::findKey(section, key + "_mode");
          m && m->type == config::Type::Mode)
        mode = cfg.mode(section, key + "_mode");
      gid_t gid = static_cast<gid_t>(-1);
      if (const auto* g = config::findKey(section, key + "_group");
          g && g->type == config::Type::String) {
        const std::string& name = cfg.str(section, key + "_group");
        if (!name.empty()) {
          auto r = lookupGroup(name);
          if (r) {
            gid = *r;
          } else {
            YLOG_WARN("socket group missing, keeping the default group section=%.*s key=%s "
                      "group=%s path=%s",
                      int(section.size()), section.data(), key.c_str(), name.c_str(), path.c_str());
          }
        }
      }
      // Only root may give a file to any group; in dev mode, keep ours.
      if (gid != static_cast<gid_t>(-1) && ::geteuid() != 0 && gid != ::getegid()) {
        YLOG_WARN("not root: socket keeps the default group path=%s", path.c_str());
        gid = static_cast<gid_t>(-1);
      }
      auto fd = bindUnix(path, mode, gid);
      if (!fd) return fail(fd.error());
      out.push_back({key, std::move(*fd)});
    }
  }
  return out;
}

std::vector<Listener> takeInheritedSockets() {
  std::vector<Listener> out;
  const char* pidText = ::getenv("LISTEN_PID");
  const char* fdsText = ::getenv("LISTEN_FDS");
  std::string names = ::getenv("LISTEN_FDNAMES") ? ::getenv("LISTEN_FDNAMES") : "";
  auto pid = pidText ? parseU64(pidText) : std::nullopt;
  auto count = fdsText ? parseU64(fdsText) : std::nullopt;
  // The variables are for us only; a program we start must not see them.
  ::unsetenv("LISTEN_PID");
  ::unsetenv("LISTEN_FDS");
  ::unsetenv("LISTEN_FDNAMES");
  if (!pid || !count || *pid != static_cast<uint64_t>(::getpid())) return out;
  if (*count > 4096) {
    YLOG_WARN("LISTEN_FDS=%s is implausible; ignoring the inherited sockets", fdsText);
    return out;
  }
  // Names are separated by ':'; split by hand because empty names count.
  std::vector<std::string> split;
  size_t start = 0;
  for (;;) {
    size_t colon = names.find(':', start);
    split.push_back(names.substr(start, colon == std::string::npos ? colon : colon - start));
    if (colon == std::string::npos) break;
    start = colon + 1;
  }
  for (int i = 0; i < static_cast<int>(*count); ++i) {
    int fd = kFirstFd + i;
    int flags = ::fcntl(fd, F_GETFD);
    if (flags < 0) {
      YLOG_WARN("inherited socket missing fd=%d", fd);
      continue;
    }
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
    std::string name = static_cast<size_t>(i) < split.size() && !split[i].empty()
                           ? split[i]
                           : std::string("unknown");
    out.push_back({std::move(name), UniqueFd(fd)});
  }
  return out;
}

Status passSockets(const std::vector<std::pair<std::string, int>>& fds) {
  const int n = static_cast<int>(fds.size());
  std::string names;
  for (int i = 0; i < n; ++i) {
    const std::string& name = fds[i].first;
    if (name.find(':') != std::string::npos)
      return Error{"socket name '" + name + "' contains ':'"};
    if (i > 0) names += ':';
    names += name;
  }
  // Two steps so that a source fd that already sits in 3..3+n-1 is not
  // overwritten before it is moved: first copy every fd above the target
  // range, then put each copy in its place.
  std::vector<int> tmp;
  tmp.reserve(fds.size());
  for (const auto& [name, fd] : fds) {
    int t = ::fcntl(fd, F_DUPFD_CLOEXEC, kFirstFd + n);
    if (t < 0) return errnoError("dup socket " + name);
    tmp.push_back(t);
  }
  for (int i = 0; i < n; ++i) {
    if (::dup2(tmp[i], kFirstFd + i) < 0) return errnoError("dup2 socket " + fds[i].first);
    ::close(tmp[i]);
    int flags = ::fcntl(kFirstFd + i, F_GETFD);
    if (flags < 0 || ::fcntl(kFirstFd + i, F_SETFD, flags & ~FD_CLOEXEC) != 0)
      return errnoError("clear close-on-exec on socket " + fds[i].first);
  }
  if (::setenv("LISTEN_FDS", std::to_string(n).c_str(), 1) != 0 ||
      ::setenv("LISTEN_PID", std::to_string(::getpid()).c_str(), 1) != 0 ||
      ::setenv("LISTEN_FDNAMES", names.c_str(), 1) != 0)
    return errnoError("setenv LISTEN_*");
  return {};
}

}  // namespace yubin::sys
