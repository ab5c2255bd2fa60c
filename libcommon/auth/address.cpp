// Mail address helpers; see address.hpp.
#include "auth/address.hpp"

#include "base/strings.hpp"

namespace yubin::auth {
namespace {

constexpr size_t kMaxLocal = 64;  // RFC 5321 §4.5.3.1.1
constexpr size_t kMaxDomain = 253;

bool isAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 5322 atext minus '/', plus 8-bit bytes (RFC 6531).
bool isUserAtext(unsigned char c) {
  if (c >= 0x80) return true;
  if (isAlnum(c)) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '=':
    case '?':
    case '^':
    case '_':
    case '`':
    case '{':
    case '|':
    case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

}  // namespace

std::optional<AddressParts> splitAddress(std::string_view address) {
  size_t at = address.rfind('@');
  if (at == std::string_view::npos || at == 0 || at + 1 == address.size()) return std::nullopt;
  return AddressParts{std::string(address.substr(0, at)), std::string(address.substr(at + 1))};
}

bool isValidDomain(std::string_view domain) {
  if (domain.empty() || domain.size() > kMaxDomain) return false;
  size_t start = 0;
  while (start <= domain.size()) {
    size_t dot = domain.find('.', start);
    if (dot == std::string_view::npos) dot = domain.size();
    std::string_view label = domain.substr(start, dot - start);
    if (label.empty() || label.size() > 63) return false;
    if (label.front() == '-' || label.back() == '-') return false;
    for (unsigned char c : label)
      if (!isAlnum(c) && c != '-') return false;
    start = dot + 1;
  }
  return true;
}

bool isValidUserLocalPart(std::string_view local) {
  if (local.empty() || local.size() > kMaxLocal) return false;
  if (local.front() == '.' || local.back() == '.') return false;
  if (local.front() == '#') return false;  // the line would read as a comment
  char prev = 0;
  for (char ch : local) {
    auto c = static_cast<unsigned char>(ch);
    if (ch == '.') {
      if (prev == '.') return false;
    } else if (!isUserAtext(c)) {
      return false;
    }
    prev = ch;
  }
  return true;
}

bool isValidTargetLocalPart(std::string_view local) {
  if (local.empty() || local.size() > kMaxLocal) return false;
  for (char ch : local) {
    auto c = static_cast<unsigned char>(ch);
    if (c < 0x21 || c == 0x7f) return false;
    switch (ch) {
      case '@':
      case ',':
      case ':':
      case ';':
      case '<':
      case '>':
      case '(':
      case ')':
      case '[':
      case ']':
      case '\\':
      case '"':
        return false;
      default:
        break;
    }
  }
  return true;
}

std::string addressKey(std::string_view local, std::string_view domain) {
  std::string key = iequals(local, "postmaster") ? std::string("postmaster") : std::string(local);
  key += '@';
  key += toLower(domain);
  return key;
}

std::optional<std::string> addressKey(std::string_view address) {
  auto parts = splitAddress(address);
  if (!parts) return std::nullopt;
  return addressKey(parts->local, parts->domain);
}

}  // namespace yubin::auth
