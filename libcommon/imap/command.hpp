// The typed syntax tree of an IMAP command, as the parser (parser.hpp)
// yields it: the tag, the command, and per-command arguments. Strings are
// the octets the client sent with quoting and literal framing removed;
// mailbox names are kept in their wire form (decode them with
// mailboxFromWire() from mutf7.hpp, which knows the session's UTF-8 mode and
// hierarchy delimiter); keywords the grammar treats case-insensitively
// (command names, search keys, status items, options) are uppercased or
// turned into enums.
//
// Trust: holds untrusted client data, already checked against the grammar.
//
// Standards: RFC 3501 and RFC 9051 (commands), RFC 4315 (UID EXPUNGE),
// RFC 4731 (SEARCH RETURN), RFC 5182 (SAVE, "$"), RFC 4959 (SASL-IR),
// RFC 5161 (ENABLE), RFC 5258 / RFC 5819 / RFC 6154 (LIST-EXTENDED,
// LIST-STATUS, SPECIAL-USE), RFC 3516 (BINARY), RFC 6851 (MOVE),
// RFC 7162 (CONDSTORE, QRESYNC), RFC 2971 (ID), RFC 2177 (IDLE),
// RFC 3691 (UNSELECT), RFC 3502 (MULTIAPPEND), RFC 5032 (OLDER, YOUNGER),
// RFC 2342 (NAMESPACE).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "imap/date.hpp"
#include "imap/sequence.hpp"

namespace yubin::imap {

enum class CommandKind : uint8_t {
  Capability, Noop, Logout, StartTls, Authenticate, Login, Enable, Select, Examine,
  Create, Delete, Rename, Subscribe, Unsubscribe, List, Lsub, Namespace, Status,
  Append, Check, Close, Unselect, Expunge, Search, Fetch, Store, Copy, Move, Idle, Id,
};

// ---- Arguments, one struct per command shape. ----

struct LoginArgs {
  std::string user;
  std::string password;
};

struct AuthenticateArgs {
  std::string mechanism;  // uppercased ("PLAIN", "SCRAM-SHA-256")
  // SASL-IR (RFC 4959): the base64 text as sent (syntax checked, not
  // decoded); "" when the client sent "=" (an empty response); nullopt when
  // absent.
  std::optional<std::string> initialResponse;
};

struct EnableArgs {
  std::vector<std::string> capabilities;  // uppercased
};

struct QresyncParams {
  uint32_t uidValidity = 0;
  uint64_t modSeq = 0;
  std::optional<SequenceSet> knownUids;
  std::optional<std::pair<SequenceSet, SequenceSet>> seqMatch;  // (sequence numbers, UIDs)
};

struct SelectArgs {  // SELECT and EXAMINE
  std::string mailbox;
  bool condstore = false;
  std::optional<QresyncParams> qresync;
};

struct CreateArgs {
  std::string mailbox;
  std::vector<std::string> specialUse;  // RFC 6154 CREATE ... (USE (\Sent)); flags as sent
};

struct MailboxArgs {  // DELETE, SUBSCRIBE, UNSUBSCRIBE
  std::string mailbox;
};

struct RenameArgs {
  std::string from;
  std::string to;
};

enum class StatusItem : uint8_t {
  Messages, Recent, UidNext, UidValidity, Unseen, Deleted, Size, HighestModSeq,
};
std::string_view statusItemName(StatusItem item);

struct ListArgs {  // LIST and LSUB
  // Selection options (RFC 5258); any of them makes the command extended.
  bool selSubscribed = false, selRemote = false, selRecursiveMatch = false,
       selSpecialUse = false;
  bool hasSelectOptions = false;  // "LIST () ..." counts as extended
  std::string reference;          // wire form
  std::vector<std::string> patterns;  // one, or several with "(p1 p2)"; wire form
  bool patternList = false;           // patterns were given in parentheses
  // Return options (RFC 5258, RFC 5819, RFC 6154).
  bool hasReturnOptions = false;
  bool retSubscribed = false, retChildren = false, retSpecialUse = false, retStatus = false;
  std::vector<StatusItem> statusItems;  // RETURN (STATUS (...))
  bool extended() const { return hasSelectOptions || hasReturnOptions || patternList; }
};

struct StatusArgs {
  std::string mailbox;
  std::vector<StatusItem> items;
};

struct AppendMessage {
  std::vector<std::string> flags;  // as sent (see canonicalFlag)
  std::optional<DateTime> date;
  uint64_t size = 0;
  bool binary = false;   // literal8 "~{n}" (RFC 3516)
  std::string content;   // only when the parser has no MessageSink
};

struct AppendArgs {
  std::string mailbox;
  std::vector<AppendMessage> messages;  // several with MULTIAPPEND
};

struct SearchKey {
  enum class Kind : uint8_t {
    And,  // a parenthesised list, or the top level: every child matches
    Or, Not,
    All, Answered, Deleted, Draft, Flagged, New, Old, Recent, Seen,
    Unanswered, Undeleted, Undraft, Unflagged, Unseen,
    Keyword, Unkeyword,  // text = the keyword
    Bcc, Body, Cc, From, Subject, Text, To,  // text = the string
    Header,  // field = header name, text = the string
    Before, On, Since, SentBefore, SentOn, SentSince,  // date
    Larger, Smaller,  // number
    Older, Younger,   // number (seconds, RFC 5032)
    Uid,          // set
    SequenceSet,  // set (message sequence numbers)
    ModSeq,       // number; field = entry name ("/flags/\Seen"), text = "priv"/"shared"/"all"
  };
  Kind kind = Kind::All;
  std::string field;
  std::string text;
  Date date;
  uint64_t number = 0;
  SequenceSet set;
  std::vector<SearchKey> children;  // And: 1+, Or: 2, Not: 1
};

enum SearchReturn : uint8_t {
  kReturnMin = 1, kReturnMax = 2, kReturnAll = 4, kReturnCount = 8, kReturnSave = 16,
};

struct SearchArgs {
  bool esearch = false;       // RETURN (...) was given: answer with ESEARCH
  uint8_t returnOptions = 0;  // SearchReturn bits; "RETURN ()" means ALL
  std::optional<std::string> charset;  // as sent; the key strings are in it
  SearchKey key;                       // Kind::And of the top-level keys
};

struct Section {
  enum class Text : uint8_t { None, Header, HeaderFields, HeaderFieldsNot, Text, Mime };
  std::vector<uint32_t> part;  // "1.2.3"; empty for the whole message
  Text text = Text::None;
  std::vector<std::string> fields;  // HEADER.FIELDS[.NOT] names as sent
  bool operator==(const Section&) const = default;
};

struct FetchAtt {
  enum class Kind : uint8_t {
    Envelope, Flags, InternalDate, Rfc822, Rfc822Header, Rfc822Size, Rfc822Text,
    Body,           // BODY without a section: BODYSTRUCTURE without extension data
    BodyStructure, Uid,
    BodySection,    // BODY[section]<partial> / BODY.PEEK[...]
    Binary,         // BINARY[part]<partial> / BINARY.PEEK[...]
    BinarySize,     // BINARY.SIZE[part]
    ModSeq,
  };
  Kind kind = Kind::Flags;
  bool peek = false;
  Section section;  // BodySection; Binary and BinarySize use section.part only
  std::optional<std::pair<uint64_t, uint64_t>> partial;  // <offset.count>, count > 0

  // The item's name in the FETCH response: "BODY[1.HEADER.FIELDS (From)]<0>",
  // "BINARY.SIZE[2]", "RFC822.HEADER", "UID". PEEK is dropped; a partial
  // shows its origin only (RFC 3501 §7.4.2).
  std::string responseName() const;
  bool operator==(const FetchAtt&) const = default;
};

struct FetchArgs {
  SequenceSet set;
  std::vector<FetchAtt> atts;  // ALL, FAST and FULL are expanded
  std::optional<uint64_t> changedSince;  // CHANGEDSINCE (RFC 7162)
  bool vanished = false;                 // VANISHED (RFC 7162 QRESYNC)
};

struct StoreArgs {
  enum class Op : uint8_t { Replace, Add, Remove };
  SequenceSet set;
  std::optional<uint64_t> unchangedSince;
  Op op = Op::Replace;
  bool silent = false;
  std::vector<std::string> flags;
};

struct CopyArgs {  // COPY and MOVE
  SequenceSet set;
  std::string mailbox;
};

struct ExpungeArgs {  // UID EXPUNGE (RFC 4315)
  SequenceSet set;
};

struct IdArgs {
  // nullopt for "ID NIL"; otherwise field / value pairs (value nullopt = NIL).
  std::optional<std::vector<std::pair<std::string, std::optional<std::string>>>> params;
};

using CommandArgs =
    std::variant<std::monostate, LoginArgs, AuthenticateArgs, EnableArgs, SelectArgs, CreateArgs,
                 MailboxArgs, RenameArgs, ListArgs, StatusArgs, AppendArgs, SearchArgs, FetchArgs,
                 StoreArgs, CopyArgs, ExpungeArgs, IdArgs>;

struct Command {
  std::string tag;
  std::string name;  // uppercased command name ("FETCH" for "uid fetch")
  CommandKind kind = CommandKind::Noop;
  bool uid = false;  // UID prefix (COPY, MOVE, FETCH, SEARCH, STORE, EXPUNGE)
  CommandArgs args;  // std::monostate for commands without arguments and for plain EXPUNGE
};

}  // namespace yubin::imap
