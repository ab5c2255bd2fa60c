// Mail address helpers for the user directory: splitting local@domain, the
// syntax rules for user names, alias targets and domains, and the canonical
// lookup key (domain case-insensitive, local part exact, RFC 5321 §2.4; the
// reserved local part "postmaster" case-insensitive, RFC 5321 §4.5.1).
// Trust: inputs may come from the network (RCPT TO, AUTH user names) or from
// admin-written files; everything is validated here, nothing is trusted.
// Standards: RFC 5321 (domains, local parts), RFC 5322 §3.2.3 (atext).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace yubin::auth {

struct AddressParts {
  std::string local;
  std::string domain;  // as given (not lowered)
};

// Splits at the last '@'; both sides must be non-empty. No other check.
std::optional<AddressParts> splitAddress(std::string_view address);

// A DNS domain in A-label form: letters, digits and '-', labels of 1..63
// characters not starting or ending with '-', 253 characters at most, no
// trailing dot.
bool isValidDomain(std::string_view domain);

// Local part of a virtual user (the users file): a dot-atom of RFC 5322 atext
// (bytes >= 0x80 also allowed for SMTPUTF8) WITHOUT '/', since the default
// mailbox path is built from it; no leading, trailing or doubled dot; no
// leading '#' (the users-file line would read as a comment); at most 64
// bytes.
bool isValidUserLocalPart(std::string_view local);

// Local part of an alias target (may be remote): any byte from 0x21 to 0x7e
// or >= 0x80 except @ , : ; < > ( ) [ ] \ " ; at most 64 bytes. Quoted local
// parts are not supported.
bool isValidTargetLocalPart(std::string_view local);

// The canonical lookup key: local + "@" + lower(domain); a local part equal
// to "postmaster" in any case becomes "postmaster".
std::string addressKey(std::string_view local, std::string_view domain);
// Same for a whole address; nullopt when it has no '@' or an empty side.
std::optional<std::string> addressKey(std::string_view address);

}  // namespace yubin::auth
