// mime/section: see section.hpp. Trust: pure computation.
#include "mime/section.hpp"

namespace yubin::mime {

const Part* findPart(const Structure& s, const std::vector<uint32_t>& path) {
  if (s.parts.empty()) return nullptr;
  const Part* p = &s.parts[0];
  for (uint32_t n : path) {
    if (n == 0) return nullptr;
    // Part numbers inside a message/rfc822 number the encapsulated message.
    if (p->isMessage() && !p->children.empty()) p = &s.parts[p->children[0]];
    if (p->isMultipart()) {
      if (n > p->children.size()) return nullptr;
      p = &s.parts[p->children[n - 1]];
    } else if (n != 1) {
      return nullptr;
    }
  }
  return p;
}

std::optional<SectionRange> sectionRange(const Structure& s, const SectionSpec& spec) {
  const Part* p = findPart(s, spec.path);
  if (!p) return std::nullopt;
  auto header = [](const Part& q) {
    return SectionRange{q.headerOffset, q.headerSize, q.headerSize + q.headerBareLf};
  };
  auto body = [](const Part& q) {
    return SectionRange{q.bodyOffset, q.bodySize, q.bodySize + q.bodyBareLf};
  };
  switch (spec.text) {
    case SectionText::None:
      if (spec.path.empty()) {
        return SectionRange{0, s.size, s.size + p->headerBareLf + p->bodyBareLf};
      }
      return body(*p);
    case SectionText::Mime:
      if (spec.path.empty()) return std::nullopt;
      return header(*p);
    case SectionText::Header:
    case SectionText::HeaderFields:
    case SectionText::HeaderFieldsNot:
    case SectionText::Text: {
      // These name a message: the top level, or a message/rfc822 part.
      const Part* m = p;
      if (!spec.path.empty()) {
        if (!p->isMessage() || p->children.empty()) return std::nullopt;
        m = &s.parts[p->children[0]];
      }
      return spec.text == SectionText::Text ? body(*m) : header(*m);
    }
  }
  return std::nullopt;
}

}  // namespace yubin::mime
