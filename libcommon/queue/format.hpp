// The on-disk formats of the queue: the message file, version 3 (header,
// envelope, message bytes, trailer with a checksum; versions 2, the same
// with a slower checksum, and 1, without the trailer, are still read) and
// the per-recipient state file. Byte-for-byte description in docs/queue.md. Encoders are used by the writer; the
// parsers are strict (unknown version, bad lengths, truncation, trailing
// bytes, out-of-range values, control characters are all errors) and are
// pure functions over bytes so the fuzz target can drive them directly.
// Trust: files are written by mtad only, but the parsers treat them as
// possibly corrupt (bit rot, a crash of a buggy older version, an admin's
// editor). Every parse error carries errnum EBADMSG, which tells the caller
// "quarantine this file" apart from an I/O error ("try again later").
// Standards: the envelope carries RFC 5321 paths, RFC 3461 DSN parameters
// (NOTIFY, ORCPT, RET, ENVID), RFC 6152 BODY and RFC 6531 SMTPUTF8.
#pragma once

#include <sodium.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::queue {

// Limits the parser enforces (and the writer refuses to exceed).
inline constexpr size_t kMaxFieldSize = 4096;
inline constexpr size_t kMaxRecipients = 100000;
inline constexpr size_t kMaxEnvelopeSize = 16u << 20;

// RFC 3461 RET.
enum class Ret : uint8_t { Unspecified, Full, Headers };
// RFC 6152 / RFC 3030 BODY.
enum class Body : uint8_t { Unspecified, SevenBit, EightBitMime, BinaryMime };

// RFC 3461 NOTIFY as a bit set; 0 means the client gave no NOTIFY, Never
// excludes the others. Ret, Body and these bits have the same values as
// their namesakes in mail/address.hpp, so the SMTP layer converts with a
// static_cast (the queue does not depend on the mail library).
inline constexpr uint8_t kNotifyNever = 1;
inline constexpr uint8_t kNotifySuccess = 2;
inline constexpr uint8_t kNotifyFailure = 4;
inline constexpr uint8_t kNotifyDelay = 8;

struct Recipient {
  std::string address;    // forward-path without the angle brackets
  uint8_t notify = 0;     // kNotify* bits
  std::string orcptType;  // ORCPT address type ("rfc822", "utf-8"), empty if no ORCPT
  std::string orcpt;      // ORCPT address, xtext-decoded (any bytes)

  bool operator==(const Recipient&) const = default;
};

// Everything the queue keeps about a message besides its bytes. Every field
// is at most kMaxFieldSize bytes. Text fields must not contain control
// characters (0x00-0x1f, 0x7f); UTF-8 is fine (SMTPUTF8). envid and orcpt
// are xtext-decoded values and may hold any byte: whoever displays them
// escapes them.
struct Envelope {
  std::string sender;                 // reverse-path without angle brackets; empty for <>
  bool nullSender = false;            // MAIL FROM:<>; must agree with sender.empty()
  std::vector<Recipient> recipients;  // at least one
  Ret ret = Ret::Unspecified;
  std::string envid;  // ENVID, xtext-decoded (any bytes), or empty
  Body body = Body::Unspecified;
  bool smtputf8 = false;
  int64_t arrivalTime = 0;    // seconds since the epoch, >= 0
  std::string clientAddress;  // e.g. "192.0.2.7" or "2001:db8::7"; empty for local
  std::string heloName;       // as given in HELO/EHLO
  std::string authUser;       // SASL authorisation identity, empty if none
  // Bytes of message data. Set by the reader from the file header; ignored
  // by the writer (it counts what is appended).
  uint64_t size = 0;

  bool operator==(const Envelope&) const = default;
};

// The version the writer writes. Versions 1 (no trailer) and 2 (the
// trailer's inner checksum a BLAKE2b-256) are read.
inline constexpr int kFormatVersion = 3;

// The fixed-size first line: "yubin-queue <version> <10-digit envelope
// length> <20-digit message length>\n". Its last field is written as 'x'
// characters and patched in place on commit.
inline constexpr size_t kHeaderSize = 46;

struct Header {
  int version = kFormatVersion;
  uint64_t envelopeSize = 0;
  uint64_t messageSize = 0;
  // Offset of the first message byte in the file.
  uint64_t messageOffset() const { return kHeaderSize + envelopeSize; }
  // Bytes of the file before the trailer (version 2) or of the whole file.
  uint64_t bodyEnd() const { return messageOffset() + messageSize; }
};

// The last line of versions 2 and 3, which proves the file whole:
// "yubin-end <20-digit length> <64 hex digits>\n", length = the bytes
// before the trailer, checksum = BLAKE2b-256 of (the 46-byte header as
// committed, then the inner checksum of every byte between the header and
// the trailer). The inner checksum is, in version 3, the CRC-32 of zlib
// (4 bytes, big-endian); in version 2, the BLAKE2b-256. It detects torn
// writes, not tampering (whoever can write the spool can write any
// message): version 2's hash cost the committer 0.1-0.2 ms of CPU for
// each 100 KB, a fifth of the machine at 2,400 messages/s; the CRC-32
// costs a tenth of that. Written before the commit's one fsync; a crash
// inside that fsync can leave the size right and earlier blocks stale,
// which the checksum catches.
inline constexpr size_t kTrailerSize = 96;
inline constexpr std::string_view kTrailerMagic = "yubin-end ";
inline constexpr size_t kChecksumSize = 32;

struct Trailer {
  uint64_t length = 0;
  std::string checksum;  // kChecksumSize raw bytes
};

// The checksum, computed as the file is written: update() with every byte
// after the header, in order; then trailer() with the final header.
class ImageHasher {
 public:
  explicit ImageHasher(int version = kFormatVersion);  // 2 or 3
  void update(std::string_view bytes);
  // The kTrailerSize bytes to append. Call once.
  std::string trailer(std::string_view header, uint64_t length);

 private:
  int version_;
  crypto_generichash_state state_;  // version 2
  unsigned long crc_ = 0;           // version 3
};

// Checks an envelope against the rules above. errnum EINVAL.
Status validateEnvelope(const Envelope& env);

// The header with the message length still unknown ('x' placeholders).
std::string encodeHeaderPlaceholder(uint64_t envelopeSize, int version = kFormatVersion);
// The 20 digits that replace the placeholder, and where they go.
std::string encodeMessageSize(uint64_t messageSize);
inline constexpr uint64_t kMessageSizeOffset = kHeaderSize - 21;
std::string encodeEnvelope(const Envelope& env);

Result<Header> parseHeader(std::string_view bytes);  // exactly kHeaderSize bytes
Result<Envelope> parseEnvelope(std::string_view bytes);
// Exactly kTrailerSize bytes: the shape only (magic, digits, hex).
Result<Trailer> parseTrailer(std::string_view bytes);
// Whether a whole version 2 or 3 file verifies: header, trailer at the end
// with the right length and checksum. EBADMSG with the reason otherwise.
Status verifyImage(std::string_view file);
// A whole file image: header, envelope, the message bytes filling the rest
// exactly (up to the trailer from version 2 on, whose checksum is verified).
// Sets Envelope::size. Used by tests, recovery and the fuzzer.
Result<Envelope> parseImage(std::string_view file);
// The committed file for an envelope and message, as the writer makes it.
std::string encodeImage(const Envelope& env, std::string_view message,
                        int version = kFormatVersion);

// Per-recipient delivery state, kept in state/<id> beside the message.
enum class RcptStatus : uint8_t { Pending, Delivered, Deferred, Bounced, Held };
const char* rcptStatusName(RcptStatus s);

struct RcptState {
  RcptStatus status = RcptStatus::Pending;
  uint32_t attempts = 0;
  int64_t lastAttempt = 0;  // seconds since the epoch; 0 = never tried
  int64_t nextAttempt = 0;  // for Deferred: not before this time; 0 = now
  // Last reply from the remote side (for Deferred and Bounced, also kept for
  // Delivered). Stored on one line: encodeState replaces control characters
  // by spaces and cuts it to kMaxFieldSize bytes.
  std::string reply;

  bool operator==(const RcptState&) const = default;
};

// One entry per envelope recipient, same order. A message without a state
// file has every recipient Pending.
struct MessageState {
  std::vector<RcptState> rcpts;
  bool operator==(const MessageState&) const = default;
};

std::string encodeState(const MessageState& state);
Result<MessageState> parseState(std::string_view bytes);

}  // namespace yubin::queue
