// MemoryStore: the MailStore interface (mail_store.hpp) held in memory, for
// the IMAP protocol tests. Same semantics as the Maildir backend: UIDs
// ascending and never reused, UIDVALIDITY per mailbox (a re-created name
// gets a new one), \Recent given to the first read-write selector (EXAMINE
// sees it without taking it), keywords kept per mailbox (at most
// maxKeywords, 26 like Maildir's letters a-z), expunged messages kept
// marked in a view until its sync(true), COPY/MOVE/APPEND with UIDs, a
// folder tree whose missing parents are listed \Noselect, subscriptions,
// special-use attributes, INBOX rename.
//
// Several MemoryStore handles may share one MemoryStoreData: each stands
// for one session, so a test makes a change "from another session" through
// a second handle (or deliver(), a message arriving from outside) and sees
// it at the next sync(). Each selected mailbox has an eventfd (changeFd())
// that becomes readable when another handle, deliver() or a store-level
// APPEND/COPY changes its mailbox.
//
// Error injection: failNext(op, errnum) makes the next call of op fail with
// that errno (ops: "list", "subscriptions", "subscribe", "create", "remove",
// "rename", "status", "select", "beginAppend", "append.write",
// "append.commit", "sync", "open", "setFlags", "expunge", "copy").
//
// Not thread-safe (one event loop). Test support, but a complete
// implementation: names are checked as the Maildir backend checks them.
// Trust: test code; names and indexes from callers are still checked.
// Mod-sequences (RFC 7162 CONDSTORE): kept per folder and message as
// mail_store.hpp asks, so the session's CONDSTORE is tested against it.
// Standards: as mail_store.hpp (RFC 3501/9051, 4315, 6154, 6851, 7162).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "store/mail_store.hpp"

namespace yubin::store {

class MemoryMailbox;

// The mailboxes of one user, shared by every MemoryStore handle on them.
class MemoryStoreData {
 public:
  struct Message {
    uint32_t uid = 0;
    std::shared_ptr<const std::string> data;
    uint64_t size = 0;  // CRLF size
    Flags flags;
    int64_t internalDate = 0;
    bool recentUnclaimed = true;  // no read-write session has taken \Recent yet
    uint64_t flagVersion = 0;     // bumped on every flag change
    uint64_t modSeq = 1;          // RFC 7162 mod-sequence (see Folder::highestModSeq)
  };
  struct Folder {
    uint32_t uidValidity = 0;
    uint32_t uidNext = 1;
    bool noSelect = false;  // kept only as a parent (after DELETE of a mailbox with children)
    bool deleted = false;   // gone: selected views see every message expunged
    std::string specialUse;
    std::vector<std::string> keywords;
    std::vector<Message> messages;  // ascending uid
    // RFC 7162: 1 for a new folder; every APPEND/COPY, flag change and
    // expunge takes the next value (one per operation).
    uint64_t highestModSeq = 1;
    std::vector<MemoryMailbox*> watchers;
  };

  // INBOX only; with defaults, also kDefaultMailboxes with their attributes.
  explicit MemoryStoreData(bool defaults = false);

  // Makes the next call of op fail with errnum (see the header comment).
  void failNext(const std::string& op, int errnum) { faults_[op] = errnum; }
  // Keywords a mailbox may hold (26 like Maildir); new mailboxes take it.
  size_t maxKeywords = 26;
  // Bytes a MessageReader hands out per read (small: tests cross chunks).
  size_t readChunk = 7;

  // ---- internals shared by MemoryStore and MemoryMailbox ----
  Status fault(const std::string& op);
  std::shared_ptr<Folder> find(const std::string& name) const;  // selectable or noselect
  // Notifies every view of f but `origin`.
  void notify(Folder& f, const MemoryMailbox* origin);
  // The keyword spelling of f matching k (case-insensitive), created when
  // there is room; "" when f is full.
  std::string keyword(Folder& f, const std::string& k);
  uint32_t nextUidValidity();

  std::map<std::string, std::shared_ptr<Folder>> folders;  // "INBOX" always present
  std::set<std::string> subscribed;

 private:
  std::map<std::string, int> faults_;
};

class MemoryStore final : public MailStore {
 public:
  explicit MemoryStore(std::shared_ptr<MemoryStoreData> data = std::make_shared<MemoryStoreData>())
      : data_(std::move(data)) {}

  const std::shared_ptr<MemoryStoreData>& data() const { return data_; }

  // A message arriving from outside (the delivery agent): appended to
  // `mailbox` with a new UID, \Recent, every view notified. internalDate 0:
  // now. Returns the UID; ENOENT for no such mailbox.
  Result<uint32_t> deliver(const std::string& mailbox, std::string bytes, const Flags& flags = {},
                           int64_t internalDate = 0);

  char delimiter() const override { return '.'; }
  Result<std::vector<MailboxListEntry>> list() override;
  Result<std::vector<std::string>> subscriptions() override;
  Status subscribe(const std::string& name, bool on) override;
  Status create(const std::string& name, const std::string& specialUse) override;
  Status remove(const std::string& name) override;
  Status rename(const std::string& from, const std::string& to) override;
  Result<MailboxStatus> status(const std::string& name) override;
  Result<std::unique_ptr<ImapMailbox>> select(const std::string& name, bool readOnly) override;
  Result<std::unique_ptr<AppendTransaction>> beginAppend(const std::string& name) override;

 private:
  std::shared_ptr<MemoryStoreData> data_;
};

// Checks a mailbox name as every backend does (mail_store.hpp): EINVAL for
// an empty name or component, "." or "..", '/', '~' at the start of a
// component, NUL or control characters, invalid UTF-8 is left to the wire
// layer. "INBOX" in any case is the canonical "INBOX".
Result<std::string> checkMailboxName(const std::string& name, char delimiter);

// True when specialUse is "" or one of the five RFC 6154 attributes.
bool validSpecialUse(const std::string& specialUse);

// The subscriptions file of a Maildir++ or mbox tree as Dovecot writes it:
// one modified UTF-7 name per line, or its "V\t2" form (header lines, an
// empty line, then UTF-8 names with tabs between levels). Names that fail
// checkMailboxName are skipped, duplicates dropped; no file: none.
Result<std::vector<std::string>> readSubscriptions(const std::string& path);
// Adds or removes the (checked) name and, when that changes the list,
// rewrites the file in the one-name-per-line form (atomicWrite, 0600). The
// caller holds the lock that serialises writers of the file.
Status changeSubscription(const std::string& path, const std::string& name, bool on);

}  // namespace yubin::store
