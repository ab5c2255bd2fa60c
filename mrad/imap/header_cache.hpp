// mrad/imap/header_cache: the header fields SEARCH has asked for and the
// rendered ENVELOPE FETCH has sent, per folder, shared by the sessions of
// the mail process that have the folder selected (Dovecot's
// dovecot.index.cache plays this part there, on disk).
//
// A HeaderCache holds, for each message it has seen (by UID), the raw
// values of the fields the folder's searches named (SUBJECT, FROM, TO, CC,
// BCC, Date for SENT*, HEADER <name>), in the message's order. A folder
// tracks at most kMaxCachedFields names; a search naming a field not yet
// tracked reads each message's header once more and the entries grow to
// cover it. An entry answers a lookup only when it covers every name asked
// for, so a partial entry is never mistaken for "field absent".
//
// An entry also keeps the message's ENVELOPE as FETCH rendered it (in the
// form of one rendering mode: UTF-8 quoted or not), so a FETCH ENVELOPE
// of a whole folder opens and parses each message once per process, not
// once per command; the fields ENVELOPE uses are never volatile.
//
// Keys: (user, mailbox name, UIDVALIDITY) selects the folder's cache, the
// UID the message. Under one UIDVALIDITY a UID never names other content
// (RFC 3501 §2.3.1.1; Maildir: the file under one unique name never
// changes, only its flags suffix does; yubin's UIDVALIDITY allocator never
// hands out a value twice under one root), so entries are never
// invalidated, only dropped when their message is expunged. The mbox store
// rewrites its own state fields (Status, X-Status, X-Keywords, X-UID,
// X-IMAP, X-IMAPbase, Content-Length) in place: those names are never
// cached (a search on them reads the messages).
//
// Expunged messages: the search evaluator and FETCH call dropBetween() as
// they walk a session's view; two messages with consecutive sequence numbers in one
// session's view have no live message between their UIDs (views hold every
// message up to their last sync, in UID order, less the expunges they have
// reported), so entries between them are dropped, and the first message
// drops those below it. (Entries of the highest UIDs, expunged, stay until
// a later message is looked at after them; they count in the budget.)
//
// Memory: each folder has a byte budget (entries, their values and the map
// nodes, counted as they are added); when a new entry or a wider one would
// pass it, the entry is not stored (the search reads that message as
// before). The process-wide registry keeps the caches of folders no session
// has selected only up to kMaxIdleFolders besides the one last asked for
// (least recently asked for dropped first), so the whole is bounded by
// (sessions' folders + kMaxIdleFolders + 1) × budget.
//
// Trust: holds untrusted header bytes of the user's own messages; names
// and sizes bounded as above. Single-threaded (the mail process's loop).
// Standards: RFC 3501 / RFC 9051 §6.4.4 (the SEARCH keys it serves).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "mime/header.hpp"

namespace yubin::mrad::imap {

inline constexpr size_t kMaxCachedFields = 16;
inline constexpr size_t kDefaultHeaderCacheBudget = size_t{16} << 20;  // per folder
inline constexpr size_t kMaxIdleFolders = 32;

// Lower-case field names a search needs, deduplicated; empty when the key
// needs no header.
using FieldNames = std::vector<std::string>;

struct HeaderCacheStats {
  uint64_t hits = 0;      // lookups answered
  uint64_t misses = 0;    // lookups not answered (no entry or a narrower one)
  uint64_t stored = 0;    // entries created or widened
  uint64_t refused = 0;   // fills left out: over budget or too many field names
  uint64_t dropped = 0;   // entries dropped by dropBetween()
  uint64_t envelopeHits = 0;
  uint64_t envelopeMisses = 0;
};

class HeaderCache {
 public:
  explicit HeaderCache(size_t budget = kDefaultHeaderCacheBudget) : budget_(budget) {}
  HeaderCache(const HeaderCache&) = delete;
  HeaderCache& operator=(const HeaderCache&) = delete;

  // Whether names can be served at all (none volatile, the folder can
  // track them all). Cheap; the evaluator asks once per message.
  bool cacheable(const FieldNames& names) const;

  // Message uid's fields named in names (in the message's order, names as
  // tracked, i.e. lower case) into out; false when the entry is missing or
  // does not cover every name.
  bool lookup(uint32_t uid, const FieldNames& names, std::vector<mime::HeaderField>& out);

  // Stores message uid's fields out of its whole parsed header: those named
  // in names and in every name the folder already tracks. Refused (no
  // change) over the budget or past kMaxCachedFields.
  void fill(uint32_t uid, const std::vector<mime::HeaderField>& all, const FieldNames& names);

  // Appends message uid's rendered ENVELOPE (rendered with utf8Quoted =
  // utf8) to out; false when it is not kept in that form.
  bool envelope(uint32_t uid, bool utf8, std::string& out);
  // Keeps message uid's rendered ENVELOPE (no change over the budget).
  void storeEnvelope(uint32_t uid, bool utf8, std::string_view rendered);

  // Drops the entries of expunged messages: those with prevUid < UID <
  // nextUid (prevUid 0: from the first).
  void dropBetween(uint32_t prevUid, uint32_t nextUid);

  size_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }
  size_t budget() const { return budget_; }
  const HeaderCacheStats& stats() const { return stats_; }
  const std::vector<std::string>& trackedFields() const { return tracked_; }

 private:
  // Values of one message: records of [field index (1 byte)][value length
  // (4 bytes)][value], in the message's order; mask: the tracked fields
  // covered (bit i = tracked_[i]); envelope: the rendered ENVELOPE, empty
  // when not kept, in the utf8Quoted form envelopeUtf8.
  struct Entry {
    uint32_t mask = 0;
    bool envelopeUtf8 = false;
    std::string blob;
    std::string envelope;
  };
  using Map = std::map<uint32_t, Entry>;
  static size_t costOf(const Entry& e);
  int indexOf(std::string_view lowerName) const;
  int track(const std::string& lowerName);
  // The first entry with UID >= uid. FETCH and SEARCH walk a folder in
  // UID order: the entry after the last one found (hint_) is tried before
  // a search of the tree.
  Map::iterator lowerBound(uint32_t uid);
  // The entry of uid, or end().
  Map::iterator find(uint32_t uid);
  void erase(Map::iterator from, Map::iterator to);
  // Puts e in uid's place when the budget allows; false otherwise.
  bool install(uint32_t uid, Entry e);

  size_t budget_;
  size_t bytes_ = 0;
  std::vector<std::string> tracked_;  // lower case
  Map entries_;
  Map::iterator hint_ = entries_.end();  // never an erased entry
  HeaderCacheStats stats_;
};

// The process's caches, one per (user, mailbox, UIDVALIDITY).
class HeaderCaches {
 public:
  explicit HeaderCaches(size_t budget = kDefaultHeaderCacheBudget,
                        size_t maxIdle = kMaxIdleFolders)
      : budget_(budget), maxIdle_(maxIdle) {}
  // The folder's cache, created empty on first use. A session holds the
  // pointer while the folder is selected.
  std::shared_ptr<HeaderCache> forFolder(std::string_view user, std::string_view mailbox,
                                         uint32_t uidValidity);
  size_t folders() const { return folders_.size(); }
  size_t bytes() const;

 private:
  struct Folder {
    std::shared_ptr<HeaderCache> cache;
    uint64_t lastUse = 0;
  };
  void trim();

  size_t budget_;
  size_t maxIdle_;
  uint64_t clock_ = 0;
  std::map<std::string, Folder, std::less<>> folders_;
};

// The mail process's registry (one thread; created on first use).
HeaderCaches& processHeaderCaches();

}  // namespace yubin::mrad::imap
