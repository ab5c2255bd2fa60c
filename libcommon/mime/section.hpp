// mime/section: maps an IMAP section specification (BODY[1.2.HEADER],
// BODY[TEXT], BODY[3.MIME], ...) to the byte range of the message that
// holds it, so the IMAP layer reads only those bytes from disk.
//
// API:
//   const Part* findPart(structure, path)      path {} is the message; the
//                                              numbers follow RFC 3501
//                                              §6.4.5 (a message/rfc822 part
//                                              is entered transparently;
//                                              in a non-multipart entity
//                                              only 1 is valid)
//   std::optional<SectionRange> sectionRange(structure, spec)
//       nullopt when the section does not exist (the IMAP layer answers
//       with an empty string, as RFC 3501 allows, or NO).
//       HEADER.FIELDS[.NOT]: the range is the whole header; pass those
//       bytes to filterHeaderFields() or, streaming, HeaderFieldFilter
//       (header.hpp).
//
// Every range is of the stored bytes; crlfSize is its size once each bare
// LF is sent as CRLF (the literal's length when the server converts).
//
// Trust: pure computation on a parsed structure.
// Standards: RFC 3501 §6.4.5 (section-spec, HEADER, HEADER.FIELDS, MIME,
// TEXT), RFC 9051 §6.4.5.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "mime/structure.hpp"

namespace yubin::mime {

enum class SectionText : uint8_t { None, Header, HeaderFields, HeaderFieldsNot, Text, Mime };

struct SectionSpec {
  std::vector<uint32_t> path;  // part numbers, 1-based
  SectionText text = SectionText::None;
};

struct SectionRange {
  uint64_t offset = 0;
  uint64_t size = 0;
  uint64_t crlfSize = 0;
  bool operator==(const SectionRange&) const = default;
};

const Part* findPart(const Structure& s, const std::vector<uint32_t>& path);
std::optional<SectionRange> sectionRange(const Structure& s, const SectionSpec& spec);

}  // namespace yubin::mime
