// Mailbox names: modified UTF-7 (IMAP4rev1's mailbox name encoding) and the
// checks every name goes through before the storage sees it, plus LIST
// pattern matching ('*' and '%').
//
// Trust: decodes untrusted network input (runs inside mrad). The storage
// still owns the path rules (".." and the like); this layer refuses what no
// IMAP name may contain and gives one normalised UTF-8 form per name.
//
// Standards: RFC 3501 §5.1 and §5.1.3 (modified UTF-7, INBOX
// case-insensitive), RFC 9051 §5.1 (IMAP4rev2 names are UTF-8, no mUTF-7),
// RFC 6855 (UTF8=ACCEPT), RFC 3501 §6.3.8 (LIST wildcards).
//
// Strict decoding refuses every non-canonical form: a printable ASCII
// character (U+0020..U+007E) inside a base64 run, two adjacent runs
// ("&AOQ-&APY-" must be "&AOQA9g-"), a run that is empty ("&-" is the
// ampersand itself, which is fine), non-zero padding bits, a dangling
// partial UTF-16 unit, unpaired surrogates, U+0000, raw octets outside
// U+0020..U+007E, and a missing '-'.
//
// API, in short:
//   mutf7Encode(utf8) -> Result<std::string>   (Error on invalid UTF-8)
//   mutf7Decode(text) -> Result<std::string>   (UTF-8)
//   MailboxNameRules rules{.delimiter = '.', .utf8 = false};
//   mailboxFromWire(wire, rules) -> Result<std::string>  normalised UTF-8 name
//   mailboxToWire(name, utf8) -> std::string             name for responses
//   patternFromWire(wire, rules) -> Result<std::string>  LIST pattern, UTF-8
//   matchPattern(pattern, name, delimiter) -> bool
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "base/result.hpp"

namespace yubin::imap {

Result<std::string> mutf7Encode(std::string_view utf8);
Result<std::string> mutf7Decode(std::string_view text);

struct MailboxNameRules {
  char delimiter = '.';    // the hierarchy delimiter ('.' for Maildir++, '/' for mbox trees)
  bool utf8 = false;       // names on the wire are UTF-8 (IMAP4rev2, UTF8=ACCEPT), not mUTF-7
  size_t maxLength = 512;  // octets of the UTF-8 form
};

// True for "INBOX" in any case.
bool isInbox(std::string_view name);

// The UTF-8 form of a mailbox name as received: decoded from modified UTF-7
// unless rules.utf8, "INBOX" canonical in any case (also as the first level,
// "inbox.Sub" -> "INBOX.Sub"), and checked: not empty, not too long, valid
// UTF-8, no control characters (C0, DEL, C1), no empty level (a leading,
// trailing or doubled delimiter). Wildcards are refused ('*', '%').
Result<std::string> mailboxFromWire(std::string_view wire, const MailboxNameRules& rules);

// A UTF-8 name as the client expects it: modified UTF-7 unless utf8. The
// name must be valid UTF-8 (it came from mailboxFromWire or the storage);
// invalid bytes are replaced by U+FFFD rather than failing.
std::string mailboxToWire(std::string_view name, bool utf8);

// A LIST / LSUB pattern (the mailbox-name argument or the reference), decoded
// like a name but with wildcards allowed and empty levels permitted (""
// is a valid pattern). "INBOX" is canonicalised as in mailboxFromWire.
Result<std::string> patternFromWire(std::string_view wire, const MailboxNameRules& rules);

// LIST matching (RFC 3501 §6.3.8): '*' matches any run of characters, '%'
// any run without the delimiter; everything else literally. The caller
// passes normalised names (INBOX canonical). O(|pattern| * |name|) time.
bool matchPattern(std::string_view pattern, std::string_view name, char delimiter);

}  // namespace yubin::imap
