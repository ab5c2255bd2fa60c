// Queue file formats (message file versions 1 to 3, state file version
// 1); see format.hpp and docs/queue.md.
#include "queue/format.hpp"

#include <cerrno>
#include <cstdio>
#include <limits>

#include <zlib.h>

namespace yubin::queue {
namespace {

constexpr std::string_view kMagic = "yubin-queue ";
constexpr std::string_view kStateMagic = "yubin-state 1\n";

Error corrupt(const std::string& what) { return Error{"corrupt queue file: " + what, EBADMSG}; }
Error corruptState(const std::string& what) {
  return Error{"corrupt state file: " + what, EBADMSG};
}

bool isText(std::string_view s) {
  for (unsigned char c : s)
    if (c < 0x20 || c == 0x7f) return false;
  return true;
}

// Canonical unsigned decimal: digits only, no leading zero (except "0").
bool parseDecimal(std::string_view s, uint64_t& out) {
  if (s.empty() || s.size() > 20) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  uint64_t v = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

// Records: "<key> <length>:<value>\n", key lowercase letters, length a
// canonical decimal of at most kMaxFieldSize.
class RecordWriter {
 public:
  void put(std::string_view key, std::string_view value) {
    out_.append(key);
    out_ += ' ';
    out_ += std::to_string(value.size());
    out_ += ':';
    out_.append(value);
    out_ += '\n';
  }
  void putNumber(std::string_view key, uint64_t v) { put(key, std::to_string(v)); }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class RecordReader {
 public:
  explicit RecordReader(std::string_view in) : in_(in) {}

  // Reads the next record, which must have this key. On failure sets an
  // error message and returns false. Unless binary, control characters in
  // the value are an error.
  bool get(std::string_view key, std::string_view& value, bool binary = false) {
    if (in_.size() < key.size() + 1 || in_.substr(0, key.size()) != key || in_[key.size()] != ' ')
      return fail("expected field '" + std::string(key) + "'");
    in_.remove_prefix(key.size() + 1);
    size_t colon = in_.find(':');
    // At most 4 digits for kMaxFieldSize; look no further than that.
    if (colon == std::string_view::npos || colon > 5)
      return fail("bad length of '" + std::string(key) + "'");
    uint64_t len = 0;
    if (!parseDecimal(in_.substr(0, colon), len))
      return fail("bad length of '" + std::string(key) + "'");
    if (len > kMaxFieldSize) return fail("field '" + std::string(key) + "' too long");
    in_.remove_prefix(colon + 1);
    if (in_.size() < len + 1) return fail("truncated in field '" + std::string(key) + "'");
    value = in_.substr(0, len);
    if (in_[len] != '\n') return fail("no newline after field '" + std::string(key) + "'");
    in_.remove_prefix(len + 1);
    if (!binary && !isText(value))
      return fail("control character in field '" + std::string(key) + "'");
    return true;
  }

  bool getNumber(std::string_view key, uint64_t& v, uint64_t max) {
    std::string_view s;
    if (!get(key, s)) return false;
    if (!parseDecimal(s, v) || v > max)
      return fail("bad number in field '" + std::string(key) + "'");
    return true;
  }

  bool getFlag(std::string_view key, bool& v) {
    uint64_t n = 0;
    if (!getNumber(key, n, 1)) return false;
    v = n == 1;
    return true;
  }

  bool atEnd() const { return in_.empty(); }
  const std::string& error() const { return error_; }
  bool fail(std::string msg) {
    if (error_.empty()) error_ = std::move(msg);
    return false;
  }

 private:
  std::string_view in_;
  std::string error_;
};

constexpr uint64_t kMaxTime = uint64_t{1} << 62;

const char* retName(Ret r) {
  switch (r) {
    case Ret::Unspecified:
      return "";
    case Ret::Full:
      return "FULL";
    case Ret::Headers:
      return "HDRS";
  }
  return "";
}

const char* bodyName(Body b) {
  switch (b) {
    case Body::Unspecified:
      return "";
    case Body::SevenBit:
      return "7BIT";
    case Body::EightBitMime:
      return "8BITMIME";
    case Body::BinaryMime:
      return "BINARYMIME";
  }
  return "";
}

bool notifyValid(uint64_t n) {
  if (n > 15) return false;
  return !((n & kNotifyNever) && n != kNotifyNever);
}

}  // namespace

Status validateEnvelope(const Envelope& env) {
  auto bad = [](const std::string& what) { return Error{"invalid envelope: " + what, EINVAL}; };
  auto text = [](const std::string& s) { return s.size() <= kMaxFieldSize && isText(s); };
  if (env.nullSender != env.sender.empty())
    return bad("null-sender flag disagrees with the sender");
  if (!text(env.sender) || !text(env.clientAddress) || !text(env.heloName) || !text(env.authUser))
    return bad("field too long or with a control character");
  if (env.envid.size() > kMaxFieldSize) return bad("ENVID too long");
  if (env.recipients.empty()) return bad("no recipients");
  if (env.recipients.size() > kMaxRecipients) return bad("too many recipients");
  if (env.arrivalTime < 0 || static_cast<uint64_t>(env.arrivalTime) > kMaxTime)
    return bad("arrival time out of range");
  for (const Recipient& r : env.recipients) {
    if (r.address.empty() || !text(r.address) || !text(r.orcptType) ||
        r.orcpt.size() > kMaxFieldSize)
      return bad("bad recipient");
    if (r.orcptType.empty() && !r.orcpt.empty()) return bad("ORCPT without its address type");
    if (!notifyValid(r.notify)) return bad("bad NOTIFY");
  }
  return {};
}

std::string encodeHeaderPlaceholder(uint64_t envelopeSize, int version) {
  char buf[kHeaderSize + 1];
  snprintf(buf, sizeof buf, "yubin-queue %d %010llu xxxxxxxxxxxxxxxxxxxx\n",
           version == 1 || version == 2 ? version : 3,
           static_cast<unsigned long long>(envelopeSize));
  return std::string(buf, kHeaderSize);
}

ImageHasher::ImageHasher(int version) : version_(version == 2 ? 2 : 3) {
  if (version_ == 2) crypto_generichash_init(&state_, nullptr, 0, kChecksumSize);
}

void ImageHasher::update(std::string_view bytes) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (version_ == 2)
    crypto_generichash_update(&state_, p, bytes.size());
  else
    crc_ = crc32_z(crc_, p, bytes.size());
}

namespace {

std::string outerChecksum(std::string_view header, const unsigned char* inner, size_t innerSize) {
  unsigned char out[kChecksumSize];
  crypto_generichash_state st;
  crypto_generichash_init(&st, nullptr, 0, kChecksumSize);
  crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(header.data()),
                            header.size());
  crypto_generichash_update(&st, inner, innerSize);
  crypto_generichash_final(&st, out, kChecksumSize);
  return std::string(reinterpret_cast<const char*>(out), kChecksumSize);
}

std::string encodeTrailer(uint64_t length, std::string_view checksum) {
  static const char kHex[] = "0123456789abcdef";
  char buf[kTrailerSize + 1];
  snprintf(buf, sizeof buf, "yubin-end %020llu ", static_cast<unsigned long long>(length));
  std::string out(buf, kTrailerMagic.size() + 21);
  for (unsigned char c : checksum) {
    out += kHex[c >> 4];
    out += kHex[c & 15];
  }
  out += '\n';
  return out;
}

}  // namespace

std::string ImageHasher::trailer(std::string_view header, uint64_t length) {
  unsigned char inner[kChecksumSize];
  size_t innerSize = kChecksumSize;
  if (version_ == 2) {
    crypto_generichash_final(&state_, inner, kChecksumSize);
  } else {
    for (int i = 0; i < 4; ++i) inner[i] = static_cast<unsigned char>(crc_ >> (24 - 8 * i));
    innerSize = 4;
  }
  return encodeTrailer(length, outerChecksum(header, inner, innerSize));
}

Result<Trailer> parseTrailer(std::string_view b) {
  if (b.size() != kTrailerSize || b.substr(0, kTrailerMagic.size()) != kTrailerMagic)
    return corrupt("no trailer (an uncommitted or torn file)");
  std::string_view len = b.substr(kTrailerMagic.size(), 20);
  if (b[kTrailerMagic.size() + 20] != ' ' || b[kTrailerSize - 1] != '\n' || len[0] != '0')
    return corrupt("bad trailer");
  Trailer t;
  for (char c : len) {
    if (c < '0' || c > '9') return corrupt("bad trailer length");
    t.length = t.length * 10 + static_cast<uint64_t>(c - '0');  // 19 digits: no overflow
  }
  std::string_view hex = b.substr(kTrailerMagic.size() + 21, 2 * kChecksumSize);
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (size_t i = 0; i < kChecksumSize; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return corrupt("bad trailer checksum");
    t.checksum += static_cast<char>(hi << 4 | lo);
  }
  return t;
}

Status verifyImage(std::string_view file) {
  if (file.size() < kHeaderSize + kTrailerSize) return corrupt("too short for a trailer");
  auto h = parseHeader(file.substr(0, kHeaderSize));
  if (!h) return h.error();
  if (h->version < 2) return corrupt("not a version 2 or 3 file");
  auto t = parseTrailer(file.substr(file.size() - kTrailerSize));
  if (!t) return t.error();
  if (t->length != file.size() - kTrailerSize) return corrupt("trailer length disagrees");
  if (h->bodyEnd() != t->length) return corrupt("header length disagrees with the trailer");
  ImageHasher hasher(h->version);
  hasher.update(file.substr(kHeaderSize, t->length - kHeaderSize));
  if (hasher.trailer(file.substr(0, kHeaderSize), t->length) !=
      file.substr(file.size() - kTrailerSize))
    return corrupt("checksum mismatch (a torn write)");
  return {};
}

std::string encodeImage(const Envelope& env, std::string_view message, int version) {
  std::string e = encodeEnvelope(env);
  std::string file = encodeHeaderPlaceholder(e.size(), version);
  file.replace(kMessageSizeOffset, 20, encodeMessageSize(message.size()));
  file += e;
  file += message;
  if (version == 1) return file;
  ImageHasher hasher(version);
  hasher.update(std::string_view(file).substr(kHeaderSize));
  std::string header = file.substr(0, kHeaderSize);
  file += hasher.trailer(header, file.size());
  return file;
}

std::string encodeMessageSize(uint64_t messageSize) {
  char buf[21];
  snprintf(buf, sizeof buf, "%020llu", static_cast<unsigned long long>(messageSize));
  return std::string(buf, 20);
}

std::string encodeEnvelope(const Envelope& env) {
  RecordWriter w;
  w.putNumber("time", static_cast<uint64_t>(env.arrivalTime));
  w.put("from", env.sender);
  w.putNumber("null", env.nullSender ? 1 : 0);
  w.put("ret", retName(env.ret));
  w.put("envid", env.envid);
  w.put("body", bodyName(env.body));
  w.putNumber("utf8", env.smtputf8 ? 1 : 0);
  w.put("client", env.clientAddress);
  w.put("helo", env.heloName);
  w.put("auth", env.authUser);
  w.putNumber("rcpts", env.recipients.size());
  for (const Recipient& r : env.recipients) {
    w.put("to", r.address);
    w.putNumber("notify", r.notify);
    w.put("otype", r.orcptType);
    w.put("orcpt", r.orcpt);
  }
  return w.take();
}

Result<Header> parseHeader(std::string_view b) {
  if (b.size() < kMagic.size() || b.substr(0, kMagic.size()) != kMagic) return corrupt("bad magic");
  // The version comes first so a future layout is reported as what it is.
  std::string_view rest = b.substr(kMagic.size());
  size_t sp = rest.find(' ');
  std::string_view version = rest.substr(0, sp);
  if (version != "1" && version != "2" && version != "3") {
    uint64_t v = 0;
    if (parseDecimal(version, v)) return corrupt("unsupported version " + std::to_string(v));
    return corrupt("bad version");
  }
  if (b.size() != kHeaderSize) return corrupt("truncated header");
  if (b[13] != ' ' || b[24] != ' ' || b[45] != '\n') return corrupt("bad header layout");
  auto digits = [](std::string_view s, uint64_t& v) {
    v = 0;
    for (char c : s) {
      if (c < '0' || c > '9') return false;
      v = v * 10 + static_cast<uint64_t>(c - '0');  // 20 digits may overflow: checked below
    }
    return true;
  };
  Header h;
  h.version = b[12] - '0';
  if (!digits(b.substr(14, 10), h.envelopeSize)) return corrupt("bad envelope length");
  if (h.envelopeSize > kMaxEnvelopeSize) return corrupt("envelope length out of range");
  std::string_view ms = b.substr(25, 20);
  if (ms == "xxxxxxxxxxxxxxxxxxxx")
    return corrupt("message length never written (uncommitted file)");
  // 20 digits can exceed 2^64; anything above 2^62 is absurd for a file anyway.
  if (ms[0] != '0' || !digits(ms, h.messageSize) || h.messageSize > (uint64_t{1} << 62))
    return corrupt("bad message length");
  return h;
}

Result<Envelope> parseEnvelope(std::string_view bytes) {
  if (bytes.size() > kMaxEnvelopeSize) return corrupt("envelope too large");
  RecordReader r(bytes);
  Envelope env;
  std::string_view s;
  uint64_t n = 0;
  bool ok = r.getNumber("time", n, kMaxTime);
  env.arrivalTime = static_cast<int64_t>(n);
  ok = ok && r.get("from", s);
  if (ok) env.sender = s;
  ok = ok && r.getFlag("null", env.nullSender);
  ok = ok && r.get("ret", s);
  if (ok) {
    if (s.empty())
      env.ret = Ret::Unspecified;
    else if (s == "FULL")
      env.ret = Ret::Full;
    else if (s == "HDRS")
      env.ret = Ret::Headers;
    else
      ok = r.fail("bad RET");
  }
  ok = ok && r.get("envid", s, true);
  if (ok) env.envid = s;
  ok = ok && r.get("body", s);
  if (ok) {
    if (s.empty())
      env.body = Body::Unspecified;
    else if (s == "7BIT")
      env.body = Body::SevenBit;
    else if (s == "8BITMIME")
      env.body = Body::EightBitMime;
    else if (s == "BINARYMIME")
      env.body = Body::BinaryMime;
    else
      ok = r.fail("bad BODY");
  }
  ok = ok && r.getFlag("utf8", env.smtputf8);
  ok = ok && r.get("client", s);
  if (ok) env.clientAddress = s;
  ok = ok && r.get("helo", s);
  if (ok) env.heloName = s;
  ok = ok && r.get("auth", s);
  if (ok) env.authUser = s;
  uint64_t count = 0;
  ok = ok && r.getNumber("rcpts", count, kMaxRecipients);
  if (ok && count == 0) ok = r.fail("no recipients");
  for (uint64_t i = 0; ok && i < count; ++i) {
    Recipient rc;
    ok = r.get("to", s);
    if (ok) rc.address = s;
    uint64_t notify = 0;
    ok = ok && r.getNumber("notify", notify, 15);
    rc.notify = static_cast<uint8_t>(notify);
    ok = ok && r.get("otype", s);
    if (ok) rc.orcptType = s;
    ok = ok && r.get("orcpt", s, true);
    if (ok) rc.orcpt = s;
    if (ok) env.recipients.push_back(std::move(rc));
  }
  if (ok && !r.atEnd()) ok = r.fail("trailing bytes after the envelope");
  if (!ok) return corrupt(r.error());
  if (auto st = validateEnvelope(env); !st) return corrupt(st.error().message);
  return env;
}

Result<Envelope> parseImage(std::string_view file) {
  if (file.size() < kHeaderSize) {
    // Still report a wrong magic or version as such.
    auto h = parseHeader(file);
    return h ? corrupt("truncated header") : h.error();
  }
  auto h = parseHeader(file.substr(0, kHeaderSize));
  if (!h) return h.error();
  if (h->version >= 2) {
    if (auto st = verifyImage(file); !st) return st.error();
    file.remove_suffix(kTrailerSize);
  }
  if (file.size() - kHeaderSize < h->envelopeSize) return corrupt("truncated envelope");
  auto env = parseEnvelope(file.substr(kHeaderSize, h->envelopeSize));
  if (!env) return env.error();
  uint64_t rest = file.size() - h->messageOffset();
  if (rest < h->messageSize) return corrupt("truncated message");
  if (rest > h->messageSize) return corrupt("trailing bytes after the message");
  env->size = h->messageSize;
  return env;
}

const char* rcptStatusName(RcptStatus s) {
  switch (s) {
    case RcptStatus::Pending:
      return "pending";
    case RcptStatus::Delivered:
      return "delivered";
    case RcptStatus::Deferred:
      return "deferred";
    case RcptStatus::Bounced:
      return "bounced";
    case RcptStatus::Held:
      return "held";
  }
  return "pending";
}

std::string encodeState(const MessageState& state) {
  RecordWriter w;
  w.putNumber("rcpts", state.rcpts.size());
  for (const RcptState& r : state.rcpts) {
    w.put("status", rcptStatusName(r.status));
    w.putNumber("attempts", r.attempts);
    w.putNumber("last", static_cast<uint64_t>(r.lastAttempt < 0 ? 0 : r.lastAttempt));
    w.putNumber("next", static_cast<uint64_t>(r.nextAttempt < 0 ? 0 : r.nextAttempt));
    std::string reply = r.reply.substr(0, kMaxFieldSize);
    for (char& c : reply)
      if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
    w.put("reply", reply);
  }
  return std::string(kStateMagic) + w.take();
}

Result<MessageState> parseState(std::string_view bytes) {
  if (bytes.size() < kStateMagic.size() || bytes.substr(0, kStateMagic.size()) != kStateMagic) {
    if (bytes.substr(0, 12) == "yubin-state ") return corruptState("unsupported version");
    return corruptState("bad magic");
  }
  RecordReader r(bytes.substr(kStateMagic.size()));
  MessageState st;
  uint64_t count = 0;
  bool ok = r.getNumber("rcpts", count, kMaxRecipients);
  for (uint64_t i = 0; ok && i < count; ++i) {
    RcptState rs;
    std::string_view s;
    ok = r.get("status", s);
    if (ok) {
      if (s == "pending")
        rs.status = RcptStatus::Pending;
      else if (s == "delivered")
        rs.status = RcptStatus::Delivered;
      else if (s == "deferred")
        rs.status = RcptStatus::Deferred;
      else if (s == "bounced")
        rs.status = RcptStatus::Bounced;
      else if (s == "held")
        rs.status = RcptStatus::Held;
      else
        ok = r.fail("bad status");
    }
    uint64_t n = 0;
    ok = ok && r.getNumber("attempts", n, std::numeric_limits<uint32_t>::max());
    rs.attempts = static_cast<uint32_t>(n);
    ok = ok && r.getNumber("last", n, kMaxTime);
    rs.lastAttempt = static_cast<int64_t>(n);
    ok = ok && r.getNumber("next", n, kMaxTime);
    rs.nextAttempt = static_cast<int64_t>(n);
    ok = ok && r.get("reply", s);
    if (ok) rs.reply = s;
    if (ok) st.rcpts.push_back(std::move(rs));
  }
  if (ok && !r.atEnd()) ok = r.fail("trailing bytes");
  if (!ok) return corruptState(r.error());
  return st;
}

}  // namespace yubin::queue
