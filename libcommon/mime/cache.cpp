// mime/cache: see cache.hpp. Trust: decodes possibly tampered bytes.
#include "mime/cache.hpp"

namespace yubin::mime {
namespace {

constexpr std::string_view kMagic = "YMS\x01";

class Writer {
 public:
  void u(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void str(std::string_view s) {
    u(s.size());
    out_.append(s);
  }
  void opt(const std::optional<std::string>& s) {
    u(s ? 1 : 0);
    if (s) str(*s);
  }
  void params(const std::vector<Param>& ps) {
    u(ps.size());
    for (const auto& p : ps) {
      str(p.name);
      str(p.value);
    }
  }
  void addresses(const std::vector<EnvelopeAddress>& as) {
    u(as.size());
    for (const auto& a : as) {
      opt(a.name);
      opt(a.adl);
      opt(a.mailbox);
      opt(a.host);
    }
  }
  std::string& out() { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool atEnd() const { return pos_ == in_.size(); }
  uint64_t u() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) return fail();
      const auto b = static_cast<uint8_t>(in_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7F) << shift;
      if (!(b & 0x80)) return v;
    }
    return fail();
  }
  // A count of items that each take at least one byte: never more than
  // the bytes left, so a forged count cannot make us allocate.
  size_t count() {
    const uint64_t n = u();
    if (n > in_.size() - pos_) return static_cast<size_t>(fail());
    return static_cast<size_t>(n);
  }
  std::string str() {
    const size_t n = count();
    if (!ok_) return {};
    std::string s(in_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::optional<std::string> opt() {
    const uint64_t f = u();
    if (f > 1) fail();
    if (f != 1 || !ok_) return std::nullopt;
    return str();
  }
  std::vector<Param> params() {
    std::vector<Param> ps(count());
    for (auto& p : ps) {
      p.name = str();
      p.value = str();
    }
    return ps;
  }
  std::vector<EnvelopeAddress> addresses() {
    std::vector<EnvelopeAddress> as(count());
    for (auto& a : as) {
      a.name = opt();
      a.adl = opt();
      a.mailbox = opt();
      a.host = opt();
    }
    return as;
  }
  uint64_t fail() {
    ok_ = false;
    pos_ = in_.size();
    return 0;
  }

 private:
  std::string_view in_;
  size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace

std::string encodeStructure(const Structure& s) {
  Writer w;
  w.out().append(kMagic);
  w.u(s.size);
  w.u(s.truncated ? 1 : 0);
  w.u(s.parts.size());
  for (const auto& p : s.parts) {
    w.u(p.headerOffset);
    w.u(p.headerSize);
    w.u(p.headerBareLf);
    w.u(p.bodyOffset);
    w.u(p.bodySize);
    w.u(p.bodyBareLf);
    w.u(p.bodyLines);
    w.u(p.parent);
    w.u(p.depth);
    w.u((p.headerTruncated ? 1 : 0) | (p.envelope ? 2 : 0));
    w.str(p.type);
    w.str(p.subtype);
    w.params(p.params);
    w.opt(p.id);
    w.opt(p.description);
    w.opt(p.md5);
    w.opt(p.location);
    w.str(p.encoding);
    w.u(p.disposition ? 1 : 0);
    if (p.disposition) {
      w.str(p.disposition->type);
      w.params(p.disposition->params);
    }
    w.u(p.languages.size());
    for (const auto& l : p.languages) w.str(l);
    if (p.envelope) {
      const Envelope& e = *p.envelope;
      w.opt(e.date);
      w.opt(e.subject);
      w.opt(e.inReplyTo);
      w.opt(e.messageId);
      for (const auto* list : {&e.from, &e.sender, &e.replyTo, &e.to, &e.cc, &e.bcc})
        w.addresses(*list);
    }
  }
  return std::move(w.out());
}

Result<Structure> decodeStructure(std::string_view bytes) {
  if (bytes.substr(0, kMagic.size()) != kMagic)
    return Error{"structure cache: bad magic or version", 0};
  Reader r(bytes.substr(kMagic.size()));
  Structure s;
  s.size = r.u();
  const uint64_t truncated = r.u();
  s.truncated = truncated == 1;
  const size_t n = r.count();
  if (!r.ok() || truncated > 1 || n == 0) return Error{"structure cache: bad preamble", 0};
  for (size_t i = 0; i < n && r.ok(); ++i) {
    s.parts.emplace_back();  // one at a time: n is only bounded by the input size
    Part& p = s.parts.back();
    p.headerOffset = r.u();
    p.headerSize = r.u();
    p.headerBareLf = r.u();
    p.bodyOffset = r.u();
    p.bodySize = r.u();
    p.bodyBareLf = r.u();
    p.bodyLines = r.u();
    const uint64_t parent = r.u();
    const uint64_t depth = r.u();
    const uint64_t flags = r.u();
    if (!r.ok()) break;
    // Document order: a parent comes before its children; depth follows.
    const bool rootOk = i == 0 && parent == 0 && depth == 0;
    const bool childOk = i > 0 && parent < i && depth == s.parts[parent].depth + 1u;
    if ((!rootOk && !childOk) || depth > 255 || flags > 3)
      return Error{"structure cache: bad tree", 0};
    p.parent = static_cast<uint32_t>(parent);
    p.depth = static_cast<uint8_t>(depth);
    p.headerTruncated = flags & 1;
    if (p.headerOffset > s.size || p.headerSize > s.size - p.headerOffset ||
        p.bodyOffset > s.size || p.bodySize > s.size - p.bodyOffset ||
        p.headerBareLf > p.headerSize || p.bodyBareLf > p.bodySize || p.bodyLines > p.bodySize)
      return Error{"structure cache: range outside the message", 0};
    if (i > 0) s.parts[parent].children.push_back(static_cast<uint32_t>(i));
    p.type = r.str();
    p.subtype = r.str();
    p.params = r.params();
    p.id = r.opt();
    p.description = r.opt();
    p.md5 = r.opt();
    p.location = r.opt();
    p.encoding = r.str();
    const uint64_t hasDisposition = r.u();
    if (hasDisposition > 1) r.fail();
    if (hasDisposition == 1 && r.ok()) {
      Disposition d;
      d.type = r.str();
      d.params = r.params();
      p.disposition = std::move(d);
    }
    const size_t langs = r.count();
    for (size_t k = 0; k < langs && r.ok(); ++k) p.languages.push_back(r.str());
    if (flags & 2) {
      Envelope e;
      e.date = r.opt();
      e.subject = r.opt();
      e.inReplyTo = r.opt();
      e.messageId = r.opt();
      for (auto* list : {&e.from, &e.sender, &e.replyTo, &e.to, &e.cc, &e.bcc})
        *list = r.addresses();
      p.envelope = std::move(e);
    }
  }
  if (!r.ok() || !r.atEnd() || s.parts.size() != n)
    return Error{"structure cache: truncated or trailing bytes", 0};
  return s;
}

}  // namespace yubin::mime
