// IMAP response rendering (see response.hpp).
// Trust: renders untrusted data; output is always grammatical.
// Standards: RFC 3501 §9, RFC 9051 §9, RFC 3516.
#include "imap/response.hpp"

#include <array>

#include "base/strings.hpp"
#include "imap/command.hpp"
#include "imap/sequence.hpp"
#include "imap/mutf7.hpp"
#include "mail/address.hpp"

namespace yubin::imap {

bool isAtomChar(unsigned char c) {
  if (c <= 0x1f || c >= 0x7f) return false;
  switch (c) {
    case '(': case ')': case '{': case ' ': case '%': case '*': case '"': case '\\': case ']':
      return false;
    default:
      return true;
  }
}

bool isAstringChar(unsigned char c) { return c == ']' || isAtomChar(c); }

bool isAtom(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s)
    if (!isAtomChar(c)) return false;
  return true;
}

bool isQuotable(std::string_view s, bool utf8) {
  bool eight = false;
  for (unsigned char c : s) {
    if (c == 0 || c == '\r' || c == '\n') return false;
    if (c >= 0x80) eight = true;
  }
  return !eight || (utf8 && mail::isValidUtf8(s));
}

void appendQuoted(std::string& out, std::string_view s) {
  out += '"';
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

void appendLiteralHeader(std::string& out, uint64_t size, bool binary) {
  if (binary) out += '~';
  out += '{';
  out += std::to_string(size);
  out += "}\r\n";
}

void appendLiteral(std::string& out, std::string_view s) {
  appendLiteralHeader(out, s.size(), false);
  out += s;
}

void appendLiteral8(std::string& out, std::string_view s) {
  appendLiteralHeader(out, s.size(), true);
  out += s;
}

void appendString(std::string& out, std::string_view s, bool utf8) {
  if (s.size() <= kMaxQuoted && isQuotable(s, utf8))
    appendQuoted(out, s);
  else
    appendLiteral(out, s);
}

void appendAstring(std::string& out, std::string_view s, bool utf8) {
  bool atom = !s.empty() && !iequals(s, "NIL");
  for (unsigned char c : s)
    if (!isAstringChar(c)) {
      atom = false;
      break;
    }
  if (atom && s.size() <= kMaxQuoted)
    out += s;
  else
    appendString(out, s, utf8);
}

void appendNstring(std::string& out, std::optional<std::string_view> s, bool utf8) {
  if (!s)
    out += "NIL";
  else
    appendString(out, *s, utf8);
}

void appendMailbox(std::string& out, std::string_view name, bool utf8) {
  if (isInbox(name)) {
    out += "INBOX";
    return;
  }
  // Mailbox names are quoted rather than atoms even when they could be
  // atoms: clients parse both, and quoting keeps "NIL"-like names simple.
  const std::string wire = mailboxToWire(name, utf8);
  appendString(out, wire, utf8);
}

bool isValidKeyword(std::string_view s) { return isAtom(s); }

bool isValidFlag(std::string_view s) {
  if (!s.empty() && s[0] == '\\') return isAtom(s.substr(1));
  return isAtom(s);
}

std::string canonicalFlag(std::string_view flag) {
  static constexpr std::array<std::string_view, 6> kSystem = {
      "\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\Recent"};
  for (std::string_view f : kSystem)
    if (iequals(flag, f)) return std::string(f);
  return std::string(flag);
}

void appendFlagList(std::string& out, std::span<const std::string> flags) {
  out += '(';
  bool first = true;
  for (const std::string& f : flags) {
    if (!isValidFlag(f)) continue;
    if (!first) out += ' ';
    out += f;
    first = false;
  }
  out += ')';
}

std::string codeNumber(std::string_view name, uint64_t value) {
  std::string out(name);
  out += ' ';
  out += std::to_string(value);
  return out;
}

std::string codeAppendUid(uint32_t uidValidity, std::span<const uint32_t> uids) {
  return "APPENDUID " + std::to_string(uidValidity) + " " + formatSequence(uids);
}

std::string codeCopyUid(uint32_t uidValidity, std::span<const uint32_t> sourceUids,
                        std::span<const uint32_t> destUids) {
  return "COPYUID " + std::to_string(uidValidity) + " " + formatSequence(sourceUids) + " " +
         formatSequence(destUids);
}

std::string codePermanentFlags(std::span<const std::string> flags, bool allowNew) {
  std::string out = "PERMANENTFLAGS ";
  appendFlagList(out, flags);
  if (allowNew) {
    out.pop_back();  // ')'
    if (out.back() != '(') out += ' ';
    out += "\\*)";
  }
  return out;
}

std::string codeBadCharset(std::span<const std::string> charsets) {
  std::string out = "BADCHARSET (";
  bool first = true;
  for (const std::string& c : charsets) {
    if (!first) out += ' ';
    appendAstring(out, c);
    first = false;
  }
  out += ')';
  return out;
}

std::string codeModified(std::span<const uint32_t> numbers) {
  return "MODIFIED " + formatSequence(numbers);
}

std::string searchData(std::span<const uint32_t> numbers, std::optional<uint64_t> modSeq) {
  std::string out = "SEARCH";
  for (uint32_t n : numbers) {
    out += ' ';
    out += std::to_string(n);
  }
  if (modSeq && !numbers.empty()) out += " (MODSEQ " + std::to_string(*modSeq) + ")";
  return out;
}

std::string esearchData(std::string_view tag, bool uid, uint8_t returnOptions,
                        std::span<const uint32_t> results, std::optional<uint64_t> modSeq) {
  if (returnOptions == kReturnSave) return {};
  std::string out = "ESEARCH (TAG ";
  appendString(out, tag);
  out += ')';
  if (uid) out += " UID";
  if (!results.empty()) {
    if (returnOptions & kReturnMin) out += " MIN " + std::to_string(results.front());
    if (returnOptions & kReturnMax) out += " MAX " + std::to_string(results.back());
    if (returnOptions & kReturnAll) out += " ALL " + formatSequence(results);
  }
  if (returnOptions & kReturnCount) out += " COUNT " + std::to_string(results.size());
  if (modSeq && !results.empty()) out += " MODSEQ " + std::to_string(*modSeq);
  return out;
}

std::string_view condName(Cond c) {
  switch (c) {
    case Cond::Ok: return "OK";
    case Cond::No: return "NO";
    case Cond::Bad: return "BAD";
    case Cond::Bye: return "BYE";
    case Cond::PreAuth: return "PREAUTH";
  }
  return "BAD";
}

namespace {

void appendSanitised(std::string& out, std::string_view text, bool forbidLeadingBracket) {
  const size_t start = out.size();
  for (unsigned char c : text) out += (c < 0x20 || c >= 0x7f) ? '?' : static_cast<char>(c);
  if (out.size() == start) out += "done";
  if (forbidLeadingBracket && out[start] == '[') out[start] = '(';
}

}  // namespace

void appendRespText(std::string& out, std::string_view code, std::string_view text) {
  if (!code.empty()) {
    out += '[';
    for (unsigned char c : code) out += (c < 0x20 || c >= 0x7f || c == ']') ? '?' : static_cast<char>(c);
    out += "] ";
  }
  appendSanitised(out, text, code.empty());
}

std::string tagged(std::string_view tag, Cond cond, std::string_view code, std::string_view text) {
  std::string out(tag.empty() ? "*" : tag);
  out += ' ';
  out += condName(cond);
  out += ' ';
  appendRespText(out, code, text);
  out += "\r\n";
  return out;
}

std::string untagged(Cond cond, std::string_view code, std::string_view text) {
  return tagged("*", cond, code, text);
}

std::string untaggedData(std::string_view data) {
  std::string out = "* ";
  out += data;
  out += "\r\n";
  return out;
}

std::string continuation(std::string_view text) {
  std::string out = "+ ";
  appendSanitised(out, text, false);
  out += "\r\n";
  return out;
}

std::string continuationBase64(std::string_view base64) {
  std::string out = "+ ";
  for (char c : base64)
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
        c == '/' || c == '=')
      out += c;
  out += "\r\n";
  return out;
}

}  // namespace yubin::imap
