// Building blocks for IMAP server responses, so that every line the session
// writes follows the grammar: strings rendered as atom, quoted string or
// literal as the content allows, NIL, flag lists, response codes, tagged,
// untagged and continuation lines.
//
// Trust: renders data that may come from untrusted messages and clients
// (header fields, mailbox names, flags); every function here produces valid
// syntax whatever its input: a byte that cannot be quoted forces a literal,
// response text is sanitised.
//
// Standards: RFC 3501 §9 / RFC 9051 §9 (astring, string, quoted, literal,
// nstring, nil, flag-list, resp-text, resp-text-code, response-tagged,
// response-data, continue-req), RFC 3516 (literal8 "~{n}" for BINARY),
// RFC 9051 / RFC 6855 (UTF-8 in quoted strings only after ENABLE).
//
// API, in short (all append to `out`; `utf8` = the session has enabled
// IMAP4rev2 or UTF8=ACCEPT, so valid UTF-8 may be quoted):
//   appendString(out, s, utf8)      quoted when safe and short, else {n} literal
//   appendAstring(out, s, utf8)     atom when it is one (not "NIL"), else string
//   appendNstring(out, opt, utf8)   NIL for nullopt
//   appendLiteral / appendLiteral8 / literalHeader (for streamed bodies)
//   appendMailbox(out, name, utf8)  UTF-8 name -> mUTF-7 (rev1) astring
//   appendFlagList(out, flags)      "(\Seen $Label1)"
//   canonicalFlag("\seen") -> "\Seen"; isValidFlag / isValidKeyword
//   codeNumber / codeAppendUid / codeCopyUid / codePermanentFlags / ...
//   searchData(numbers) / esearchData(tag, uid, returnOptions, results)
//   tagged(tag, Cond::Ok, "READ-WRITE", "SELECT completed")
//   untagged(Cond::No, "ALERT", "...") / untaggedData("5 EXISTS") / continuation("Ready")
//   continuationBase64(challenge)   SASL challenge line
// Codes are passed without brackets ("APPENDUID 38505 3955"); they come from
// the server, never from the client.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace yubin::imap {

// Strings longer than this are sent as literals even when quotable.
inline constexpr size_t kMaxQuoted = 1024;

// ATOM-CHAR: any CHAR except atom-specials ( "(" ")" "{" SP CTL "%" "*" '"' "\" "]" ).
bool isAtomChar(unsigned char c);
// ASTRING-CHAR: ATOM-CHAR or "]".
bool isAstringChar(unsigned char c);
// 1*ATOM-CHAR
bool isAtom(std::string_view s);
// Can be sent as a quoted string: no NUL, CR, LF; 8-bit only when utf8 and
// valid UTF-8.
bool isQuotable(std::string_view s, bool utf8);

void appendQuoted(std::string& out, std::string_view s);  // precondition: isQuotable
void appendLiteral(std::string& out, std::string_view s);
void appendLiteral8(std::string& out, std::string_view s);
// "{n}\r\n" or "~{n}\r\n": the caller sends the n octets itself.
void appendLiteralHeader(std::string& out, uint64_t size, bool binary = false);
void appendString(std::string& out, std::string_view s, bool utf8 = false);
void appendAstring(std::string& out, std::string_view s, bool utf8 = false);
void appendNstring(std::string& out, std::optional<std::string_view> s, bool utf8 = false);
// A normalised UTF-8 mailbox name (see mutf7.hpp) in the client's encoding;
// "INBOX" is always written as the atom INBOX.
void appendMailbox(std::string& out, std::string_view name, bool utf8);

// flag-keyword (an atom) and system / extension flags ("\" atom).
bool isValidKeyword(std::string_view s);
bool isValidFlag(std::string_view s);
// System flags in their canonical case ("\SEEN" -> "\Seen"); others as given.
std::string canonicalFlag(std::string_view flag);
// "(" flags joined by SP ")"; flags must satisfy isValidFlag (others are skipped).
void appendFlagList(std::string& out, std::span<const std::string> flags);

// ---- Response codes with arguments (the text between the brackets). ----

// "UIDNEXT 4392", "UIDVALIDITY 3857529045", "HIGHESTMODSEQ 715194045007"
std::string codeNumber(std::string_view name, uint64_t value);
// "APPENDUID 38505 3955" / "APPENDUID 38505 3955:3957" (RFC 4315)
std::string codeAppendUid(uint32_t uidValidity, std::span<const uint32_t> uids);
// "COPYUID 38505 304,319:320 3956:3958": the two lists correspond item by
// item (RFC 4315 §3); both are written in the given order.
std::string codeCopyUid(uint32_t uidValidity, std::span<const uint32_t> sourceUids,
                        std::span<const uint32_t> destUids);
// "PERMANENTFLAGS (\Seen \Deleted \*)": keywords may be created when
// allowNew.
std::string codePermanentFlags(std::span<const std::string> flags, bool allowNew);
// "BADCHARSET (UTF-8 US-ASCII)"
std::string codeBadCharset(std::span<const std::string> charsets);
// "MODIFIED 7,9" (RFC 7162)
std::string codeModified(std::span<const uint32_t> numbers);

// ---- SEARCH results. ----

// "SEARCH 2 3 6" (RFC 3501), with " (MODSEQ n)" when modSeq is given
// (RFC 7162 §3.1.5). Numbers in the given order.
std::string searchData(std::span<const uint32_t> numbers, std::optional<uint64_t> modSeq = {});
// "ESEARCH (TAG \"a1\") UID MIN 2 MAX 9 ALL 2:4,9 COUNT 4" (RFC 4731) for
// `results` in ascending order and the SearchReturn bits of the command
// (command.hpp). MIN, MAX and ALL are left out when nothing matched; COUNT
// is always given when asked for. Returns "" when SAVE was the only option:
// then no ESEARCH response is sent (RFC 5182 §2.1). modSeq: " MODSEQ n"
// at the end when something matched (RFC 7162 §3.1.5, a SEARCH with the
// MODSEQ key).
std::string esearchData(std::string_view tag, bool uid, uint8_t returnOptions,
                        std::span<const uint32_t> results,
                        std::optional<uint64_t> modSeq = {});

enum class Cond { Ok, No, Bad, Bye, PreAuth };
std::string_view condName(Cond c);

// resp-text: "[" code "] " text, or text. The text is sanitised to
// TEXT-CHARs (CR, LF, NUL and 8-bit become '?'), never empty, and never
// starts with '[' when there is no code.
void appendRespText(std::string& out, std::string_view code, std::string_view text);

// "tag OK [code] text\r\n"
std::string tagged(std::string_view tag, Cond cond, std::string_view code, std::string_view text);
// "* BAD [code] text\r\n"; with an empty tag, tagged() writes this as well.
std::string untagged(Cond cond, std::string_view code, std::string_view text);
// "* " data "\r\n": data is a complete response-data body the caller built
// with the functions above ("3 EXISTS", "FLAGS (\Seen)", "5 FETCH (...)").
std::string untaggedData(std::string_view data);
// "+ " text "\r\n" (continue-req); the text is sanitised like resp-text.
std::string continuation(std::string_view text);
// "+ " base64 "\r\n": an AUTHENTICATE challenge (may be empty). Characters
// outside the base64 alphabet are dropped.
std::string continuationBase64(std::string_view base64);

}  // namespace yubin::imap
