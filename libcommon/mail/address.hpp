// Envelope addresses: the Reverse-path and Forward-path of MAIL FROM: and
// RCPT TO:, and the ESMTP parameters that follow them.
//
// Trust: parses untrusted network input (runs inside mtad, msad and mdad).
// Nothing here allocates more than the input's size; every error is a value.
//
// Standards: RFC 5321 §4.1.2 (path syntax) and §4.5.3.1 (size limits),
// RFC 1870 (SIZE), RFC 6152 (8BITMIME), RFC 3030 (BINARYMIME), RFC 6531
// (SMTPUTF8: UTF-8 in addresses only when the parameter was given),
// RFC 3461 (DSN: RET, ENVID, NOTIFY, ORCPT and xtext), RFC 4954 §5 (AUTH=).
//
// Deliberately refused although RFC 5321 lets a server accept them: source
// routes ("<@a,@b:user@c>") and general address literals ("[tag:...]").
// Accepted but flagged by looksLikeRelayTrick(): "%", "!" and "@" inside the
// local part, which old relays interpret as routing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace yubin::mail {

// RFC 5321 §4.5.3.1 limits, in octets.
inline constexpr size_t kMaxLocalPart = 64;
inline constexpr size_t kMaxDomain = 255;
inline constexpr size_t kMaxPath = 256;  // including the angle brackets

// A mailbox. `local` is the local part's meaning (a quoted-string's quotes
// and backslashes removed), `domain` a domain name or an address literal
// with its brackets ("[192.0.2.1]", "[IPv6:2001:db8::1]"). The special
// recipient <Postmaster> has an empty domain.
struct Address {
  std::string local;
  std::string domain;

  // True for the bare <Postmaster> recipient (RFC 5321 §4.5.1).
  bool isPostmaster() const { return domain.empty(); }
  // The address as written in a path: the local part quoted when it is not a
  // dot-string ("\"john doe\"@example.org"); "Postmaster" for <Postmaster>.
  std::string str() const;
  // str() with the domain lowercased (ASCII only): the form to compare and
  // look up. The local part keeps its case (RFC 5321 §2.4).
  std::string normalized() const;

  bool operator==(const Address&) const = default;
};

// Why a MAIL or RCPT argument was refused. The SMTP engine maps these to
// replies: syntax of the command → 501 5.5.4, the address itself → 501
// 5.1.7 (sender) or 501 5.1.3 (recipient), UTF-8 without SMTPUTF8 → 553
// 5.6.7, unknown parameters → 555 5.5.4.
enum class AddressError : uint8_t {
  // The command's shape.
  BadCommandSyntax,  // no "FROM:" / "TO:"
  MissingBrackets,   // the path is not in <...>
  Unterminated,      // an unbalanced quote, bracket or angle bracket
  TrailingGarbage,   // something other than SP after the closing '>'
  // The address.
  ControlCharacter,  // NUL, CR, LF, other C0 controls or DEL
  SourceRoute,       // <@relay:user@domain>
  NullNotAllowed,    // <> as a recipient
  BadLocalPart,
  MissingDomain,  // no '@' (and not <Postmaster>)
  BadDomain,
  BadAddressLiteral,
  LocalPartTooLong,
  DomainTooLong,
  PathTooLong,
  Utf8NotAllowed,  // non-ASCII without SMTPUTF8
  BadUtf8,         // SMTPUTF8 given but the bytes are not well-formed UTF-8
  // The parameters.
  ParametersNotAllowed,  // after HELO rather than EHLO/LHLO
  UnknownParameter,
  DuplicateParameter,
  BadParameter,  // known keyword, bad value
};

// A short English description, fixed text (never echoes input).
std::string_view describe(AddressError e);

// The coarse class an error belongs to, for choosing a reply.
enum class AddressErrorClass : uint8_t {
  CommandSyntax,
  Address,
  Utf8,
  UnknownParameter,
  BadParameter
};
AddressErrorClass classify(AddressError e);

// A value or an AddressError.
template <class T>
class [[nodiscard]] Parsed {
 public:
  Parsed(T value) : v_(std::move(value)) {}  // NOLINT: implicit on purpose
  Parsed(AddressError error) : v_(error) {}  // NOLINT
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  AddressError error() const { return std::get<1>(v_); }

 private:
  std::variant<T, AddressError> v_;
};

enum class Body : uint8_t { Unspecified, SevenBit, EightBitMime, BinaryMime };
enum class Ret : uint8_t { Unspecified, Full, Headers };

// NOTIFY= (RFC 3461 §4.1) as bits; 0 means the parameter was absent.
enum NotifyBits : uint8_t {
  kNotifyNever = 1,
  kNotifySuccess = 2,
  kNotifyFailure = 4,
  kNotifyDelay = 8,
};

struct MailParameters {
  std::optional<uint64_t> size;  // SIZE= (RFC 1870)
  Body body = Body::Unspecified;
  bool smtputf8 = false;
  Ret ret = Ret::Unspecified;
  std::string envid;                // ENVID=, xtext-decoded; empty if absent
  std::optional<std::string> auth;  // AUTH=, xtext-decoded ("<>" stays "<>")
};

struct RcptParameters {
  uint8_t notify = 0;     // NotifyBits
  std::string orcptType;  // ORCPT= address type as given ("rfc822"); empty if absent
  std::string orcpt;      // ORCPT= address, xtext-decoded
};

struct ReversePath {
  Address address;    // empty when null
  bool null = false;  // MAIL FROM:<>
  std::string raw;    // the path as received, brackets included
  MailParameters params;
};

struct ForwardPath {
  Address address;
  std::string raw;  // the path as received, brackets included
  RcptParameters params;
};

// Parses the argument of MAIL, starting at "FROM:" (case-insensitive; spaces
// after the colon are tolerated). `esmtp` is false after HELO: then any
// parameter is refused. UTF-8 in the path is allowed only when the
// parameters include SMTPUTF8.
Parsed<ReversePath> parseMailArguments(std::string_view args, bool esmtp);

// Parses the argument of RCPT, starting at "TO:". `smtputf8`: the
// transaction's MAIL carried SMTPUTF8. Accepts <Postmaster> in any case.
Parsed<ForwardPath> parseRcptArguments(std::string_view args, bool esmtp, bool smtputf8);

// Parses a bare mailbox "local@domain" (no brackets, no parameters), with
// the same rules as inside a path.
Parsed<Address> parseMailbox(std::string_view text, bool utf8);

// True when the local part holds '%', '!' or '@' (the last only possible
// quoted): forms that old relays interpret as source routing. Policies
// refuse them for non-local delivery.
bool looksLikeRelayTrick(const Address& address);

// RFC 3461 §4 xtext. decode: nullopt on a character outside xchar or a bad
// "+HH" escape (hex digits must be upper case, as the RFC says).
std::optional<std::string> xtextDecode(std::string_view text);
std::string xtextEncode(std::string_view bytes);

// Well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
// above U+10FFFF.
bool isValidUtf8(std::string_view bytes);

}  // namespace yubin::mail
