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

inline constexpr uint16_t kVersion = 1;
inline constexpr size_t kHeaderSize = 8;
inline constexpr uint32_t kMaxFrameSize = 1u << 20;

// Type numbers are stable within a version. Ranges: 1-15 ctl -> master
// commands, 16-63 reserved for queue commands (ctl -> master -> mtad),
// 100-127 master -> ctl replies, 200-227 master <-> daemon.
enum class MsgType : uint16_t {
  StatusCommand = 1,
  ReloadCommand = 2,
  StopCommand = 3,
  OkReply = 100,
  ErrorReply = 101,
  StatusReply = 102,
  StatusRequest = 200,
  DaemonStatus = 201,
};

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

using Message = std::variant<StatusCommand, ReloadCommand, StopCommand, OkReply, ErrorReply,
                             StatusReply, StatusRequest, DaemonStatus>;

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
