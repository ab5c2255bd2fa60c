// The one message vocabulary between Yubin's processes: yubinctl <-> master
// (control socket) and master <-> daemons (the inherited "yubin-master"
// socketpair). Versioned, length-prefixed, decoded strictly: an unknown type,
// another version, a truncated field or bytes left over is a protocol error,
// never a guess.
//
// Trust: the control socket is reachable by local users (the master checks
// SO_PEERCRED before acting on anything), so every decoder treats its input
// as hostile. Standards: none; this is Yubin's own format.
//
// Wire format (all integers big-endian):
//
//   frame   = length:u32  version:u16  type:u16  payload[length]
//   payload = a fixed sequence of fields per type, each one of
//     u8 / u16 / u32 / u64        fixed width
//     bool                        u8, 0 or 1 (anything else is an error)
//     string                      length:u32 bytes[length]
//     list<T>                     count:u32 T[count]
//
// `length` counts the payload only (not the 8 header bytes). Frames larger
// than the reader's limit (kMaxFrameSize by default) are refused as soon as
// the header is seen. Adding a field or a type means bumping kVersion; both
// ends are built from one tree, so there is no negotiation.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "base/result.hpp"

namespace yubin::ipc {

// 2: the queue commands (QueueCommand, QueueReply, QueueRequest, QueueResult).
inline constexpr uint16_t kVersion = 2;
inline constexpr size_t kHeaderSize = 8;
inline constexpr uint32_t kMaxFrameSize = 1u << 20;

// Type numbers are stable within a version. Ranges: 1-15 ctl -> master
// commands, 16-63 queue commands (ctl -> master -> mtad), 100-127 master ->
// ctl replies, 200-227 master <-> daemon.
enum class MsgType : uint16_t {
  StatusCommand = 1,
  ReloadCommand = 2,
  StopCommand = 3,
  OkReply = 100,
  ErrorReply = 101,
  StatusReply = 102,
  StatusRequest = 200,
  DaemonStatus = 201,
  QueueCommand = 16,
  QueueReply = 103,
  QueueRequest = 202,
  QueueResult = 203,
};

// The name of mtad's queue channel among the sockets the master passes
// (LISTEN_FDNAMES): a socketpair, like the "yubin-master" status channel,
// carrying QueueRequest in and QueueResult out.
inline constexpr const char* kQueueChannelName = "yubin-queue";

// --- ctl -> master -------------------------------------------------------

// `yubinctl status`: the master answers StatusReply.
struct StatusCommand {
  bool operator==(const StatusCommand&) const = default;
};
// `yubinctl reload`: re-read the config, SIGHUP the daemons. OkReply or
// ErrorReply("file:line: ...").
struct ReloadCommand {
  bool operator==(const ReloadCommand&) const = default;
};
// `yubinctl stop`: the master answers OkReply, then stops everything.
struct StopCommand {
  bool operator==(const StopCommand&) const = default;
};

// --- master -> ctl -------------------------------------------------------

struct OkReply {
  std::string text;  // may be empty
  bool operator==(const OkReply&) const = default;
};
struct ErrorReply {
  std::string text;  // for the admin; "file:line: message" for config errors
  bool operator==(const ErrorReply&) const = default;
};

enum class DaemonState : uint8_t {
  Running = 1,   // process alive
  Backoff = 2,   // died; waiting for its restart delay
  Stopping = 3,  // SIGTERM sent, not yet reaped
  Stopped = 4,   // not running and not going to be restarted
};
const char* stateName(DaemonState s);

struct DaemonInfo {
  std::string name;            // config section, e.g. "mtad"
  uint32_t pid = 0;            // 0 when not running
  DaemonState state = DaemonState::Stopped;
  uint64_t uptimeSeconds = 0;  // since the current process started
  uint32_t restarts = 0;       // times restarted since the master started
  bool responding = false;     // answered the status request in time
  uint64_t sessions = 0;       // open sessions; meaningful if responding
  bool operator==(const DaemonInfo&) const = default;
};

struct StatusReply {
  uint32_t masterPid = 0;
  uint64_t masterUptimeSeconds = 0;
  std::string version;  // YUBIN_VERSION of the master
  std::vector<DaemonInfo> daemons;
  bool operator==(const StatusReply&) const = default;
};

// --- master <-> daemon ---------------------------------------------------

// Master -> daemon. The daemon answers DaemonStatus with the same serial, so
// a reply that arrives after the master gave up on its request is ignored.
struct StatusRequest {
  uint32_t serial = 0;
  bool operator==(const StatusRequest&) const = default;
};
struct DaemonStatus {
  uint32_t serial = 0;
  uint32_t pid = 0;
  uint64_t sessions = 0;
  bool operator==(const DaemonStatus&) const = default;
};

// --- queue commands: ctl -> master -> mtad and back ----------------------
//
// yubinctl sends QueueCommand to the master, which checks the peer's
// credentials, gives the command a serial and passes it to mtad as
// QueueRequest on the "yubin-queue" channel. mtad answers QueueResult with
// the same serial; the master turns it into QueueReply (ok) or ErrorReply
// (the text) for the client. Queue IDs travel as text and are validated by
// mtad (queue::QueueId::parse): the master and yubinctl only pass them on.

enum class QueueAction : uint8_t {
  List = 1,     // every message in queue/ and hold/
  Show = 2,     // one message, in detail
  Flush = 3,    // every deferred message: attempt now
  Retry = 4,    // one message: attempt now
  Hold = 5,     // no attempt until released; persists (hold/)
  Release = 6,  // back from hold: attempt now
  Delete = 7,   // removed without a report
  Bounce = 8,   // every pending recipient fails (5.0.0) with a DSN
};
// "list", "show", ... ("unknown" for other values).
const char* queueActionName(QueueAction a);
// Whether the action names one message (all but List and Flush).
bool queueActionNeedsId(QueueAction a);

// A recipient's state, the values of queue::RcptStatus.
enum class QueueRcptStatus : uint8_t {
  Pending = 0,
  Delivered = 1,
  Deferred = 2,
  Bounced = 3,
  Held = 4
};
const char* queueRcptStatusName(QueueRcptStatus s);  // "pending", ...

// Where a message stands as a whole.
enum class QueueMsgState : uint8_t {
  Queued = 0,    // waiting for its first attempt, or between attempts with none deferred
  Deferred = 1,  // some recipient waits for its retry time
  Held = 2,      // in hold/: no attempt until released
  Active = 3,    // an attempt is under way
};
const char* queueMsgStateName(QueueMsgState s);  // "queued", ...

struct QueueRcptInfo {
  std::string address;
  std::string orcptType;  // empty when no ORCPT was given
  std::string orcpt;      // xtext-decoded; any bytes
  uint8_t notify = 0;     // RFC 3461 NOTIFY bits as in queue/format.hpp (0: not given)
  QueueRcptStatus status = QueueRcptStatus::Pending;
  uint32_t attempts = 0;
  uint64_t lastAttempt = 0;  // seconds since the epoch; 0 = never
  uint64_t nextAttempt = 0;  // for Deferred; 0 = as soon as possible
  std::string reply;         // the last reply, one line
  bool operator==(const QueueRcptInfo&) const = default;
};

struct QueueMessageInfo {
  std::string id;
  QueueMsgState state = QueueMsgState::Queued;
  std::string sender;  // empty for <>
  uint64_t arrival = 0;
  uint64_t size = 0;   // message bytes
  std::string envid;   // RFC 3461 ENVID, xtext-decoded; any bytes
  uint8_t ret = 0;     // RFC 3461 RET: 0 not given, 1 FULL, 2 HDRS
  std::vector<QueueRcptInfo> recipients;
  bool operator==(const QueueMessageInfo&) const = default;
};

// ctl -> master.
struct QueueCommand {
  QueueAction action = QueueAction::List;
  std::string id;  // empty unless queueActionNeedsId(action)
  bool operator==(const QueueCommand&) const = default;
};
// master -> ctl: the command succeeded. `text` says what was done
// ("held", "scheduled 3 messages"); `messages` for List and Show.
struct QueueReply {
  std::string text;
  std::vector<QueueMessageInfo> messages;
  bool operator==(const QueueReply&) const = default;
};
// master -> mtad.
struct QueueRequest {
  uint32_t serial = 0;
  QueueAction action = QueueAction::List;
  std::string id;
  bool operator==(const QueueRequest&) const = default;
};
// mtad -> master: the answer to the request with this serial; !ok: `text`
// is the error for the admin ("no message 0123... in the queue").
struct QueueResult {
  uint32_t serial = 0;
  bool ok = false;
  std::string text;
  std::vector<QueueMessageInfo> messages;
  bool operator==(const QueueResult&) const = default;
};

using Message = std::variant<StatusCommand, ReloadCommand, StopCommand, OkReply, ErrorReply,
                             StatusReply, StatusRequest, DaemonStatus, QueueCommand, QueueReply,
                             QueueRequest, QueueResult>;

MsgType typeOf(const Message& m);
// "StatusCommand", ...; "unknown" for numbers that are not a MsgType.
const char* typeName(uint16_t type);

// A complete frame (header + payload) for m.
std::string encode(const Message& m);
// Decodes one payload of a frame whose header said (version, type).
Result<Message> decodePayload(uint16_t version, uint16_t type, std::string_view payload);
// Decodes exactly one complete frame; anything before or after is an error.
Result<Message> decodeFrame(std::string_view frame, uint32_t maxFrame = kMaxFrameSize);

// Incremental reader for a byte stream: feed() what arrives, then call
// next() until it yields nothing. After the first error every call fails the
// same way: a stream that broke the protocol is not resynchronised, the
// connection must be closed.
class FrameReader {
 public:
  explicit FrameReader(uint32_t maxFrame = kMaxFrameSize) : maxFrame_(maxFrame) {}
  void feed(std::string_view bytes);
  // A message, std::nullopt when more bytes are needed, or a protocol error.
  Result<std::optional<Message>> next();
  size_t buffered() const { return buf_.size() - pos_; }
  bool failed() const { return failed_.has_value(); }

 private:
  std::string buf_;
  size_t pos_ = 0;
  uint32_t maxFrame_;
  std::optional<Error> failed_;
};

// Blocking helpers for simple peers (yubinctl, tests): write one whole
// message (EINTR-safe, no SIGPIPE); read until one message arrives, the peer
// closes, or the timeout passes. `reader` keeps bytes that followed it.
Status sendMessage(int fd, const Message& m);
Result<Message> receiveMessage(int fd, FrameReader& reader, std::chrono::milliseconds timeout);

}  // namespace yubin::ipc
