// Modified UTF-7 and mailbox-name checks (see mutf7.hpp).
// Trust: decodes untrusted network input. Standards: RFC 3501 §5.1.3,
// RFC 9051 §5.1, RFC 3501 §6.3.8.
#include "imap/mutf7.hpp"

#include <vector>

#include "base/strings.hpp"
#include "mail/address.hpp"

namespace yubin::imap {

namespace {

constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

int b64Value(char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == ',') return 63;
  return -1;
}

bool printable(uint32_t c) { return c >= 0x20 && c <= 0x7e; }

// Decodes one code point of well-formed UTF-8 at s[i]; advances i.
// Returns U+FFFD and advances one octet on malformed input.
uint32_t nextCodePoint(std::string_view s, size_t& i) {
  const auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = at(i);
  size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
  if (i + len > s.size() || !mail::isValidUtf8(s.substr(i, len))) {
    ++i;
    return 0xFFFD;
  }
  uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) cp = (cp << 6) | (at(i + k) & 0x3F);
  i += len;
  return cp;
}

void appendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

std::string encodeLenient(std::string_view utf8) {
  std::string out;
  std::vector<uint16_t> units;
  auto flush = [&] {
    if (units.empty()) return;
    out += '&';
    uint32_t bits = 0;
    int nbits = 0;
    for (uint16_t u : units) {
      bits = (bits << 16) | u;
      nbits += 16;
      while (nbits >= 6) {
        nbits -= 6;
        out += kB64[(bits >> nbits) & 0x3F];
      }
      bits &= (1u << nbits) - 1;
    }
    if (nbits > 0) out += kB64[(bits << (6 - nbits)) & 0x3F];
    out += '-';
    units.clear();
  };
  size_t i = 0;
  while (i < utf8.size()) {
    uint32_t cp = nextCodePoint(utf8, i);
    if (printable(cp)) {
      flush();
      if (cp == '&')
        out += "&-";
      else
        out += static_cast<char>(cp);
    } else if (cp >= 0x10000) {
      cp -= 0x10000;
      units.push_back(static_cast<uint16_t>(0xD800 + (cp >> 10)));
      units.push_back(static_cast<uint16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      units.push_back(static_cast<uint16_t>(cp));
    }
  }
  flush();
  return out;
}

bool isControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

// Shared by names and patterns: decode, validate characters, canonicalise
// INBOX as the first level.
Result<std::string> decodeName(std::string_view wire, const MailboxNameRules& rules,
                               bool pattern) {
  std::string name;
  if (rules.utf8) {
    if (!mail::isValidUtf8(wire)) return Error{"mailbox name is not valid UTF-8"};
    name = std::string(wire);
  } else {
    auto d = mutf7Decode(wire);
    if (!d) return d.error();
    name = std::move(d.value());
  }
  if (name.size() > rules.maxLength) return Error{"mailbox name too long"};
  size_t i = 0;
  while (i < name.size()) {
    const uint32_t cp = nextCodePoint(name, i);
    if (isControl(cp)) return Error{"control character in mailbox name"};
    if (!pattern && (cp == '*' || cp == '%')) return Error{"wildcard in mailbox name"};
  }
  // INBOX, and INBOX as the first level, in canonical case.
  if (name.size() >= 5 && iequals(std::string_view(name).substr(0, 5), "INBOX") &&
      (name.size() == 5 || name[5] == rules.delimiter))
    name.replace(0, 5, "INBOX");
  return name;
}

}  // namespace

Result<std::string> mutf7Encode(std::string_view utf8) {
  if (!mail::isValidUtf8(utf8)) return Error{"not valid UTF-8"};
  return encodeLenient(utf8);
}

Result<std::string> mutf7Decode(std::string_view text) {
  std::string out;
  size_t i = 0;
  bool lastWasRun = false;  // the previous item was a base64 run (adjacent runs are refused)
  while (i < text.size()) {
    const char c = text[i];
    if (!printable(static_cast<unsigned char>(c))) return Error{"octet outside printable ASCII"};
    if (c != '&') {
      out += c;
      ++i;
      lastWasRun = false;
      continue;
    }
    ++i;
    if (i < text.size() && text[i] == '-') {
      out += '&';
      ++i;
      lastWasRun = false;
      continue;
    }
    if (lastWasRun) return Error{"adjacent base64 runs"};
    uint32_t bits = 0;
    int nbits = 0;
    uint32_t highSurrogate = 0;
    size_t count = 0;
    while (true) {
      if (i >= text.size()) return Error{"unterminated base64 run"};
      const char b = text[i++];
      if (b == '-') break;
      const int v = b64Value(b);
      if (v < 0) return Error{"bad base64 character"};
      bits = (bits << 6) | static_cast<uint32_t>(v);
      nbits += 6;
      ++count;
      if (nbits >= 16) {
        nbits -= 16;
        const uint32_t unit = (bits >> nbits) & 0xFFFF;
        bits &= (1u << nbits) - 1;
        if (highSurrogate) {
          if (unit < 0xDC00 || unit > 0xDFFF) return Error{"unpaired surrogate"};
          appendUtf8(out, 0x10000 + ((highSurrogate - 0xD800) << 10) + (unit - 0xDC00));
          highSurrogate = 0;
        } else if (unit >= 0xD800 && unit <= 0xDBFF) {
          highSurrogate = unit;
        } else if (unit >= 0xDC00 && unit <= 0xDFFF) {
          return Error{"unpaired surrogate"};
        } else if (printable(unit)) {
          return Error{"printable ASCII inside a base64 run"};
        } else if (unit == 0) {
          return Error{"NUL in mailbox name"};
        } else {
          appendUtf8(out, unit);
        }
      }
    }
    if (count == 0) return Error{"empty base64 run"};  // unreachable: "&-" handled above
    if (highSurrogate) return Error{"unpaired surrogate"};
    if (nbits >= 6 || bits != 0) return Error{"non-canonical base64 padding"};
    lastWasRun = true;
  }
  return out;
}

bool isInbox(std::string_view name) { return iequals(name, "INBOX"); }

Result<std::string> mailboxFromWire(std::string_view wire, const MailboxNameRules& rules) {
  auto name = decodeName(wire, rules, false);
  if (!name) return name;
  const std::string& n = *name;
  if (n.empty()) return Error{"empty mailbox name"};
  if (n.front() == rules.delimiter || n.back() == rules.delimiter)
    return Error{"empty hierarchy level in mailbox name"};
  for (size_t k = 1; k < n.size(); ++k)
    if (n[k] == rules.delimiter && n[k - 1] == rules.delimiter)
      return Error{"empty hierarchy level in mailbox name"};
  return name;
}

std::string mailboxToWire(std::string_view name, bool utf8) {
  if (!utf8) return encodeLenient(name);
  if (mail::isValidUtf8(name)) return std::string(name);
  std::string out;
  size_t i = 0;
  while (i < name.size()) appendUtf8(out, nextCodePoint(name, i));
  return out;
}

Result<std::string> patternFromWire(std::string_view wire, const MailboxNameRules& rules) {
  return decodeName(wire, rules, true);
}

bool matchPattern(std::string_view pattern, std::string_view name, char delimiter) {
  // Row-by-row dynamic programming over (pattern position, name position).
  const size_t n = name.size();
  std::vector<char> prev(n + 1, 0), cur(n + 1, 0);
  prev[0] = 1;
  for (size_t j = 1; j <= n; ++j) prev[j] = 0;
  for (char p : pattern) {
    if (p == '*' || p == '%') {
      cur[0] = prev[0];
      for (size_t j = 1; j <= n; ++j)
        cur[j] = prev[j] || (cur[j - 1] && (p == '*' || name[j - 1] != delimiter));
    } else {
      cur[0] = 0;
      for (size_t j = 1; j <= n; ++j) cur[j] = prev[j - 1] && name[j - 1] == p;
    }
    std::swap(prev, cur);
  }
  return prev[n] != 0;
}

}  // namespace yubin::imap
