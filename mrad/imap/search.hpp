// mrad/imap/search: evaluates an IMAP SEARCH key (the parser's SearchKey
// tree) against one message of the selected mailbox. The session walks the
// messages, wraps each in a SearchMessage and asks matches(); this file owns
// the meaning of every key, the text matching (RFC 2047 decoding, transfer
// decoding, charsets, case folding) and the order in which keys are tried.
//
// Cost: keys that need only MessageInfo (flags, UID, sequence number, size,
// internal date, OLDER/YOUNGER) are evaluated first, then header keys, then
// BODY/TEXT; And/Or/Not short-circuit, so a message whose info already
// decides the answer is never read. header() and whole() are called at most
// once each per matches() call (the session may cache them across calls);
// whole() only for BODY and TEXT. A message whose SearchMessage offers a
// header cache (header_cache.hpp) holding the fields a header key needs
// is not read at all: a second header search of a folder opens no file.
//
// Text matching: substring, case-insensitive after simple case folding:
// ASCII, plus the one-to-one upper->lower mappings of Latin-1, Latin
// Extended-A, Greek and Cyrillic (no multi-character foldings such as
// U+00DF -> "ss", no normalisation). Header fields are unfolded and their
// RFC 2047 encoded words decoded. FROM/TO/CC/BCC match the decoded field
// value, each address's decoded display name, and "local@domain" and
// "name <local@domain>" of each address. An empty string matches when the
// field is present (HEADER name "", FROM "", SUBJECT ""); BODY "" and
// TEXT "" match every message without reading it. BODY searches the
// decoded text (transfer encoding undone, charset converted to UTF-8) of
// every text/* part, recursing into multiparts and message/rfc822
// attachments (whose header is part of the outer body, so it is searched
// too, decoded); other parts (images, application/*) and the MIME headers
// of body parts are not searched. TEXT searches the top-level header
// (decoded) and then what BODY does. A match never spans two parts. At
// most kMaxScanBytes of decoded text are scanned per key and message (past
// that: no match), and the MIME parser's own limits (depth, parts, header
// sizes) apply. OLDER/YOUNGER: an age of exactly the interval matches
// both (as Dovecot does).
//
// Dates: BEFORE/ON/SINCE compare the internal date's calendar day in UTC
// (the server's time zone for SEARCH purposes is UTC). SENTBEFORE/SENTON/
// SENTSINCE compare the calendar day written in the Date: header (its own
// zone, time ignored, RFC 9051 §6.4.4); a message whose Date: does not
// parse never matches them (so NOT SENTON matches it). OLDER/YOUNGER
// (RFC 5032) compare ctx.now - internalDate with the interval in seconds.
//
// Sets: a sequence set's "*" is ctx.maxSeq, a UID set's "*" is ctx.maxUid
// (RFC 3501 §6.4.8: "n:*" always includes the highest). "$" (RFC 5182) is
// the saved result, given as the UIDs it names in ascending order; in
// either a sequence-set or a UID key it matches the messages with those
// UIDs; null = empty.
//
// Trust: evaluates untrusted keys from an authenticated user against
// untrusted message bytes; memory bounded by the limits above. Runs in
// mrad's mail process as the mailbox owner.
// Standards: RFC 3501 §6.4.4, RFC 9051 §6.4.4 (SEARCH keys, CHARSET), RFC
// 5032 (OLDER, YOUNGER), RFC 5182 ("$"), RFC 2047 (encoded words), RFC 2045
// §6 (transfer encodings), RFC 5322 §3.3 (Date: syntax incl. obsolete
// forms), RFC 4731 (the result forms are the session's).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "imap/command.hpp"
#include "mrad/imap/header_cache.hpp"
#include "store/mail_store.hpp"

namespace yubin::mrad::imap {

// Decoded text bytes scanned per BODY/TEXT key and message.
inline constexpr uint64_t kMaxScanBytes = uint64_t{64} << 20;

struct SearchContext {
  uint32_t maxSeq = 0;  // messages in the view: "*" of a sequence set
  uint32_t maxUid = 0;  // highest UID in the view: "*" of a UID set (0 if empty)
  int64_t now = 0;      // seconds since the epoch, for OLDER/YOUNGER
  bool utf8 = false;    // UTF8=ACCEPT enabled (key strings are UTF-8 either way)
  // The last message matches() looked at in this run (for the header
  // cache's sweep of expunged entries); one SearchContext per run and view.
  struct Cursor {
    uint32_t seq = 0;
    uint32_t uid = 0;
  };
  mutable Cursor cursor{};
};

// Lazily loaded message data; the session fills it, the evaluator pulls
// what the key needs (flags/uid/size/date need no I/O).
class SearchMessage {
 public:
  virtual ~SearchMessage() = default;
  virtual uint32_t seq() const = 0;
  virtual const store::MessageInfo& info() const = 0;
  // info().uid, where the message can tell it more cheaply.
  virtual uint32_t uid() const { return info().uid; }
  // The top-level header block (up to and including the empty line, or the
  // whole message when it has none). An error makes matches() fail.
  virtual Result<std::string_view> header() = 0;
  // The entire message as stored (LF or CRLF line ends).
  virtual Result<std::string_view> whole() = 0;
  // The folder's header cache (header_cache.hpp), or null: then header
  // keys read header() every time. With a cache, matches() answers header
  // keys from it when it covers the fields, fills it when it does not
  // (from header(), parsed once), and drops the entries of messages
  // expunged between consecutive sequence numbers it is shown in one run.
  virtual HeaderCache* headerCache() { return nullptr; }
};

// Checks the charset ("" = US-ASCII/UTF-8); error text for [BADCHARSET].
// nullopt (no CHARSET given), "UTF-8" and "US-ASCII" (any case) are
// accepted; anything else fails with a message naming the charset. The
// session answers NO [BADCHARSET (UTF-8 US-ASCII)] then.
Status checkCharset(const std::optional<std::string>& charset);

// Whether the message matches key. Fails only when header() or whole()
// fails (the session answers NO and stops the search).
Result<bool> matches(const yubin::imap::SearchKey& key, SearchMessage& m,
                     const SearchContext& ctx,
                     const std::vector<uint32_t>* saved /* $ of SEARCHRES, may be null */);

// What the key may need beyond MessageInfo, for a session that wants to
// prefetch or to know that a search is cheap.
enum class SearchNeeds : uint8_t { Info, Header, Whole };
SearchNeeds searchNeeds(const yubin::imap::SearchKey& key);

// The header fields key needs, lower case, each once, in the order first
// named: SUBJECT -> "subject", FROM/TO/CC/BCC, SENT* -> "date", HEADER x
// -> x (the header cache's keys; also for a session that prefetches).
FieldNames searchFields(const yubin::imap::SearchKey& key);

// Simple case folding of UTF-8 text as described above (invalid sequences
// are kept as they are). Exposed for the tests and the session.
std::string foldCase(std::string_view text);

}  // namespace yubin::mrad::imap
