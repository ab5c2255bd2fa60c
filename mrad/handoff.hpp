// The vocabulary between mrad's two processes: the login process (owns the
// listeners, TLS and the pre-authentication protocol) hands each
// authenticated session to the mail process (owns the mailboxes) over a
// SOCK_SEQPACKET socketpair made at start-up. One record = one message,
// with descriptors attached (SCM_RIGHTS). The first is always the mail
// process's end of a fresh socketpair, the session's link: the login
// process watches the other end, so the session counts against its
// connection limits until the mail process closes it. Over TLS the login
// process proxies the client's bytes through that pair (TLS stays in the
// login process). A plaintext session is handed over "direct": the second
// descriptor is the client's socket itself, which the login process then
// closes, so the mail process talks to the client without a proxy hop (two
// copies and a wake-up of the login process per piece saved, as Dovecot's
// login processes do), and the link carries no bytes.
//
// Framing follows libcommon/ipc (big-endian; header length:u32 version:u16
// type:u16; strings length:u32 + bytes; bool u8 0/1) with mrad's own type
// numbers, 300-319, kept apart from ipc's ranges (1-227). Decoding is
// strict: another version, an unknown type, a truncated field, a bad bool,
// bytes left over, a record without exactly one descriptor (two when
// direct; direct with TLS) = protocol error; the mail process then closes the channel and exits, which the
// login process sees as the mail process dying.
//
// Trust: the mail process treats the login process as able to
// authenticate users (that is its job), but checks every field: the
// mailbox must be the one its own Directory gives for the user, so a
// subverted login process cannot point it at another file.
// Standards: none; Yubin's own format.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.hpp"
#include "base/unique_fd.hpp"

namespace yubin::mrad {

// 2: the login command's tag (IMAP). 3: direct (the client's socket
// attached).
inline constexpr uint16_t kHandoffVersion = 3;
inline constexpr uint16_t kHandoffType = 300;
// A record never needs more: the pending input is bounded by the login
// session's line limit and buffer.
inline constexpr size_t kMaxHandoffRecord = 64 * 1024;

enum class Protocol : uint8_t { Pop3 = 1, Imap = 2 };
enum class MailboxKind : uint8_t { Maildir = 1, Mbox = 2 };

struct Handoff {
  Protocol protocol = Protocol::Pop3;
  std::string user;     // canonical address, from the Directory
  std::string mailbox;  // absolute path of the INBOX (Maildir root or mbox file)
  MailboxKind kind = MailboxKind::Maildir;
  std::string sessionId;  // for log lines in both processes
  std::string clientIp;
  bool tls = false;
  std::string method;   // login method for the log ("USER", "plain", ...)
  std::string tag;      // IMAP: the LOGIN / AUTHENTICATE tag the mail process answers; POP3: ""
  std::string pending;  // client bytes received after the login command
  // The client's socket is the second descriptor (plaintext sessions only).
  bool direct = false;
  bool operator==(const Handoff&) const = default;
};

std::string encodeHandoff(const Handoff& h);
Result<Handoff> decodeHandoff(std::string_view record);

// Sends one record with fd (the session's link) attached, and client (the
// client's socket) when h.direct. EAGAIN (the mail process is not keeping
// up) comes back as an error like any other.
Status sendHandoff(int channel, const Handoff& h, int fd, int client = -1);

struct Received {
  Handoff handoff;
  UniqueFd fd;      // the session's link (the proxied stream unless direct)
  UniqueFd client;  // direct: the client's socket
};
// Receives one record. nullopt-like states: Error with errnum EAGAIN (no
// record now), 0 (peer closed: message "closed"), else a protocol error.
Result<Received> receiveHandoff(int channel);

}  // namespace yubin::mrad
