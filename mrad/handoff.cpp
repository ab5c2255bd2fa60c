// The login -> mail process vocabulary; see handoff.hpp.
#include "mrad/handoff.hpp"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstring>
#include <vector>

namespace yubin::mrad {
namespace {

void putU8(std::string& o, uint8_t v) { o.push_back(static_cast<char>(v)); }
void putU16(std::string& o, uint16_t v) {
  putU8(o, static_cast<uint8_t>(v >> 8));
  putU8(o, static_cast<uint8_t>(v));
}
void putU32(std::string& o, uint32_t v) {
  putU16(o, static_cast<uint16_t>(v >> 16));
  putU16(o, static_cast<uint16_t>(v));
}
void putString(std::string& o, std::string_view s) {
  putU32(o, static_cast<uint32_t>(s.size()));
  o.append(s);
}

class Reader {
 public:
  explicit Reader(std::string_view d) : d_(d) {}
  bool u8(uint8_t& v) {
    if (d_.size() < 1) return false;
    v = static_cast<uint8_t>(d_[0]);
    d_.remove_prefix(1);
    return true;
  }
  bool u16(uint16_t& v) {
    uint8_t a, b;
    if (!u8(a) || !u8(b)) return false;
    v = static_cast<uint16_t>(a << 8 | b);
    return true;
  }
  bool u32(uint32_t& v) {
    uint16_t a, b;
    if (!u16(a) || !u16(b)) return false;
    v = uint32_t{a} << 16 | b;
    return true;
  }
  bool boolean(bool& v) {
    uint8_t b;
    if (!u8(b) || b > 1) return false;
    v = b == 1;
    return true;
  }
  bool str(std::string& v) {
    uint32_t n;
    if (!u32(n) || d_.size() < n) return false;
    v.assign(d_.substr(0, n));
    d_.remove_prefix(n);
    return true;
  }
  bool empty() const { return d_.empty(); }

 private:
  std::string_view d_;
};

}  // namespace

std::string encodeHandoff(const Handoff& h) {
  std::string p;
  putU8(p, static_cast<uint8_t>(h.protocol));
  putString(p, h.user);
  putString(p, h.mailbox);
  putU8(p, static_cast<uint8_t>(h.kind));
  putString(p, h.sessionId);
  putString(p, h.clientIp);
  putU8(p, h.tls ? 1 : 0);
  putString(p, h.method);
  putString(p, h.tag);
  putString(p, h.pending);
  putU8(p, h.direct ? 1 : 0);
  std::string frame;
  putU32(frame, static_cast<uint32_t>(p.size()));
  putU16(frame, kHandoffVersion);
  putU16(frame, kHandoffType);
  return frame + p;
}

Result<Handoff> decodeHandoff(std::string_view record) {
  Reader r(record);
  uint32_t len;
  uint16_t version, type;
  if (!r.u32(len) || !r.u16(version) || !r.u16(type)) return Error{"handoff: short header"};
  if (version != kHandoffVersion)
    return Error{"handoff: version " + std::to_string(version) + ", expected " +
                 std::to_string(kHandoffVersion)};
  if (type != kHandoffType) return Error{"handoff: unknown type " + std::to_string(type)};
  if (len != record.size() - 8) return Error{"handoff: length does not match the record"};
  Handoff h;
  uint8_t proto, kind;
  if (!r.u8(proto) || !r.str(h.user) || !r.str(h.mailbox) || !r.u8(kind) ||
      !r.str(h.sessionId) || !r.str(h.clientIp) || !r.boolean(h.tls) || !r.str(h.method) ||
      !r.str(h.tag) || !r.str(h.pending) || !r.boolean(h.direct))
    return Error{"handoff: truncated or malformed field"};
  if (!r.empty()) return Error{"handoff: bytes left over"};
  if (proto != 1 && proto != 2) return Error{"handoff: unknown protocol"};
  if (proto == 2 && h.tag.empty()) return Error{"handoff: IMAP without the login tag"};
  if (kind != 1 && kind != 2) return Error{"handoff: unknown mailbox kind"};
  if (h.direct && h.tls) return Error{"handoff: direct with TLS (TLS stays in the login process)"};
  h.protocol = static_cast<Protocol>(proto);
  h.kind = static_cast<MailboxKind>(kind);
  return h;
}

Status sendHandoff(int channel, const Handoff& h, int fd, int client) {
  std::string rec = encodeHandoff(h);
  if (rec.size() > kMaxHandoffRecord) return Error{"handoff: record too large", EMSGSIZE};
  if (h.direct != (client >= 0)) return Error{"handoff: direct needs the client's socket", EINVAL};
  const int fds[2] = {fd, client};
  const size_t nfds = h.direct ? 2 : 1;
  iovec iov{rec.data(), rec.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof fds)];
  std::memset(ctl, 0, sizeof ctl);
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
  std::memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
  for (;;) {
    ssize_t n = ::sendmsg(channel, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("handoff: sendmsg");
    if (static_cast<size_t>(n) != rec.size()) return Error{"handoff: short send", EIO};
    return {};
  }
}

Result<Received> receiveHandoff(int channel) {
  std::string buf(kMaxHandoffRecord, '\0');
  iovec iov{buf.data(), buf.size()};
  alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 4)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = ctl;
  msg.msg_controllen = sizeof ctl;
  ssize_t n;
  do {
    n = ::recvmsg(channel, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errnoError("handoff: recvmsg");
  // Every descriptor that came is owned here first, so none leaks.
  std::vector<UniqueFd> fds;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      fds.emplace_back(fd);
    }
  }
  if (n == 0 && fds.empty()) return Error{"closed", 0};
  if (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) return Error{"handoff: record truncated", EPROTO};
  auto h = decodeHandoff(std::string_view(buf.data(), static_cast<size_t>(n)));
  if (!h) return Error{h.error().message, EPROTO};
  if (fds.size() != (h->direct ? 2u : 1u))
    return Error{h->direct ? "handoff: expected two descriptors" : "handoff: expected one descriptor",
                 EPROTO};
  Received got{std::move(*h), std::move(fds[0]), {}};
  if (got.handoff.direct) got.client = std::move(fds[1]);
  return got;
}

}  // namespace yubin::mrad
