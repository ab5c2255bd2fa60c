// mime/cache: see cache.hpp. Trust: decodes possibly tampered bytes.
#include "mime/cache.hpp"

namespace yubin::mime {
namespace {

constexpr std::string_view kMagic = "YMS\x01";

// Writer and Reader share one vocabulary, field(x), for every kind of value
// a part holds; the field lists below are written once for both, so that
// the encoder and the decoder cannot drift apart.
class Writer {
 public:
  void u(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void field(uint64_t v) { u(v); }
  void field(const std::string& s) {
    u(s.size());
    out_.append(s);
  }
  void field(const std::optional<std::string>& s) {
    u(s ? 1 : 0);
    if (s) field(*s);
  }
  void field(const std::vector<Param>& ps) {
    u(ps.size());
    for (const auto& p : ps) {
      field(p.name);
      field(p.value);
    }
  }
  void field(const std::optional<Disposition>& d) {
    u(d ? 1 : 0);
    if (d) {
      field(d->type);
      field(d->params);
    }
  }
  void field(const std::vector<std::string>& list) {
    u(list.size());
    for (const auto& s : list) field(s);
  }
  void field(const std::vector<EnvelopeAddress>& as) {
    u(as.size());
    for (const auto& a : as) {
      field(a.name);
      field(a.adl);
      field(a.mailbox);
      field(a.host);
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
  // 0 or 1: whether an optional value follows.
  bool present() {
    const uint64_t f = u();
    if (f > 1) fail();
    return f == 1 && ok_;
  }
  void field(uint64_t& v) { v = u(); }
  void field(std::string& s) {
    const size_t n = count();
    if (!ok_) return;
    s.assign(in_.substr(pos_, n));
    pos_ += n;
  }
  void field(std::optional<std::string>& s) {
    if (present()) field(s.emplace());
  }
  void field(std::vector<Param>& ps) {
    ps.resize(count());
    for (auto& p : ps) {
      field(p.name);
      field(p.value);
    }
  }
  void field(std::optional<Disposition>& d) {
    if (!present()) return;
    field(d.emplace().type);
    field(d->params);
  }
  void field(std::vector<std::string>& list) {
    const size_t n = count();
    for (size_t k = 0; k < n && ok_; ++k) field(list.emplace_back());
  }
  void field(std::vector<EnvelopeAddress>& as) {
    as.resize(count());
    for (auto& a : as) {
      field(a.name);
      field(a.adl);
      field(a.mailbox);
      field(a.host);
    }
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

// The fields of a part, in format order, before the tree fields (parent,
// depth, flags) that the decoder checks.
template <class Io, class P>
void sizeFields(Io& io, P& p) {
  io.field(p.headerOffset);
  io.field(p.headerSize);
  io.field(p.headerBareLf);
  io.field(p.bodyOffset);
  io.field(p.bodySize);
  io.field(p.bodyBareLf);
  io.field(p.bodyLines);
}

// ... and after them.
template <class Io, class P>
void contentFields(Io& io, P& p) {
  io.field(p.type);
  io.field(p.subtype);
  io.field(p.params);
  io.field(p.id);
  io.field(p.description);
  io.field(p.md5);
  io.field(p.location);
  io.field(p.encoding);
  io.field(p.disposition);
  io.field(p.languages);
}

template <class Io, class E>
void envelopeFields(Io& io, E& e) {
  io.field(e.date);
  io.field(e.subject);
  io.field(e.inReplyTo);
  io.field(e.messageId);
  for (auto* list : {&e.from, &e.sender, &e.replyTo, &e.to, &e.cc, &e.bcc}) io.field(*list);
}

}  // namespace

std::string encodeStructure(const Structure& s) {
  Writer w;
  w.out().append(kMagic);
  w.u(s.size);
  w.u(s.truncated ? 1 : 0);
  w.u(s.parts.size());
  for (const auto& p : s.parts) {
    sizeFields(w, p);
    w.u(p.parent);
    w.u(p.depth);
    w.u((p.headerTruncated ? 1 : 0) | (p.envelope ? 2 : 0));
    contentFields(w, p);
    if (p.envelope) envelopeFields(w, *p.envelope);
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
    sizeFields(r, p);
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
    contentFields(r, p);
    if (flags & 2) envelopeFields(r, p.envelope.emplace());
  }
  if (!r.ok() || !r.atEnd() || s.parts.size() != n)
    return Error{"structure cache: truncated or trailing bytes", 0};
  return s;
}

}  // namespace yubin::mime
