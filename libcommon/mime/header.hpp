// mime/header: the header section of a message or MIME part (RFC 5322
// §2.2 fields, folding), RFC 2047 encoded words, RFC 2045 Content-Type /
// RFC 2183 Content-Disposition with RFC 2231 parameters, and the small
// value helpers the IMAP layer needs (unfolding, HEADER.FIELDS filtering).
//
// API:
//   HeaderCollector     fed one line at a time (by HeaderParser or by the
//                       structure parser); keeps fields, bounded by
//                       HeaderLimits; truncated() once a limit was hit.
//   HeaderParser        streaming: feed(bytes) until done(); the header
//                       section ends at the first empty line (its size
//                       includes that line) or at the end of the input.
//   parseHeader(text)   one-shot HeaderParser over a string.
//   unfold(value)       CR and LF removed, outer blanks trimmed.
//   decodeEncodedWords(value)  RFC 2047 words to UTF-8; a word in an
//                       unknown charset or malformed stays as written;
//                       blanks between two adjacent words are dropped.
//   parseParams / parseContentType / parseDisposition   parameters merged
//                       as RFC 2231 continuations; a parameter that had an
//                       extended ("*") piece keeps the "name*" key and the
//                       charset'lang'%XX value (what BODYSTRUCTURE shows,
//                       as Dovecot does); paramValueUtf8() decodes it.
//   filterHeaderFields(header, names, exclude)   BODY[HEADER.FIELDS (...)]
//                       and HEADER.FIELDS.NOT: the matching fields as they
//                       were written, then the empty line.
//
// Limits (HeaderLimits): bytes kept per header section, fields per section,
// bytes kept per physical line. Past a limit the rest of the section is
// still scanned to find its end (so offsets stay exact) but not kept, and
// truncated() says so.
//
// Trust: parses untrusted message bytes; memory bounded by HeaderLimits.
// Standards: RFC 5322 §2.2, §3.6 and §4.5 (obsolete syntax tolerated), RFC
// 2045 §5 (Content-Type), RFC 2047 (encoded words; §6.2 blank handling),
// RFC 2183 (Content-Disposition), RFC 2231 (continuations, charset and
// language; §5 language in encoded words), RFC 3501 §6.4.5 (HEADER.FIELDS).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "mime/lines.hpp"

namespace yubin::mime {

struct HeaderLimits {
  size_t maxBytes = 256 * 1024;  // bytes of field values kept per section
  size_t maxFields = 2000;       // fields per section
  size_t maxLine = 64 * 1024;    // bytes kept per physical line
};

struct HeaderField {
  std::string name;   // as written (compare with iequals)
  std::string value;  // raw, after the colon, folding line ends kept
};

class HeaderCollector {
 public:
  // keep(name) decides which fields are stored (all when null); the others
  // still count against maxFields.
  using KeepFn = bool (*)(std::string_view name);
  explicit HeaderCollector(HeaderLimits limits = {}, KeepFn keep = nullptr)
      : limits_(limits), keep_(keep) {}
  // One physical line of the section (not the empty line that ends it).
  void addLine(const Line& line);
  std::vector<HeaderField>& fields() { return fields_; }
  const std::vector<HeaderField>& fields() const { return fields_; }
  bool truncated() const { return truncated_; }
  // First field called name, or nullptr.
  const HeaderField* find(std::string_view name) const;

 private:
  HeaderLimits limits_;
  KeepFn keep_;
  std::vector<HeaderField> fields_;
  size_t count_ = 0;
  size_t bytes_ = 0;
  bool inField_ = false;   // a continuation line extends fields_.back()
  bool skipping_ = false;  // continuation lines of a field not kept
  bool truncated_ = false;
};

class HeaderParser {
 public:
  explicit HeaderParser(HeaderLimits limits = {}, HeaderCollector::KeepFn keep = nullptr)
      : lines_(limits.maxLine), collector_(limits, keep) {}
  // Returns the bytes consumed: all of in, or up to the end of the empty
  // line that ends the section.
  size_t feed(std::string_view in);
  void finish();  // end of input (a section without an empty line)
  bool done() const { return done_; }
  uint64_t size() const { return size_; }  // bytes of the section so far
  HeaderCollector& collector() { return collector_; }

 private:
  LineSplitter lines_;
  HeaderCollector collector_;
  uint64_t size_ = 0;
  bool done_ = false;
};

struct ParsedHeader {
  std::vector<HeaderField> fields;
  uint64_t size = 0;  // including the empty line
  bool truncated = false;
};
ParsedHeader parseHeader(std::string_view text, HeaderLimits limits = {});

std::string unfold(std::string_view value);
std::string decodeEncodedWords(std::string_view value);

struct Param {
  std::string name;
  std::string value;
  bool operator==(const Param&) const = default;
};
std::vector<Param> parseParams(std::string_view text);
// Value of param name (case-insensitive), decoded to UTF-8: RFC 2231
// charset'lang'%XX, or RFC 2047 words inside a quoted value (a common
// mailer habit). nullopt when absent.
std::optional<std::string> paramValueUtf8(const std::vector<Param>& params, std::string_view name);

struct ContentType {
  std::string type;  // as written; empty when the field was absent/invalid
  std::string subtype;
  std::vector<Param> params;
};
// nullopt when value is not "type/subtype" (RFC 2045 §5.2: then the
// default applies).
std::optional<ContentType> parseContentType(std::string_view value);

struct Disposition {
  std::string type;  // as written
  std::vector<Param> params;
  bool operator==(const Disposition&) const = default;
};
std::optional<Disposition> parseDisposition(std::string_view value);

// Content-Language (RFC 3282): the tags, CFWS removed.
std::vector<std::string> parseLanguageList(std::string_view value);

// RFC 5322 field name check: printable ASCII except ":".
bool isFieldName(std::string_view name);

// Streaming form of filterHeaderFields: feed the header bytes in pieces of
// any size (the section may be megabytes when a message has no empty
// line); output is appended as soon as each field is decided, holding at
// most kMaxName bytes. Line ends come out as CRLF; finish() adds the
// closing empty line. Bytes after the empty line are ignored.
class HeaderFieldFilter {
 public:
  static constexpr size_t kMaxName = 1000;
  HeaderFieldFilter(std::vector<std::string> names, bool exclude);
  void feed(std::string_view in, std::string& out);
  void finish(std::string& out);
  bool done() const { return done_; }

 private:
  enum class State { LineStart, Name, Rest };
  void decide();
  void endLine(std::string& out);
  std::vector<std::string> names_;
  bool exclude_;
  State state_ = State::LineStart;
  std::string name_;
  bool include_ = false;
  bool cr_ = false;
  bool done_ = false;
};

std::string filterHeaderFields(std::string_view header, const std::vector<std::string>& names,
                               bool exclude);

}  // namespace yubin::mime
