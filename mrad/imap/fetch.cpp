// FETCH item rendering and body streaming; see fetch.hpp.
#include "mrad/imap/fetch.hpp"

#include <algorithm>
#include <cstring>
#include <limits>

#include "imap/date.hpp"
#include "imap/response.hpp"
#include "mime/header.hpp"
#include "mime/render.hpp"
#include "mime/section.hpp"
#include "mime/transfer.hpp"

namespace yubin::mrad::imap {
namespace wire = yubin::imap;
namespace {

constexpr size_t kReadPiece = size_t{64} * 1024;
// The first read of a header alone (ENVELOPE without a cached structure).
constexpr size_t kHeaderPiece = size_t{4} * 1024;
constexpr uint64_t kNoEnd = std::numeric_limits<uint64_t>::max();

bool needsStructure(const wire::FetchAtt& a) {
  using K = wire::FetchAtt::Kind;
  switch (a.kind) {
    case K::Body:
    case K::BodyStructure:
    case K::Rfc822Text:
      return true;
    case K::BodySection:
      // The top-level header is found by reading up to its empty line.
      return !a.section.part.empty() || a.section.text == wire::Section::Text::Text ||
             a.section.text == wire::Section::Text::Mime;
    case K::Binary:
    case K::BinarySize:
      return !a.section.part.empty();
    default:
      return false;
  }
}

mime::SectionText sectionText(wire::Section::Text t) {
  switch (t) {
    case wire::Section::Text::None: return mime::SectionText::None;
    case wire::Section::Text::Header: return mime::SectionText::Header;
    case wire::Section::Text::HeaderFields: return mime::SectionText::HeaderFields;
    case wire::Section::Text::HeaderFieldsNot: return mime::SectionText::HeaderFieldsNot;
    case wire::Section::Text::Text: return mime::SectionText::Text;
    case wire::Section::Text::Mime: return mime::SectionText::Mime;
  }
  return mime::SectionText::None;
}

}  // namespace

std::string flagList(const store::MessageInfo& info, bool withRecent) {
  std::vector<std::string> flags;
  const uint8_t s = info.flags.system;
  if (s & store::kFlagAnswered) flags.emplace_back("\\Answered");
  if (s & store::kFlagFlagged) flags.emplace_back("\\Flagged");
  if (s & store::kFlagDeleted) flags.emplace_back("\\Deleted");
  if (s & store::kFlagSeen) flags.emplace_back("\\Seen");
  if (s & store::kFlagDraft) flags.emplace_back("\\Draft");
  for (const auto& k : info.flags.keywords) flags.push_back(k);
  if (info.recent && withRecent) flags.emplace_back("\\Recent");
  std::string out;
  wire::appendFlagList(out, flags);
  return out;
}

// ---- StructureCache ----

Result<std::shared_ptr<const mime::Structure>> StructureCache::get(store::ImapMailbox& box,
                                                                   size_t index) {
  const uint32_t uid = box.uidAt(index);
  for (auto it = entries_.begin(); it != entries_.end(); ++it) {
    if (it->first == uid) {
      entries_.splice(entries_.begin(), entries_, it);
      return entries_.front().second;
    }
  }
  auto reader = box.open(index);
  if (!reader) return reader.error();
  mime::StructureParser parser;
  std::string buf;
  for (;;) {
    buf.clear();
    auto n = (*reader)->read(buf, kReadPiece);
    if (!n) return n.error();
    if (*n == 0) break;
    parser.feed(buf);
  }
  auto s = std::make_shared<const mime::Structure>(parser.finish());
  entries_.emplace_front(uid, s);
  if (entries_.size() > capacity_) entries_.pop_back();
  return std::shared_ptr<const mime::Structure>(s);
}

Result<mime::Envelope> StructureCache::envelope(store::ImapMailbox& box, size_t index) {
  const uint32_t uid = box.uidAt(index);
  for (const auto& e : entries_) {
    if (e.first == uid && e.second->root().envelope) return *e.second->root().envelope;
  }
  // Only the header is read and parsed, up to and including the empty line
  // that ends it: in pieces that start at 4 KiB (most headers fit) and
  // double, so a FETCH ENVELOPE of a whole folder reads a few KiB of each
  // message, not 64 KiB of its body, and the parser never sees the body.
  auto reader = box.open(index);
  if (!reader) return reader.error();
  mime::StructureParser parser;
  std::string buf;
  std::string joined;
  std::string tail;  // the last two octets seen, to find the empty line across reads
  for (size_t piece = kHeaderPiece;; piece = std::min(piece * 2, kReadPiece)) {
    buf.clear();
    auto n = (*reader)->read(buf, piece);
    if (!n) return n.error();
    if (*n == 0) break;
    joined = tail;
    joined += buf;
    const size_t lf = joined.find("\n\n");
    const size_t crlf = joined.find("\n\r\n");
    const size_t end = std::min(lf == std::string::npos ? lf : lf + 2,
                                crlf == std::string::npos ? crlf : crlf + 3);
    if (end != std::string::npos) {
      // Past what earlier reads held (an end inside them was found then).
      parser.feed(std::string_view(buf).substr(0, end - tail.size()));
      break;
    }
    parser.feed(buf);
    tail = joined.substr(joined.size() - std::min<size_t>(2, joined.size()));
  }
  mime::Structure s = parser.finish();
  if (s.parts.empty() || !s.root().envelope) return mime::Envelope{};
  return *s.root().envelope;
}

// ---- Stream: one section's bytes, transformed, cut to a partial range ----

struct FetchJob::Stream {
  // HeaderCrlf: Crlf that stops after the first empty line (the top-level
  // header without a parsed structure).
  enum class Mode : uint8_t { Crlf, Raw, Filter, Decode, HeaderCrlf };
  std::unique_ptr<store::MessageReader> reader;
  uint64_t pos = 0;             // stored octets read from the message start
  uint64_t begin = 0, end = kNoEnd;  // stored range [begin, end)
  Mode mode = Mode::Crlf;
  bool prevCr = false;
  size_t lineLen = 0;           // HeaderCrlf: octets of the current line so far
  bool headerDone = false;
  std::unique_ptr<mime::HeaderFieldFilter> filter;
  std::unique_ptr<mime::TransferDecoder> decoder;
  bool finished = false;
  std::string pending;          // transformed octets not yet used
  size_t pendingPos = 0;
  uint64_t skip = 0;            // output octets to drop (partial origin)
  uint64_t left = kNoEnd;       // output octets still to write
  std::string buf;

  // Moves the next piece of output into pending; false at the end.
  Result<bool> pull() {
    pending.clear();
    pendingPos = 0;
    while (pending.empty()) {
      if (finished) return false;
      bool atEnd = pos >= end || headerDone || (filter && filter->done());
      if (!atEnd) {
        buf.clear();
        auto n = reader->read(buf, kReadPiece);
        if (!n) return n.error();
        if (*n == 0) {
          atEnd = true;
        } else {
          const uint64_t start = pos;
          pos += *n;
          uint64_t from = begin > start ? begin - start : 0;
          uint64_t to = end < pos ? end - start : *n;
          if (from < to) transform(std::string_view(buf).substr(from, to - from));
          if (pos >= end || headerDone || (filter && filter->done())) atEnd = true;
        }
      }
      if (atEnd) {
        if (filter) filter->finish(pending);
        if (decoder) decoder->finish(pending);
        finished = true;
      }
    }
    return true;
  }

  void transform(std::string_view in) {
    switch (mode) {
      case Mode::Raw:
        pending.append(in);
        break;
      case Mode::Crlf: {
        // Line by line (memchr), not byte by byte: BODY[] of a large
        // message is mostly this loop.
        size_t i = 0;
        while (i < in.size()) {
          const auto* lf = static_cast<const char*>(std::memchr(in.data() + i, '\n', in.size() - i));
          if (!lf) {
            pending.append(in.data() + i, in.size() - i);
            break;
          }
          const auto j = static_cast<size_t>(lf - in.data());
          const bool crBefore = j > 0 ? in[j - 1] == '\r' : prevCr;
          pending.append(in.data() + i, j - i);
          if (!crBefore) pending += '\r';
          pending += '\n';
          i = j + 1;
        }
        if (!in.empty()) prevCr = in.back() == '\r';
        break;
      }
      case Mode::Filter:
        filter->feed(in, pending);
        break;
      case Mode::HeaderCrlf:
        for (char c : in) {
          if (headerDone) break;
          if (c == '\n' && !prevCr) pending += '\r';
          pending += c;
          prevCr = c == '\r';
          if (c == '\n') {
            if (lineLen == 0) headerDone = true;
            lineLen = 0;
          } else if (c != '\r') {
            ++lineLen;
          }
        }
        break;
      case Mode::Decode:
        decoder->decode(in, pending);
        break;
    }
  }
};

namespace {

// What an item streams: the stored range and how it is transformed.
struct Source {
  bool exists = false;
  uint64_t begin = 0, end = kNoEnd;
  int mode = 0;  // Stream::Mode: 0 Crlf, 1 Raw, 2 Filter, 3 Decode, 4 HeaderCrlf
  std::vector<std::string> fields;
  bool exclude = false;
  mime::TransferEncoding encoding = mime::TransferEncoding::SevenBit;
  std::optional<uint64_t> knownSize;  // when known without reading
  bool unknownCte = false;
};

}  // namespace

FetchJob::FetchJob(store::ImapMailbox& box, StructureCache& cache, std::vector<size_t> indexes,
                   std::vector<wire::FetchAtt> atts, std::vector<bool> addFlags, bool utf8)
    : box_(box),
      cache_(cache),
      indexes_(std::move(indexes)),
      atts_(std::move(atts)),
      addFlags_(std::move(addFlags)),
      utf8_(utf8) {
  for (const auto& a : atts_) {
    if (needsContent(a)) needContent_ = true;
    if (a.kind == wire::FetchAtt::Kind::Flags) hasFlagsAtt_ = true;
    if (a.kind == wire::FetchAtt::Kind::ModSeq) hasModSeqAtt_ = true;
    if (a.kind == wire::FetchAtt::Kind::Uid) hasUidAtt_ = true;
  }
  addFlags_.resize(indexes_.size(), false);
}

FetchJob::~FetchJob() = default;

bool FetchJob::needsContent(const wire::FetchAtt& a) {
  using K = wire::FetchAtt::Kind;
  switch (a.kind) {
    case K::Flags:
    case K::InternalDate:
    case K::Rfc822Size:
    case K::Uid:
    case K::ModSeq:
      return false;
    default:
      return true;
  }
}

bool FetchJob::produce(std::string& out, size_t budget) {
  const size_t start = out.size();
  do {
    if (step(out, budget)) return true;
  } while (out.size() - start < budget);
  return false;
}

bool FetchJob::startMessage(std::string& out) {
  const size_t idx = indexes_[msg_];
  info_ = box_.messageAt(idx);
  const auto& info = info_;
  structure_.reset();
  if (info.expunged && needContent_) {
    ++missed_;
    return false;
  }
  bool wantStructure = false;
  for (const auto& a : atts_) wantStructure = wantStructure || needsStructure(a);
  if (wantStructure) {
    auto s = cache_.get(box_, idx);
    if (!s) {
      ++missed_;
      return false;
    }
    structure_ = std::move(*s);
  }
  out += "* ";
  out += std::to_string(idx + 1);
  out += " FETCH (";
  return true;
}

namespace {

// The source of a BODY[section] (or RFC822*) item.
Source bodySource(const mime::Structure* s, const wire::Section& section) {
  Source src;
  if (section.part.empty() && section.text == wire::Section::Text::None) {
    src.exists = true;  // the whole message; size = RFC822.SIZE
    src.mode = 0;
    return src;
  }
  if (section.part.empty() && (section.text == wire::Section::Text::Header ||
                               section.text == wire::Section::Text::HeaderFields ||
                               section.text == wire::Section::Text::HeaderFieldsNot)) {
    src.exists = true;  // read from the start up to the empty line
    if (section.text == wire::Section::Text::Header) {
      src.mode = 4;
    } else {
      src.mode = 2;
      src.fields = section.fields;
      src.exclude = section.text == wire::Section::Text::HeaderFieldsNot;
    }
    return src;
  }
  if (!s) return src;
  mime::SectionSpec spec{section.part, sectionText(section.text)};
  auto r = mime::sectionRange(*s, spec);
  if (!r) return src;
  src.exists = true;
  src.begin = r->offset;
  src.end = r->offset + r->size;
  if (section.text == wire::Section::Text::HeaderFields ||
      section.text == wire::Section::Text::HeaderFieldsNot) {
    src.mode = 2;
    src.fields = section.fields;
    src.exclude = section.text == wire::Section::Text::HeaderFieldsNot;
  } else {
    src.mode = 0;
    src.knownSize = r->crlfSize;
  }
  return src;
}

// The source of a BINARY[part] / BINARY.SIZE[part] item (RFC 3516).
Source binarySource(const mime::Structure* s, const std::vector<uint32_t>& path) {
  Source src;
  if (path.empty()) {
    src.exists = true;
    return src;
  }
  if (!s) return src;
  const mime::Part* p = mime::findPart(*s, path);
  if (!p) return src;
  src.exists = true;
  src.begin = p->bodyOffset;
  src.end = p->bodyOffset + p->bodySize;
  if (p->isMultipart() || p->isMessage()) {
    src.mode = 0;
    src.knownSize = p->bodySize + p->bodyBareLf;
    return src;
  }
  src.encoding = mime::transferEncodingFromName(p->encoding.empty() ? "7bit" : p->encoding);
  switch (src.encoding) {
    case mime::TransferEncoding::SevenBit:
    case mime::TransferEncoding::EightBit:
      src.mode = 0;
      src.knownSize = p->bodySize + p->bodyBareLf;
      break;
    case mime::TransferEncoding::Binary:
      src.mode = 1;
      src.knownSize = p->bodySize;
      break;
    case mime::TransferEncoding::QuotedPrintable:
    case mime::TransferEncoding::Base64:
      src.mode = 3;
      break;
    case mime::TransferEncoding::Unknown:
      src.unknownCte = true;
      break;
  }
  return src;
}

}  // namespace

void FetchJob::appendEnvelope(std::string& out, size_t idx, const mime::RenderOptions& ropts) {
  const uint32_t uid = info_.uid;
  if (headerCache_) {
    // Consecutive view indexes: no live message between their UIDs.
    if (idx == 0)
      headerCache_->dropBetween(0, uid);
    else if (sweptUid_ != 0 && sweptIdx_ + 1 == idx)
      headerCache_->dropBetween(sweptUid_, uid);
    sweptIdx_ = idx;
    sweptUid_ = uid;
    if (headerCache_->envelope(uid, ropts.utf8Quoted, out)) return;
  }
  std::optional<mime::Envelope> env;
  bool read = true;
  if (structure_) {
    env = structure_->root().envelope;
  } else if (auto e = cache_.envelope(box_, idx)) {
    env = std::move(*e);
  } else {
    read = false;  // unreadable (expunged elsewhere?): NIL fields, not kept
  }
  std::string rendered = mime::renderEnvelope(env ? *env : mime::Envelope{}, ropts);
  if (headerCache_ && read) headerCache_->storeEnvelope(uid, ropts.utf8Quoted, rendered);
  out += rendered;
}

void FetchJob::renderItem(std::string& out, const wire::FetchAtt& att) {
  using K = wire::FetchAtt::Kind;
  const size_t idx = indexes_[msg_];
  const auto& info = info_;
  if (item_ > 1) out += ' ';
  mime::RenderOptions ropts;
  ropts.utf8Quoted = utf8_;
  const mime::Structure* s = structure_.get();

  // Opens a stream for `src`, writes "name literal-header", leaves the
  // bytes to step(). binary: BINARY (literal8 when a NUL is inside).
  auto startStream = [&](const std::string& name, const Source& src, bool binary,
                         bool sizeOnly) {
    out += name;
    out += ' ';
    auto makeStream = [&]() -> Result<std::unique_ptr<Stream>> {
      auto reader = box_.open(idx);
      if (!reader) return reader.error();
      auto st = std::make_unique<Stream>();
      st->reader = std::move(*reader);
      st->begin = src.begin;
      st->end = src.end;
      st->mode = static_cast<Stream::Mode>(src.mode);
      if (st->mode == Stream::Mode::Filter)
        st->filter = std::make_unique<mime::HeaderFieldFilter>(src.fields, src.exclude);
      if (st->mode == Stream::Mode::Decode)
        st->decoder = std::make_unique<mime::TransferDecoder>(src.encoding);
      return st;
    };
    uint64_t total = 0;
    bool nul = false;
    if (src.knownSize) {
      total = *src.knownSize;
    } else if (src.begin == 0 && src.end == kNoEnd && src.mode == 0) {
      total = info.size;
    } else {
      // Counting pass.
      auto st = makeStream();
      if (!st) {
        out += sizeOnly ? "0" : "NIL";
        return;
      }
      for (;;) {
        auto more = (*st)->pull();
        if (!more || !*more) break;
        total += (*st)->pending.size();
        if (binary && !nul) nul = (*st)->pending.find('\0') != std::string::npos;
      }
    }
    if (sizeOnly) {
      out += std::to_string(total);
      return;
    }
    uint64_t skip = 0, count = total;
    if (att.partial) {
      skip = att.partial->first;
      count = skip >= total ? 0 : std::min(att.partial->second, total - skip);
    }
    if (count == 0) {
      out += "\"\"";
      return;
    }
    if (binary && src.knownSize && src.mode == 1) nul = true;  // raw binary: literal8 to be safe
    auto st = makeStream();
    if (!st) {
      out += "NIL";
      return;
    }
    wire::appendLiteralHeader(out, count, binary && nul);
    (*st)->skip = skip;
    (*st)->left = count;
    bodyBytes_ += count;
    stream_ = std::move(*st);
  };

  switch (att.kind) {
    case K::Flags:
      out += "FLAGS ";
      out += flagList(info, !utf8_);
      break;
    case K::InternalDate:
      out += "INTERNALDATE \"";
      out += wire::formatDateTime(wire::dateTimeFromUnix(info.internalDate, 0));
      out += '"';
      break;
    case K::Rfc822Size:
      out += "RFC822.SIZE ";
      out += std::to_string(info.size);
      break;
    case K::Uid:
      out += "UID ";
      out += std::to_string(info.uid);
      break;
    case K::ModSeq:
      out += "MODSEQ (";
      out += std::to_string(info.modSeq);
      out += ')';
      break;
    case K::Envelope:
      out += "ENVELOPE ";
      appendEnvelope(out, idx, ropts);
      break;
    case K::Body:
      out += "BODY ";
      out += mime::renderBody(*s, false, ropts);
      break;
    case K::BodyStructure:
      out += "BODYSTRUCTURE ";
      out += mime::renderBody(*s, true, ropts);
      break;
    case K::Rfc822:
    case K::Rfc822Header:
    case K::Rfc822Text:
    case K::BodySection: {
      wire::Section section = att.section;
      if (att.kind == K::Rfc822Header) section = {{}, wire::Section::Text::Header, {}};
      if (att.kind == K::Rfc822Text) section = {{}, wire::Section::Text::Text, {}};
      if (att.kind == K::Rfc822) section = {};
      Source src = bodySource(s, section);
      if (!src.exists) {
        out += att.responseName();
        out += " NIL";
        break;
      }
      startStream(att.responseName(), src, false, false);
      break;
    }
    case K::Binary:
    case K::BinarySize: {
      Source src = binarySource(s, att.section.part);
      const bool sizeOnly = att.kind == K::BinarySize;
      if (!src.exists || src.unknownCte) {
        if (src.unknownCte) unknownCte_ = true;
        out += att.responseName();
        out += sizeOnly ? " 0" : " NIL";
        break;
      }
      startStream(att.responseName(), src, true, sizeOnly);
      break;
    }
  }
}

bool FetchJob::step(std::string& out, size_t budget) {
  if (stream_) {
    Stream& st = *stream_;
    size_t written = 0;
    while (st.left > 0 && written < budget) {
      if (st.pendingPos == st.pending.size()) {
        auto more = st.pull();
        if (!more || !*more) {
          // The message ended early (it changed under us, or a read
          // failed): keep the literal's promise with blanks.
          const uint64_t n = std::min<uint64_t>(st.left, budget - written);
          out.append(static_cast<size_t>(n), ' ');
          st.left -= n;
          written += n;
          continue;
        }
      }
      size_t avail = st.pending.size() - st.pendingPos;
      if (st.skip > 0) {
        const size_t d = static_cast<size_t>(std::min<uint64_t>(st.skip, avail));
        st.skip -= d;
        st.pendingPos += d;
        continue;
      }
      const size_t n = static_cast<size_t>(
          std::min<uint64_t>({st.left, static_cast<uint64_t>(avail), budget - written}));
      out.append(st.pending, st.pendingPos, n);
      st.pendingPos += n;
      st.left -= n;
      written += n;
    }
    if (st.left == 0) stream_.reset();
    return false;
  }
  if (!inMessage_) {
    if (msg_ >= indexes_.size()) return true;
    if (!startMessage(out)) {
      ++msg_;
      return false;
    }
    inMessage_ = true;
    item_ = 0;
    return false;
  }
  if (item_ < atts_.size()) {
    ++item_;
    renderItem(out, atts_[item_ - 1]);
    return false;
  }
  if (addFlags_[msg_] && !hasFlagsAtt_) {
    if (!atts_.empty()) out += ' ';
    out += "FLAGS ";
    out += flagList(info_, !utf8_);
  }
  if (addFlags_[msg_] && condstore_ && !hasUidAtt_) {
    out += " UID ";
    out += std::to_string(info_.uid);
  }
  if (addFlags_[msg_] && condstore_ && !hasModSeqAtt_) {
    out += " MODSEQ (";
    out += std::to_string(info_.modSeq);
    out += ')';
  }
  out += ")\r\n";
  inMessage_ = false;
  structure_.reset();
  ++msg_;
  return false;
}

}  // namespace yubin::mrad::imap
