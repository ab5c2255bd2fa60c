// mime/structure: see structure.hpp. Trust: parses untrusted message bytes.
#include "mime/structure.hpp"

#include <algorithm>

#include "base/strings.hpp"

namespace yubin::mime {
namespace {

constexpr const char* kEnvelopeFields[] = {"date", "subject", "from", "sender",      "reply-to",
                                           "to",   "cc",      "bcc",  "in-reply-to", "message-id"};

bool keepField(std::string_view name) {
  if (istartsWith(name, "content-")) return true;
  for (const char* f : kEnvelopeFields)
    if (iequals(name, f)) return true;
  return false;
}

bool isBlank(char c) { return c == ' ' || c == '\t'; }

// 1: delimiter, 2: close delimiter, 0: neither.
int matchBoundary(const Line& line, std::string_view boundary) {
  const std::string_view t = line.text;
  if (t.size() < boundary.size() + 2 || t[0] != '-' || t[1] != '-' ||
      t.substr(2, boundary.size()) != boundary)
    return 0;
  std::string_view rest = t.substr(2 + boundary.size());
  if (rest.size() >= 2 && rest[0] == '-' && rest[1] == '-') return 2;
  for (char c : rest)
    if (!isBlank(c)) return 0;
  return 1;
}

std::optional<std::string> fieldValue(const HeaderCollector& h, std::string_view name) {
  const HeaderField* f = h.find(name);
  if (!f) return std::nullopt;
  return unfold(f->value);
}

std::optional<std::string> nonEmpty(std::optional<std::string> v) {
  if (v && v->empty()) return std::nullopt;
  return v;
}

std::vector<EnvelopeAddress> addresses(const HeaderCollector& h, std::string_view name) {
  const HeaderField* f = h.find(name);
  if (!f) return {};
  return parseAddressList(f->value);
}

}  // namespace

bool Part::isMultipart() const { return iequals(type, "multipart"); }
bool Part::isMessage() const {
  return iequals(type, "message") && (iequals(subtype, "rfc822") || iequals(subtype, "global"));
}
bool Part::isText() const { return iequals(type, "text"); }

struct StructureParser::Open {
  uint32_t part = 0;
  bool inHeader = true;
  bool digestChild = false;  // default type message/rfc822
  bool messageRoot = false;
  bool closed = false;   // close delimiter seen: the rest is epilogue
  std::string boundary;  // multipart whose children are parsed
  uint64_t lfAtBody = 0, bareAtBody = 0, bareAtHeader = 0;
  std::optional<HeaderCollector> header;
};

StructureParser::StructureParser(StructureLimits limits)
    : limits_(limits), lines_(limits.header.maxLine) {
  limits_.maxDepth = std::min<size_t>(limits_.maxDepth, 200);  // depth is a uint8_t
  limits_.maxParts = std::max<size_t>(limits_.maxParts, 1);
  openPart(0, 0, 0, false, true);
}

StructureParser::~StructureParser() = default;

void StructureParser::openPart(uint64_t offset, uint32_t parent, uint8_t depth, bool digestChild,
                               bool messageRoot) {
  const auto index = static_cast<uint32_t>(s_.parts.size());
  Part p;
  p.headerOffset = offset;
  p.bodyOffset = offset;
  p.parent = index == 0 ? 0 : parent;
  p.depth = depth;
  s_.parts.push_back(std::move(p));
  if (index != 0) s_.parts[parent].children.push_back(index);
  auto e = std::make_unique<Open>();
  e->part = index;
  e->digestChild = digestChild;
  e->messageRoot = messageRoot;
  e->bareAtHeader = bareLf_;
  e->header.emplace(limits_.header, &keepField);
  stack_.push_back(std::move(e));
}

void StructureParser::updateKeep() {
  if (!stack_.empty() && stack_.back()->inHeader) {
    lines_.setKeep(limits_.header.maxLine);
  } else {
    lines_.setKeep(boundaries_ > 0 ? kMaxBoundary + 8 : 0);
  }
}

// Interprets the header of e's part; the body starts at bodyStart.
void StructureParser::endHeader(Open& e, uint64_t bodyStart, uint64_t lfAfter, uint64_t bareAfter) {
  Part& p = s_.parts[e.part];
  const HeaderCollector& h = *e.header;
  p.headerSize = bodyStart - p.headerOffset;
  p.headerBareLf = bareAfter - e.bareAtHeader;
  p.headerTruncated = h.truncated();
  if (h.truncated()) s_.truncated = true;
  p.bodyOffset = bodyStart;
  e.inHeader = false;
  e.lfAtBody = lfAfter;
  e.bareAtBody = bareAfter;

  std::optional<ContentType> ct;
  if (const HeaderField* f = h.find("Content-Type")) ct = parseContentType(f->value);
  if (ct) {
    p.type = std::move(ct->type);
    p.subtype = std::move(ct->subtype);
    p.params = std::move(ct->params);
    if (p.isText() && std::none_of(p.params.begin(), p.params.end(), [](const Param& x) {
          return iequals(x.name, "charset") || iequals(x.name, "charset*");
        }))
      p.params.insert(p.params.begin(), Param{"CHARSET", "US-ASCII"});
  } else if (e.digestChild) {
    p.type = "MESSAGE";
    p.subtype = "RFC822";
  } else {
    p.type = "TEXT";
    p.subtype = "PLAIN";
    p.params = {Param{"CHARSET", "US-ASCII"}};
  }
  p.id = nonEmpty(fieldValue(h, "Content-ID"));
  p.description = nonEmpty(fieldValue(h, "Content-Description"));
  p.md5 = nonEmpty(fieldValue(h, "Content-MD5"));
  if (auto loc = fieldValue(h, "Content-Location")) {
    std::string v;
    for (char c : *loc)
      if (!isBlank(c)) v.push_back(c);  // RFC 2557 §4.4.2: folding blanks are not part of it
    p.location = nonEmpty(std::move(v));
  }
  p.encoding = "7BIT";
  if (auto enc = fieldValue(h, "Content-Transfer-Encoding")) {
    std::string_view v = *enc;
    if (auto sp = v.find_first_of(" \t(;"); sp != std::string_view::npos) v = v.substr(0, sp);
    if (!v.empty()) p.encoding = std::string(v);
  }
  if (const HeaderField* f = h.find("Content-Disposition"))
    p.disposition = parseDisposition(f->value);
  if (const HeaderField* f = h.find("Content-Language")) p.languages = parseLanguageList(f->value);
  if (e.messageRoot && !limits_.envelopeFields) {
    p.envelope = Envelope{};
  } else if (e.messageRoot) {
    Envelope env;
    env.date = fieldValue(h, "Date");
    env.subject = fieldValue(h, "Subject");
    env.inReplyTo = fieldValue(h, "In-Reply-To");
    env.messageId = fieldValue(h, "Message-ID");
    env.from = addresses(h, "From");
    env.sender = addresses(h, "Sender");
    env.replyTo = addresses(h, "Reply-To");
    env.to = addresses(h, "To");
    env.cc = addresses(h, "Cc");
    env.bcc = addresses(h, "Bcc");
    p.envelope = std::move(env);
  }
  e.header.reset();

  const bool roomForChild = p.depth < limits_.maxDepth && s_.parts.size() < limits_.maxParts;
  if (p.isMultipart()) {
    std::string boundary;
    for (const auto& x : p.params)
      if (iequals(x.name, "boundary")) boundary = x.value;
    if (!boundary.empty() && boundary.size() <= kMaxBoundary) {
      if (p.depth < limits_.maxDepth) {
        e.boundary = std::move(boundary);
        ++boundaries_;
      } else {
        s_.truncated = true;
      }
    }
  } else if (p.isMessage()) {
    const bool encoded = iequals(p.encoding, "base64") || iequals(p.encoding, "quoted-printable");
    if (!encoded) {
      if (roomForChild) {
        const uint32_t parent = e.part;
        const auto depth = static_cast<uint8_t>(p.depth + 1);
        openPart(bodyStart, parent, depth, false, true);  // invalidates e if stack_ grows
        stack_.back()->bareAtHeader = bareAfter;
      } else {
        s_.truncated = true;
      }
    }
  }
}

void StructureParser::close(Open& e, uint64_t end, uint64_t lf, uint64_t bare) {
  if (e.inHeader) {
    // The entity ended inside its header: no body.
    const size_t before = stack_.size();
    endHeader(e, end, lf, bare);
    // endHeader may have opened an encapsulated message; it is empty too.
    if (stack_.size() > before) {
      auto child = std::move(stack_.back());
      stack_.pop_back();
      close(*child, end, lf, bare);
    }
  }
  Part& q = s_.parts[e.part];
  if (end < q.bodyOffset) {
    // The empty line that ended the header is the line end a delimiter
    // takes (RFC 2046 §5.1.1): the header stops before it, the body is
    // empty.
    q.headerSize = end - q.headerOffset;
    q.headerBareLf = bare - e.bareAtHeader;
    q.bodyOffset = end;
    e.lfAtBody = lf;
    e.bareAtBody = bare;
  }
  q.bodySize = end - q.bodyOffset;
  q.bodyLines = lf - e.lfAtBody;
  q.bodyBareLf = bare - e.bareAtBody;
  if (!e.boundary.empty()) --boundaries_;
}

void StructureParser::closeAbove(size_t k, const Line& line) {
  // The line end before a delimiter line belongs to the delimiter (RFC 2046
  // §5.1.1): every entity the delimiter closes ends before it. One that
  // started on the delimiter line itself is empty there, and its
  // ancestors end there too, so that parts always nest.
  uint64_t end = line.offset, lf = lf_, bare = bareLf_;
  if (prevEol_ > 0) {
    end -= prevEol_;
    lf -= 1;
    bare -= prevEol_ == 1 ? 1 : 0;
  }
  while (stack_.size() > k + 1) {
    auto e = std::move(stack_.back());
    stack_.pop_back();
    if (s_.parts[e->part].headerOffset > end) {
      end = line.offset;
      lf = lf_;
      bare = bareLf_;
    }
    close(*e, end, lf, bare);
  }
}

void StructureParser::onLine(const Line& line) {
  const uint64_t lfAfter = lf_ + (line.eolLen > 0 ? 1 : 0);
  const uint64_t bareAfter = bareLf_ + (line.eolLen == 1 ? 1 : 0);
  const uint64_t next = line.offset + line.length;
  bool handled = false;
  if (boundaries_ > 0 && line.text.size() >= 2 && line.text[0] == '-' && line.text[1] == '-') {
    for (size_t k = stack_.size(); k-- > 0;) {
      Open& m = *stack_[k];
      if (m.boundary.empty() || m.inHeader) continue;
      const int kind = matchBoundary(line, m.boundary);
      if (kind == 0) continue;
      closeAbove(k, line);
      Open& mm = *stack_[k];
      if (kind == 2) {
        mm.closed = true;
      } else if (!mm.closed) {
        const Part& mp = s_.parts[mm.part];
        if (s_.parts.size() < limits_.maxParts) {
          const bool digest = iequals(mp.subtype, "digest");
          lf_ = lfAfter;
          bareLf_ = bareAfter;
          openPart(next, mm.part, static_cast<uint8_t>(mp.depth + 1), digest, false);
        } else {
          s_.truncated = true;
        }
      }
      handled = true;
      break;
    }
  }
  if (!handled) {
    Open& top = *stack_.back();
    if (top.inHeader) {
      if (line.contentLength() == 0) {
        endHeader(top, next, lfAfter, bareAfter);
      } else {
        top.header->addLine(line);
      }
    }
  }
  lf_ = lfAfter;
  bareLf_ = bareAfter;
  prevEol_ = line.eolLen;
  updateKeep();
}

void StructureParser::feed(std::string_view chunk) {
  lines_.feed(chunk, [&](const Line& l) {
    onLine(l);
    return true;
  });
}

Structure StructureParser::finish() {
  lines_.finish([&](const Line& l) { onLine(l); });
  const uint64_t end = lines_.offset();
  while (!stack_.empty()) {
    auto e = std::move(stack_.back());
    stack_.pop_back();
    close(*e, end, lf_, bareLf_);
  }
  s_.size = end;
  return std::move(s_);
}

Structure parseStructure(std::string_view message, StructureLimits limits) {
  StructureParser p(limits);
  p.feed(message);
  return p.finish();
}

Result<Structure> parseStructure(const ReadAt& read, uint64_t size, StructureLimits limits) {
  StructureParser p(limits);
  std::string buf(64 * 1024, '\0');
  uint64_t off = 0;
  while (off < size) {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), size - off));
    auto n = read(off, buf.data(), want);
    if (!n.ok()) return n.error();
    if (*n == 0) return Error{"message shorter than its size", 0};
    p.feed(std::string_view(buf.data(), *n));
    off += *n;
  }
  return p.finish();
}

}  // namespace yubin::mime
