// mime/structure: the MIME tree of a message with the byte offsets and
// sizes of every part's header and body, their line counts, the content
// fields BODYSTRUCTURE shows and the ENVELOPE of the message and of every
// message/rfc822 inside it.
//
// API:
//   StructureParser p(limits); p.feed(chunk)...; Structure s = p.finish();
//       streaming: the message arrives in pieces of any size; memory is
//       bounded by the limits (the parser keeps header fields of the parts
//       still open and a short prefix of each body line), never the body.
//   parseStructure(message)              one-shot over a string
//   parseStructure(read, size)           over a seekable source (pread-like
//                                        callback), in 64 KiB reads
//
// The tree: Structure::parts in document order, parts[0] the message
// itself (header = the message header, body = everything after it). A
// multipart's children are its body parts; a message/rfc822 (or
// message/global) part has one child, the encapsulated message, whose
// header is the start of the parent's body. Such "message roots" (parts[0]
// and those children) carry an Envelope.
//
// Sizes are of the bytes as stored; bareLf counts the LFs not preceded by
// CR in a range, so size + bareLf is the size once every line end is CRLF
// (what IMAP reports; see render.hpp).
//
// Bad MIME, handled as RFC 2046 and common servers (Dovecot) do:
//   - a body part ends at the CRLF that precedes the next delimiter line of
//     its multipart or of any enclosing one (an outer delimiter closes the
//     inner parts); a delimiter line is "--boundary" followed by blanks
//     only, a close delimiter "--boundary--" followed by anything;
//   - a missing close delimiter: the parts end where the enclosing entity
//     ends; delimiters after the close delimiter are epilogue;
//   - multipart without a boundary (or one over kMaxBoundary bytes): no
//     children (rendered with one empty text/plain part, as Dovecot does);
//   - no or invalid Content-Type: text/plain; charset=us-ascii (in a
//     multipart/digest: message/rfc822), RFC 2045 §5.2;
//   - message/rfc822 with a base64 or quoted-printable encoding is a leaf.
// Limits (StructureLimits): nesting depth (a multipart or message part at
// the limit gets no children), total parts (later parts are not created),
// header limits per part; Structure::truncated says one was reached.
//
// Trust: parses untrusted message bytes; memory bounded by the limits.
// Standards: RFC 2045 (§5.2 defaults, §6 encodings), RFC 2046 §5.1
// (multipart, boundaries, preamble/epilogue, digest) and §5.2
// (message/rfc822), RFC 5322, RFC 6532 (message/global), RFC 3501 §6.4.5
// and §7.4.2 (what sizes and line counts mean).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "mime/address_list.hpp"
#include "mime/header.hpp"
#include "mime/lines.hpp"

namespace yubin::mime {

inline constexpr size_t kMaxBoundary = 200;

struct StructureLimits {
  size_t maxDepth = 20;    // levels of multipart / message nesting
  size_t maxParts = 5000;  // parts in the whole tree
  HeaderLimits header;
  // false: a message's Part::envelope is set but left empty (SEARCH needs
  // only to know which parts are messages; the address lists are the
  // costly part of the parse).
  bool envelopeFields = true;
};

struct Envelope {
  // Raw values (unfolded, outer blanks trimmed, encoded words kept), as
  // RFC 3501 wants; nullopt when the field is absent.
  std::optional<std::string> date, subject, inReplyTo, messageId;
  // Empty when absent or empty (rendered NIL; sender and reply-to then
  // fall back to from when rendered).
  std::vector<EnvelopeAddress> from, sender, replyTo, to, cc, bcc;
  bool operator==(const Envelope&) const = default;
};

struct Part {
  uint64_t headerOffset = 0, headerSize = 0, headerBareLf = 0;
  uint64_t bodyOffset = 0, bodySize = 0, bodyBareLf = 0;
  uint64_t bodyLines = 0;  // LFs in the body (what Dovecot counts)
  // What BODYSTRUCTURE shows: as written, or the defaults ("TEXT" "PLAIN"
  // ("CHARSET" "US-ASCII"), "MESSAGE" "RFC822" in a digest, "7BIT").
  std::string type, subtype;
  std::vector<Param> params;
  std::optional<std::string> id, description, md5, location;
  std::string encoding;
  std::optional<Disposition> disposition;
  std::vector<std::string> languages;
  std::optional<Envelope> envelope;  // message roots only
  std::vector<uint32_t> children;
  uint32_t parent = 0;  // parts[0] is its own parent
  uint8_t depth = 0;
  bool headerTruncated = false;

  bool isMultipart() const;
  bool isMessage() const;  // message/rfc822 or message/global
  bool isText() const;
  bool operator==(const Part&) const = default;
};

struct Structure {
  std::vector<Part> parts;
  uint64_t size = 0;       // of the whole message
  bool truncated = false;  // a limit was reached somewhere
  const Part& root() const { return parts.front(); }
  bool operator==(const Structure&) const = default;
};

class StructureParser {
 public:
  explicit StructureParser(StructureLimits limits = {});
  ~StructureParser();
  StructureParser(const StructureParser&) = delete;
  StructureParser& operator=(const StructureParser&) = delete;
  void feed(std::string_view chunk);
  Structure finish();

 private:
  struct Open;
  void onLine(const Line& line);
  void openPart(uint64_t offset, uint32_t parent, uint8_t depth, bool digestChild,
                bool messageRoot);
  void endHeader(Open& e, uint64_t bodyStart, uint64_t lfAfter, uint64_t bareAfter);
  void close(Open& e, uint64_t end, uint64_t lf, uint64_t bare);
  void closeAbove(size_t k, const Line& line);
  void updateKeep();

  StructureLimits limits_;
  LineSplitter lines_;
  Structure s_;
  std::vector<std::unique_ptr<Open>> stack_;
  uint64_t lf_ = 0, bareLf_ = 0;  // before the current line
  uint8_t prevEol_ = 0;
  size_t boundaries_ = 0;  // open multiparts with a boundary
};

Structure parseStructure(std::string_view message, StructureLimits limits = {});

// read(offset, buf, len) returns the bytes read (0 only at the end) or an
// error; size is the message size.
using ReadAt = std::function<Result<size_t>(uint64_t offset, char* buf, size_t len)>;
Result<Structure> parseStructure(const ReadAt& read, uint64_t size, StructureLimits limits = {});

}  // namespace yubin::mime
