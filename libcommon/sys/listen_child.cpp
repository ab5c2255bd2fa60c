// Test helper for listen_test: started through fork + passSockets + exec, it
// takes the inherited sockets and prints one line per socket
// ("name address cloexec=N") and whether the LISTEN_* variables are gone.
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <fcntl.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "sys/listen.hpp"

namespace {

std::string address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  if (ss.ss_family == AF_INET) return "tcp4:" + std::to_string(ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port));
  if (ss.ss_family == AF_INET6) return "tcp6:" + std::to_string(ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port));
  if (ss.ss_family == AF_UNIX) {
    const char* p = reinterpret_cast<sockaddr_un*>(&ss)->sun_path;
    return std::string("unix:") + (*p ? p : "(unnamed)");
  }
  return "other";
}

}  // namespace

int main() {
  // Before taking them, the sockets must have survived exec: no CLOEXEC.
  auto socks = yubin::sys::takeInheritedSockets();
  for (const auto& l : socks) {
    int flags = ::fcntl(l.fd.get(), F_GETFD);
    std::printf("%s %s fd=%d cloexec=%d\n", l.name.c_str(), address(l.fd.get()).c_str(),
                l.fd.get(), (flags & FD_CLOEXEC) ? 1 : 0);
  }
  bool clean = !std::getenv("LISTEN_PID") && !std::getenv("LISTEN_FDS") && !std::getenv("LISTEN_FDNAMES");
  std::printf("env=%s\n", clean ? "unset" : "set");
  return 0;
}
