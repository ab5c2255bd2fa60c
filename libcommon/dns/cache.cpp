// TTLs from raw DNS messages and the keep-how-long rule of the resolver's
// cache. Trust: the messages are untrusted network input; see cache.hpp.
// Standards: RFC 1035 §4.1, RFC 2181 §8, RFC 2308 §5.
#include "dns/cache.hpp"

#include <algorithm>

#include "dns/resolver.hpp"

namespace yubin::dns {

namespace {

constexpr uint16_t kTypeSoa = 6;

class Reader {
 public:
  Reader(const unsigned char* msg, size_t len) : msg_(msg), len_(len) {}

  bool u16(uint16_t* out) {
    if (len_ - pos_ < 2 || pos_ > len_) return false;
    *out = static_cast<uint16_t>((msg_[pos_] << 8) | msg_[pos_ + 1]);
    pos_ += 2;
    return true;
  }
  bool u32(uint32_t* out) {
    uint16_t hi = 0, lo = 0;
    if (!u16(&hi) || !u16(&lo)) return false;
    *out = (static_cast<uint32_t>(hi) << 16) | lo;
    return true;
  }
  bool skip(size_t n) {
    if (pos_ > len_ || len_ - pos_ < n) return false;
    pos_ += n;
    return true;
  }
  // Skips an encoded name: labels up to the root, or up to a compression
  // pointer (two octets; where it points is never read).
  bool skipName() {
    for (size_t labels = 0; labels < 128; ++labels) {
      if (pos_ >= len_) return false;
      unsigned char c = msg_[pos_];
      if ((c & 0xc0) == 0xc0) return skip(2);
      if ((c & 0xc0) != 0) return false;  // 0x40 / 0x80: reserved label types
      if (!skip(1u + c)) return false;
      if (c == 0) return true;
    }
    return false;
  }
  size_t pos() const { return pos_; }

 private:
  const unsigned char* msg_;
  size_t len_;
  size_t pos_ = 0;
};

// RFC 2181 §8: a TTL with the most significant bit set is taken as zero.
uint32_t ttlValue(uint32_t raw) { return (raw & 0x80000000u) ? 0 : raw; }

}  // namespace

std::optional<MessageTtls> messageTtls(const unsigned char* msg, size_t len) {
  if (msg == nullptr) return std::nullopt;
  Reader r(msg, len);
  uint16_t id = 0, flags = 0, qd = 0, an = 0, ns = 0, ar = 0;
  if (!r.u16(&id) || !r.u16(&flags) || !r.u16(&qd) || !r.u16(&an) || !r.u16(&ns) || !r.u16(&ar))
    return std::nullopt;
  for (uint16_t i = 0; i < qd; ++i) {
    if (!r.skipName() || !r.skip(4)) return std::nullopt;
  }
  MessageTtls out;
  for (uint32_t i = 0; i < static_cast<uint32_t>(an) + ns; ++i) {
    uint16_t type = 0, klass = 0, rdlen = 0;
    uint32_t ttl = 0;
    if (!r.skipName() || !r.u16(&type) || !r.u16(&klass) || !r.u32(&ttl) || !r.u16(&rdlen))
      return std::nullopt;
    size_t rdata = r.pos();
    if (!r.skip(rdlen)) return std::nullopt;
    ttl = ttlValue(ttl);
    if (i < an) {
      out.answer = out.answer ? std::min(*out.answer, ttl) : ttl;
      continue;
    }
    if (type != kTypeSoa || out.negative) continue;
    // SOA RDATA: MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM.
    Reader soa(msg, rdata + rdlen);
    if (!soa.skip(rdata) || !soa.skipName() || !soa.skipName() || !soa.skip(16))
      return std::nullopt;
    uint32_t minimum = 0;
    if (!soa.u32(&minimum)) return std::nullopt;
    out.negative = std::min(ttl, ttlValue(minimum));
  }
  // The additional section is not read: nothing in it bounds these answers.
  return out;
}

std::chrono::seconds cacheTtl(Status status, const std::optional<MessageTtls>& ttls,
                              const CacheSettings& s) {
  using std::chrono::seconds;
  switch (status) {
    case Status::Ok:
      if (!ttls || !ttls->answer) return seconds(0);
      return std::min(seconds(*ttls->answer), s.maxTtl);
    case Status::NoData:
    case Status::NxDomain:
      if (!ttls) return seconds(0);
      if (ttls->negative) return std::min(seconds(*ttls->negative), s.negativeMaxTtl);
      return std::min(s.negativeTtl, s.negativeMaxTtl);
    case Status::TempFail:
    case Status::BadAnswer:
      return s.tempFailTtl;
  }
  return seconds(0);
}

}  // namespace yubin::dns
