// Encoding and strict decoding of the inter-process vocabulary; see ipc.hpp.
// Trust: parses bytes from local peers that may be hostile.
#include "ipc/ipc.hpp"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace yubin::ipc {
namespace {

class Writer {
 public:
  void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void u16(uint16_t v) {
    u8(static_cast<uint8_t>(v >> 8));
    u8(static_cast<uint8_t>(v));
  }
  void u32(uint32_t v) {
    u16(static_cast<uint16_t>(v >> 16));
    u16(static_cast<uint16_t>(v));
  }
  void u64(uint64_t v) {
    u32(static_cast<uint32_t>(v >> 32));
    u32(static_cast<uint32_t>(v));
  }
  void boolean(bool v) { u8(v ? 1 : 0); }
  void str(std::string_view s) {
    u32(static_cast<uint32_t>(s.size()));
    out_.append(s);
  }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

// Reads fields in order; the first failure sticks, so a decoder can read all
// its fields and check ok() once, then finish() for leftover bytes.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  uint8_t u8() {
    if (!need(1, "u8")) return 0;
    uint8_t v = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return v;
  }
  uint16_t u16() {
    if (!need(2, "u16")) return 0;
    uint16_t v = static_cast<uint16_t>(byte(0) << 8 | byte(1));
    in_.remove_prefix(2);
    return v;
  }
  uint32_t u32() {
    if (!need(4, "u32")) return 0;
    uint32_t v = static_cast<uint32_t>(byte(0)) << 24 | static_cast<uint32_t>(byte(1)) << 16 |
                 static_cast<uint32_t>(byte(2)) << 8 | static_cast<uint32_t>(byte(3));
    in_.remove_prefix(4);
    return v;
  }
  uint64_t u64() {
    uint64_t hi = u32();
    uint64_t lo = u32();
    return hi << 32 | lo;
  }
  bool boolean() {
    uint8_t v = u8();
    if (ok() && v > 1) fail("bool field is " + std::to_string(v) + ", not 0 or 1");
    return v == 1;
  }
  std::string str() {
    uint32_t n = u32();
    if (!need(n, "string")) return {};
    std::string s(in_.substr(0, n));
    in_.remove_prefix(n);
    return s;
  }
  // A list count, checked against what is left so a hostile count cannot
  // make us reserve memory: each element takes at least minItemSize bytes.
  uint32_t count(size_t minItemSize) {
    uint32_t n = u32();
    if (ok() && minItemSize > 0 && n > in_.size() / minItemSize)
      fail("list count " + std::to_string(n) + " exceeds the payload");
    return ok() ? n : 0;
  }

  void fail(std::string msg) {
    if (!error_) error_ = std::move(msg);
  }
  bool ok() const { return !error_.has_value(); }
  const std::string& error() const { return *error_; }
  size_t left() const { return in_.size(); }

 private:
  unsigned byte(size_t i) const { return static_cast<unsigned char>(in_[i]); }
  bool need(size_t n, const char* what) {
    if (!ok()) return false;
    if (in_.size() < n) {
      fail(std::string("truncated ") + what);
      return false;
    }
    return true;
  }

  std::string_view in_;
  std::optional<std::string> error_;
};

// Smallest encoding of one DaemonInfo: empty name (4) + pid 4 + state 1 +
// uptime 8 + restarts 4 + responding 1 + sessions 8.
constexpr size_t kMinDaemonInfoSize = 30;

// Smallest encodings: a QueueRcptInfo (three empty strings 12 + notify 1 +
// status 1 + attempts 4 + two times 16 + empty reply 4) and a
// QueueMessageInfo (id 4 + state 1 + sender 4 + arrival 8 + size 8 + envid 4
// + ret 1 + count 4).
constexpr size_t kMinRcptInfoSize = 38;
constexpr size_t kMinMessageInfoSize = 34;

void encodeMessages(Writer& w, const std::vector<QueueMessageInfo>& messages) {
  w.u32(static_cast<uint32_t>(messages.size()));
  for (const auto& m : messages) {
    w.str(m.id);
    w.u8(static_cast<uint8_t>(m.state));
    w.str(m.sender);
    w.u64(m.arrival);
    w.u64(m.size);
    w.str(m.envid);
    w.u8(m.ret);
    w.u32(static_cast<uint32_t>(m.recipients.size()));
    for (const auto& r : m.recipients) {
      w.str(r.address);
      w.str(r.orcptType);
      w.str(r.orcpt);
      w.u8(r.notify);
      w.u8(static_cast<uint8_t>(r.status));
      w.u32(r.attempts);
      w.u64(r.lastAttempt);
      w.u64(r.nextAttempt);
      w.str(r.reply);
    }
  }
}

bool validAction(uint8_t a) {
  return a >= static_cast<uint8_t>(QueueAction::List) &&
         a <= static_cast<uint8_t>(QueueAction::Bounce);
}

QueueAction readAction(Reader& r) {
  uint8_t a = r.u8();
  if (r.ok() && !validAction(a)) r.fail("unknown queue action " + std::to_string(a));
  return static_cast<QueueAction>(a);
}

std::vector<QueueMessageInfo> decodeMessages(Reader& r) {
  std::vector<QueueMessageInfo> out;
  uint32_t n = r.count(kMinMessageInfoSize);
  for (uint32_t i = 0; i < n && r.ok(); ++i) {
    QueueMessageInfo m;
    m.id = r.str();
    uint8_t st = r.u8();
    if (r.ok() && st > static_cast<uint8_t>(QueueMsgState::Active))
      r.fail("unknown message state " + std::to_string(st));
    m.state = static_cast<QueueMsgState>(st);
    m.sender = r.str();
    m.arrival = r.u64();
    m.size = r.u64();
    m.envid = r.str();
    m.ret = r.u8();
    if (r.ok() && m.ret > 2) r.fail("unknown RET value " + std::to_string(m.ret));
    uint32_t k = r.count(kMinRcptInfoSize);
    for (uint32_t j = 0; j < k && r.ok(); ++j) {
      QueueRcptInfo q;
      q.address = r.str();
      q.orcptType = r.str();
      q.orcpt = r.str();
      q.notify = r.u8();
      if (r.ok() && q.notify > 15) r.fail("NOTIFY bits " + std::to_string(q.notify));
      uint8_t s = r.u8();
      if (r.ok() && s > static_cast<uint8_t>(QueueRcptStatus::Held))
        r.fail("unknown recipient status " + std::to_string(s));
      q.status = static_cast<QueueRcptStatus>(s);
      q.attempts = r.u32();
      q.lastAttempt = r.u64();
      q.nextAttempt = r.u64();
      q.reply = r.str();
      m.recipients.push_back(std::move(q));
    }
    out.push_back(std::move(m));
  }
  return out;
}

void encodePayload(Writer& w, const Message& m) {
  struct Visitor {
    Writer& w;
    void operator()(const QueueCommand& c) {
      w.u8(static_cast<uint8_t>(c.action));
      w.str(c.id);
    }
    void operator()(const QueueReply& r) {
      w.str(r.text);
      encodeMessages(w, r.messages);
    }
    void operator()(const QueueRequest& r) {
      w.u32(r.serial);
      w.u8(static_cast<uint8_t>(r.action));
      w.str(r.id);
    }
    void operator()(const QueueResult& r) {
      w.u32(r.serial);
      w.boolean(r.ok);
      w.str(r.text);
      encodeMessages(w, r.messages);
    }
    void operator()(const StatusCommand&) {}
    void operator()(const ReloadCommand&) {}
    void operator()(const StopCommand&) {}
    void operator()(const OkReply& r) { w.str(r.text); }
    void operator()(const ErrorReply& r) { w.str(r.text); }
    void operator()(const StatusReply& r) {
      w.u32(r.masterPid);
      w.u64(r.masterUptimeSeconds);
      w.str(r.version);
      w.u32(static_cast<uint32_t>(r.daemons.size()));
      for (const auto& d : r.daemons) {
        w.str(d.name);
        w.u32(d.pid);
        w.u8(static_cast<uint8_t>(d.state));
        w.u64(d.uptimeSeconds);
        w.u32(d.restarts);
        w.boolean(d.responding);
        w.u64(d.sessions);
      }
    }
    void operator()(const StatusRequest& r) { w.u32(r.serial); }
    void operator()(const DaemonStatus& r) {
      w.u32(r.serial);
      w.u32(r.pid);
      w.u64(r.sessions);
    }
  };
  std::visit(Visitor{w}, m);
}

bool validState(uint8_t s) {
  return s >= static_cast<uint8_t>(DaemonState::Running) &&
         s <= static_cast<uint8_t>(DaemonState::Stopped);
}

// Decodes the fields of `type`; std::nullopt for a type number we do not know.
std::optional<Message> decodeFields(Reader& r, uint16_t type) {
  switch (static_cast<MsgType>(type)) {
    case MsgType::StatusCommand: return StatusCommand{};
    case MsgType::ReloadCommand: return ReloadCommand{};
    case MsgType::StopCommand: return StopCommand{};
    case MsgType::OkReply: return OkReply{r.str()};
    case MsgType::ErrorReply: return ErrorReply{r.str()};
    case MsgType::StatusReply: {
      StatusReply s;
      s.masterPid = r.u32();
      s.masterUptimeSeconds = r.u64();
      s.version = r.str();
      uint32_t n = r.count(kMinDaemonInfoSize);
      for (uint32_t i = 0; i < n && r.ok(); ++i) {
        DaemonInfo d;
        d.name = r.str();
        d.pid = r.u32();
        uint8_t st = r.u8();
        if (r.ok() && !validState(st)) r.fail("unknown daemon state " + std::to_string(st));
        d.state = static_cast<DaemonState>(st);
        d.uptimeSeconds = r.u64();
        d.restarts = r.u32();
        d.responding = r.boolean();
        d.sessions = r.u64();
        s.daemons.push_back(std::move(d));
      }
      return s;
    }
    case MsgType::StatusRequest: return StatusRequest{r.u32()};
    case MsgType::DaemonStatus: {
      DaemonStatus d;
      d.serial = r.u32();
      d.pid = r.u32();
      d.sessions = r.u64();
      return d;
    }
    case MsgType::QueueCommand: {
      QueueCommand c;
      c.action = readAction(r);
      c.id = r.str();
      return c;
    }
    case MsgType::QueueReply: {
      QueueReply q;
      q.text = r.str();
      q.messages = decodeMessages(r);
      return q;
    }
    case MsgType::QueueRequest: {
      QueueRequest q;
      q.serial = r.u32();
      q.action = readAction(r);
      q.id = r.str();
      return q;
    }
    case MsgType::QueueResult: {
      QueueResult q;
      q.serial = r.u32();
      q.ok = r.boolean();
      q.text = r.str();
      q.messages = decodeMessages(r);
      return q;
    }
  }
  return std::nullopt;
}

uint32_t readU32(std::string_view b) {
  return static_cast<uint32_t>(static_cast<unsigned char>(b[0])) << 24 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[1])) << 16 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[2])) << 8 |
         static_cast<uint32_t>(static_cast<unsigned char>(b[3]));
}
uint16_t readU16(std::string_view b) {
  return static_cast<uint16_t>(static_cast<unsigned char>(b[0]) << 8 |
                               static_cast<unsigned char>(b[1]));
}

struct Header {
  uint32_t length;
  uint16_t version;
  uint16_t type;
};

// Checks a header before its payload is read, so an oversized or foreign
// frame is refused before we buffer it.
Result<Header> parseHeader(std::string_view b, uint32_t maxFrame) {
  Header h{readU32(b), readU16(b.substr(4)), readU16(b.substr(6))};
  if (h.version != kVersion)
    return Error{"ipc: protocol version " + std::to_string(h.version) + ", expected " +
                 std::to_string(kVersion)};
  if (h.length > maxFrame)
    return Error{"ipc: frame of " + std::to_string(h.length) + " bytes exceeds the limit of " +
                 std::to_string(maxFrame)};
  return h;
}

}  // namespace

const char* stateName(DaemonState s) {
  switch (s) {
    case DaemonState::Running: return "running";
    case DaemonState::Backoff: return "backoff";
    case DaemonState::Stopping: return "stopping";
    case DaemonState::Stopped: return "stopped";
  }
  return "unknown";
}

MsgType typeOf(const Message& m) {
  struct Visitor {
    MsgType operator()(const StatusCommand&) { return MsgType::StatusCommand; }
    MsgType operator()(const ReloadCommand&) { return MsgType::ReloadCommand; }
    MsgType operator()(const StopCommand&) { return MsgType::StopCommand; }
    MsgType operator()(const OkReply&) { return MsgType::OkReply; }
    MsgType operator()(const ErrorReply&) { return MsgType::ErrorReply; }
    MsgType operator()(const StatusReply&) { return MsgType::StatusReply; }
    MsgType operator()(const StatusRequest&) { return MsgType::StatusRequest; }
    MsgType operator()(const DaemonStatus&) { return MsgType::DaemonStatus; }
    MsgType operator()(const QueueCommand&) { return MsgType::QueueCommand; }
    MsgType operator()(const QueueReply&) { return MsgType::QueueReply; }
    MsgType operator()(const QueueRequest&) { return MsgType::QueueRequest; }
    MsgType operator()(const QueueResult&) { return MsgType::QueueResult; }
  };
  return std::visit(Visitor{}, m);
}

const char* typeName(uint16_t type) {
  switch (static_cast<MsgType>(type)) {
    case MsgType::StatusCommand: return "StatusCommand";
    case MsgType::ReloadCommand: return "ReloadCommand";
    case MsgType::StopCommand: return "StopCommand";
    case MsgType::OkReply: return "OkReply";
    case MsgType::ErrorReply: return "ErrorReply";
    case MsgType::StatusReply: return "StatusReply";
    case MsgType::StatusRequest: return "StatusRequest";
    case MsgType::DaemonStatus: return "DaemonStatus";
    case MsgType::QueueCommand: return "QueueCommand";
    case MsgType::QueueReply: return "QueueReply";
    case MsgType::QueueRequest: return "QueueRequest";
    case MsgType::QueueResult: return "QueueResult";
  }
  return "unknown";
}

const char* queueActionName(QueueAction a) {
  switch (a) {
    case QueueAction::List: return "list";
    case QueueAction::Show: return "show";
    case QueueAction::Flush: return "flush";
    case QueueAction::Retry: return "retry";
    case QueueAction::Hold: return "hold";
    case QueueAction::Release: return "release";
    case QueueAction::Delete: return "delete";
    case QueueAction::Bounce: return "bounce";
  }
  return "unknown";
}

bool queueActionNeedsId(QueueAction a) { return a != QueueAction::List && a != QueueAction::Flush; }

const char* queueRcptStatusName(QueueRcptStatus s) {
  switch (s) {
    case QueueRcptStatus::Pending: return "pending";
    case QueueRcptStatus::Delivered: return "delivered";
    case QueueRcptStatus::Deferred: return "deferred";
    case QueueRcptStatus::Bounced: return "bounced";
    case QueueRcptStatus::Held: return "held";
  }
  return "unknown";
}

const char* queueMsgStateName(QueueMsgState s) {
  switch (s) {
    case QueueMsgState::Queued: return "queued";
    case QueueMsgState::Deferred: return "deferred";
    case QueueMsgState::Held: return "held";
    case QueueMsgState::Active: return "active";
  }
  return "unknown";
}

std::string encode(const Message& m) {
  Writer payload;
  encodePayload(payload, m);
  std::string body = payload.take();
  Writer frame;
  frame.u32(static_cast<uint32_t>(body.size()));
  frame.u16(kVersion);
  frame.u16(static_cast<uint16_t>(typeOf(m)));
  std::string out = frame.take();
  out += body;
  return out;
}

Result<Message> decodePayload(uint16_t version, uint16_t type, std::string_view payload) {
  if (version != kVersion)
    return Error{"ipc: protocol version " + std::to_string(version) + ", expected " +
                 std::to_string(kVersion)};
  Reader r(payload);
  std::optional<Message> m = decodeFields(r, type);
  if (!m) return Error{"ipc: unknown message type " + std::to_string(type)};
  if (!r.ok()) return Error{std::string("ipc: ") + typeName(type) + ": " + r.error()};
  if (r.left() != 0)
    return Error{std::string("ipc: ") + typeName(type) + ": " + std::to_string(r.left()) +
                 " bytes left over"};
  return std::move(*m);
}

Result<Message> decodeFrame(std::string_view frame, uint32_t maxFrame) {
  if (frame.size() < kHeaderSize) return Error{"ipc: truncated frame header"};
  auto h = parseHeader(frame, maxFrame);
  if (!h) return h.error();
  size_t have = frame.size() - kHeaderSize;
  if (have < h->length) return Error{"ipc: truncated frame"};
  if (have > h->length)
    return Error{"ipc: " + std::to_string(have - h->length) + " bytes after the frame"};
  return decodePayload(h->version, h->type, frame.substr(kHeaderSize));
}

void FrameReader::feed(std::string_view bytes) {
  if (failed_) return;
  // Drop consumed bytes once they dominate, so the buffer does not grow
  // without bound on a long-lived connection.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

Result<std::optional<Message>> FrameReader::next() {
  if (failed_) return *failed_;
  std::string_view avail(buf_.data() + pos_, buf_.size() - pos_);
  if (avail.size() < kHeaderSize) return std::optional<Message>();
  auto h = parseHeader(avail, maxFrame_);
  if (!h) {
    failed_ = h.error();
    return *failed_;
  }
  if (avail.size() - kHeaderSize < h->length) return std::optional<Message>();
  auto m = decodePayload(h->version, h->type, avail.substr(kHeaderSize, h->length));
  if (!m) {
    failed_ = m.error();
    return *failed_;
  }
  pos_ += kHeaderSize + h->length;
  if (pos_ == buf_.size()) {
    buf_.clear();
    pos_ = 0;
  }
  return std::optional<Message>(std::move(*m));
}

Status sendMessage(int fd, const Message& m) {
  std::string frame = encode(m);
  std::string_view left = frame;
  bool socket = true;
  while (!left.empty()) {
    ssize_t n = socket ? ::send(fd, left.data(), left.size(), MSG_NOSIGNAL)
                       : ::write(fd, left.data(), left.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOTSOCK && socket) {
        socket = false;
        continue;
      }
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        pollfd p{fd, POLLOUT, 0};
        if (::poll(&p, 1, -1) < 0 && errno != EINTR) return errnoError("ipc: poll");
        continue;
      }
      return errnoError("ipc: send");
    }
    left.remove_prefix(static_cast<size_t>(n));
  }
  return {};
}

Result<Message> receiveMessage(int fd, FrameReader& reader, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto m = reader.next();
    if (!m) return m.error();
    if (*m) return std::move(**m);
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline) return Error{"ipc: timed out waiting for a reply", ETIMEDOUT};
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    pollfd p{fd, POLLIN, 0};
    int rc = ::poll(&p, 1, static_cast<int>(ms) + 1);
    if (rc < 0) {
      if (errno == EINTR) continue;
      return errnoError("ipc: poll");
    }
    if (rc == 0) continue;
    char buf[4096];
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return errnoError("ipc: read");
    }
    if (n == 0)
      return Error{reader.buffered() ? "ipc: peer closed in the middle of a frame"
                                     : "ipc: peer closed the connection",
                   ECONNRESET};
    reader.feed(std::string_view(buf, static_cast<size_t>(n)));
  }
}

}  // namespace yubin::ipc
