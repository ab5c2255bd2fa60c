// mime/address_list: RFC 5322 address lists (From, To, Cc, ...) as the IMAP
// ENVELOPE shows them: one entry per mailbox, plus a start and an end entry
// around each group.
//
// API:
//   std::vector<EnvelopeAddress> parseAddressList(value)
//     value: the raw field value (folding allowed). Never fails: what does
//     not parse becomes the nearest sensible entry, as Dovecot does —
//     "bare" → mailbox "bare", host "MISSING_DOMAIN"; "<>" → mailbox
//     "MISSING_MAILBOX", host "MISSING_DOMAIN". An empty list is empty.
//
// Entries (RFC 3501 §7.4.2 address structure):
//   mailbox   name (display phrase, quoted-strings unquoted, encoded words
//             kept as written; else the last comment after an addr-spec),
//             adl (obsolete source route "@a,@b"), mailbox (local part,
//             quotes removed), host.
//   group     start: mailbox = group name, host = NIL; end: all NIL.
//
// Trust: parses untrusted header values; at most kMaxAddresses entries.
// Standards: RFC 5322 §3.4 and §4.4 (obsolete forms: routes, CFWS around
// dots, missing commas tolerated), RFC 3501 §7.4.2 / RFC 9051 §7.5.2.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace yubin::mime {

inline constexpr size_t kMaxAddresses = 10000;

struct EnvelopeAddress {
  std::optional<std::string> name, adl, mailbox, host;
  bool isGroupStart() const { return mailbox && !host; }
  bool isGroupEnd() const { return !mailbox && !host; }
  bool operator==(const EnvelopeAddress&) const = default;
};

std::vector<EnvelopeAddress> parseAddressList(std::string_view value);

}  // namespace yubin::mime
