// The IMAP authenticated and selected states; see mail_session.hpp.
#include "mrad/imap/mail_session.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <optional>
#include <utility>

#include "base/log.hpp"
#include "base/unique_fd.hpp"
#include "imap/date.hpp"
#include "imap/mutf7.hpp"
#include "imap/response.hpp"
#include "mrad/imap/fetch.hpp"
#include "mrad/imap/header_cache.hpp"
#include "mrad/imap/search.hpp"

namespace yubin::mrad::imap {
namespace wire = yubin::imap;
using wire::Cond;
namespace {

constexpr size_t kFirstBudget = size_t{256} * 1024;
constexpr size_t kCopyPiece = size_t{64} * 1024;
constexpr uint64_t kMaxSearchRead = uint64_t{64} << 20;

constexpr const char* kCapabilities =
    "IMAP4rev1 IMAP4rev2 SASL-IR ID ENABLE IDLE LITERAL+ NAMESPACE UIDPLUS MOVE UNSELECT "
    "CHILDREN LIST-EXTENDED LIST-STATUS SPECIAL-USE ESEARCH SEARCHRES STATUS=SIZE BINARY "
    "CONDSTORE";

// An APPEND message being received before the command (and so the target
// mailbox) is known: kept in an anonymous memory file, not in the heap.
class Spool {
 public:
  bool open() {
    fd_.reset(::memfd_create("imap-append", MFD_CLOEXEC));
    return fd_.valid();
  }
  void write(std::string_view data) {
    while (!data.empty() && !failed_) {
      ssize_t n = ::write(fd_.get(), data.data(), data.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        failed_ = true;
        break;
      }
      data.remove_prefix(static_cast<size_t>(n));
      size_ += static_cast<uint64_t>(n);
    }
  }
  bool failed() const { return failed_ || !fd_.valid(); }
  // Streams the content into tx.
  Status copyTo(store::AppendTransaction& tx) {
    std::string buf(kCopyPiece, '\0');
    uint64_t off = 0;
    while (off < size_) {
      ssize_t n = ::pread(fd_.get(), buf.data(), buf.size(), static_cast<off_t>(off));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return errnoError("read spool", n < 0 ? errno : EIO);
      auto st = tx.write(std::string_view(buf.data(), static_cast<size_t>(n)));
      if (!st) return st;
      off += static_cast<uint64_t>(n);
    }
    return {};
  }

 private:
  UniqueFd fd_;
  uint64_t size_ = 0;
  bool failed_ = false;
};

std::optional<uint8_t> systemFlagBit(const std::string& canonical) {
  if (canonical == "\\Seen") return store::kFlagSeen;
  if (canonical == "\\Answered") return store::kFlagAnswered;
  if (canonical == "\\Flagged") return store::kFlagFlagged;
  if (canonical == "\\Deleted") return store::kFlagDeleted;
  if (canonical == "\\Draft") return store::kFlagDraft;
  return std::nullopt;
}

// A SEARCH key that uses MODSEQ (a CONDSTORE-enabling command).
bool usesModSeq(const wire::SearchKey& k) {
  if (k.kind == wire::SearchKey::Kind::ModSeq) return true;
  for (const auto& c : k.children)
    if (usesModSeq(c)) return true;
  return false;
}

std::string lower(std::string_view s) {
  std::string r(s);
  for (char& c : r) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return r;
}

}  // namespace

class MailSession::Impl : public wire::MessageSink {
 public:
  Impl(store::MailStore& store, MailSettings s, Offload offload)
      : store_(store),
        settings_(std::move(s)),
        offload_(std::move(offload)),
        parser_(settings_.parser, this) {}
  // A commit still under way finishes without us (append_commit.hpp).
  ~Impl() { *alive_ = false; }

  // ---- MessageSink (APPEND literals) ----
  void messageBegin(size_t index, uint64_t, bool) override {
    if (index == 0) spools_.clear();
    spools_.emplace_back();
    if (!spools_.back().open()) YLOG_WARN("imap: memfd_create failed: id=%s", settings_.logId.c_str());
  }
  void messageData(std::string_view chunk) override {
    if (!spools_.empty()) spools_.back().write(chunk);
  }
  void messageEnd() override {}

  void start(std::string_view tag, std::string_view pending) {
    out_ += wire::tagged(tag, Cond::Ok, std::string("CAPABILITY ") + kCapabilities, "Logged in");
    feed(pending);
  }

  void feed(std::string_view bytes) {
    parser_.feed(bytes);
    run();
  }

  void run() {
    while (!closing_ && !busy()) {
      wire::Event e = parser_.next();
      if (std::holds_alternative<wire::NeedMore>(e)) return;
      if (auto* c = std::get_if<wire::ContinueRequest>(&e)) {
        (void)c;
        out_ += wire::continuation("Ready for literal");
        continue;
      }
      if (auto* pe = std::get_if<wire::ParseError>(&e)) {
        parseError(*pe);
        continue;
      }
      if (auto* raw = std::get_if<wire::RawLine>(&e)) {
        rawLine(raw->text);
        continue;
      }
      ++stats_.commands;
      handle(std::get<wire::Command>(e));
    }
  }

  void produce(size_t budget) {
    // A step writes about budget octets: room for them at once, not by
    // doubling (takeOutput() leaves out_ without capacity).
    if (fetch_ && out_.capacity() < out_.size() + budget + 4096)
      out_.reserve(out_.size() + budget + 4096);
    if (fetch_) {
      if (fetch_->produce(out_, budget)) finishFetch();
    } else if (search_) {
      if (stepSearch(budget)) finishSearch();
    } else {
      return;
    }
    if (!busy()) run();
  }
  bool producing() const { return fetch_ != nullptr || search_ != nullptr; }
  bool busy() const { return producing() || waiting_; }

  void changed() {
    if (!box_) return;
    box_->drainChangeFd();
    if (idling_) report(true, false);
  }

  std::string out_;
  bool closing_ = false;
  bool idling_ = false;
  bool waiting_ = false;  // an APPEND's commit is with the runner
  struct SearchRun;
  std::unique_ptr<FetchJob> fetch_;
  std::unique_ptr<SearchRun> search_;
  std::unique_ptr<store::ImapMailbox> box_;
  uint64_t selections_ = 0;  // mailboxes opened and closed (selections())
  std::shared_ptr<HeaderCache> headerCache_;  // while box_ is open
  MailStats stats_;

 private:
  // ---- plumbing ----
  void ok(const wire::Command& c, std::string_view text, std::string_view code = "") {
    out_ += wire::tagged(c.tag, Cond::Ok, code, text);
  }
  void no(const wire::Command& c, std::string_view code, std::string_view text) {
    out_ += wire::tagged(c.tag, Cond::No, code, text);
  }
  void bad(std::string_view tag, std::string_view text, std::string_view code = "") {
    out_ += wire::tagged(tag, Cond::Bad, code, text);
    countBad();
  }
  void countBad() {
    if (++bad_ >= settings_.maxBadCommands) {
      out_ += wire::untagged(Cond::Bye, "", "Too many invalid commands");
      closing_ = true;
    }
  }
  // Storage failure -> NO with the code its errno suggests.
  void storeError(const wire::Command& c, const Error& e, std::string_view what) {
    std::string code = "SERVERBUG";
    std::string text = std::string(what) + " failed";
    switch (e.errnum) {
      case ENOENT: code = "NONEXISTENT"; text = "No such mailbox"; break;
      case EEXIST: code = "ALREADYEXISTS"; text = "Mailbox already exists"; break;
      case EINVAL: code = "CANNOT"; text = "Invalid mailbox name"; break;
      case EROFS: case EACCES: case EPERM: code = "NOPERM"; text = "Permission denied"; break;
      case EDQUOT: code = "OVERQUOTA"; text = "Quota exceeded"; break;
      case ENOSPC:
        // RFC 5530 has no code for a full disk; OVERQUOTA is what clients
        // show the user (as Dovecot answers). The admin must hear of it.
        code = "OVERQUOTA";
        text = "Not enough disk space";
        YLOG_WARN("imap: %s failed: user=%s id=%s error=%s", std::string(what).c_str(),
                  settings_.user.c_str(), settings_.logId.c_str(), e.message.c_str());
        break;
      default:
        YLOG_ERROR("imap: %s failed: user=%s id=%s error=%s", std::string(what).c_str(),
                   settings_.user.c_str(), settings_.logId.c_str(), e.message.c_str());
        break;
    }
    no(c, code, text);
  }
  bool utf8() const { return rev2_; }
  wire::MailboxNameRules rules() const {
    return wire::MailboxNameRules{.delimiter = store_.delimiter(), .utf8 = utf8()};
  }
  std::optional<std::string> mailboxName(const wire::Command& c, std::string_view w) {
    auto n = wire::mailboxFromWire(w, rules());
    if (!n) {
      bad(c.tag, "Invalid mailbox name");
      return std::nullopt;
    }
    return *n;
  }

  void parseError(const wire::ParseError& e) {
    spools_.clear();
    if (e.command == "APPEND" && e.tooBig) {
      out_ += wire::tagged(e.tag, Cond::No, "TOOBIG", e.text);
    } else {
      out_ += wire::tagged(e.tag, Cond::Bad, e.tooBig ? "TOOBIG" : "", e.text);
      countBad();
    }
    if (e.closeAdvised && !closing_) {
      out_ += wire::untagged(Cond::Bye, "", "Closing connection");
      closing_ = true;
    }
  }

  void rawLine(const std::string& line) {
    if (!idling_) return;  // line mode only in IDLE
    idling_ = false;
    parser_.setLineMode(false);
    if (wire::isIdleDone(line)) {
      report(true, false);
      out_ += wire::tagged(idleTag_, Cond::Ok, "", "IDLE terminated");
    } else {
      bad(idleTag_, "Expected DONE");
    }
  }

  // Untagged updates for changes made elsewhere (and by our own COPY into
  // the selected mailbox). allowExpunge false during FETCH, STORE, SEARCH.
  void report(bool allowExpunge, bool uidCommand) {
    if (!box_) return;
    auto ch = box_->sync(allowExpunge);
    if (!ch) {
      YLOG_WARN("imap: sync failed: user=%s id=%s error=%s", settings_.user.c_str(),
                settings_.logId.c_str(), ch.error().message.c_str());
      return;
    }
    for (uint32_t n : ch->expunged) out_ += wire::untaggedData(std::to_string(n) + " EXPUNGE");
    const auto& msgs = box_->messages();
    // EXPUNGE already lowers the count; EXISTS only for new messages.
    if (ch->existsChanged) {
      out_ += wire::untaggedData(std::to_string(msgs.size()) + " EXISTS");
      if (!rev2_) out_ += wire::untaggedData(std::to_string(recent()) + " RECENT");
    }
    for (size_t i : ch->flagsChanged) {
      if (i >= msgs.size()) continue;
      std::string d = std::to_string(i + 1) + " FETCH (";
      if (uidCommand || modSeqs()) d += "UID " + std::to_string(msgs.uid(i)) + " ";
      d += "FLAGS " + flagList(msgs[i], !rev2_);
      if (modSeqs()) d += " MODSEQ (" + std::to_string(msgs.brief(i).modSeq) + ")";
      d += ")";
      out_ += wire::untaggedData(d);
    }
  }
  // CONDSTORE is on and the selected mailbox keeps mod-sequences: untagged
  // FETCH responses for flag changes carry UID and MODSEQ (RFC 7162 §3.1).
  bool modSeqs() const { return condstore_ && box_ && box_->highestModSeq() > 0; }
  // A CONDSTORE-only item or modifier on a mailbox without mod-sequences
  // (NOMODSEQ) gets BAD (RFC 7162 §3.1.2.2); otherwise CONDSTORE is now on.
  bool needModSeqs(const wire::Command& c) {
    if (box_ && box_->highestModSeq() == 0) {
      bad(c.tag, "Mailbox does not support mod-sequences");
      return false;
    }
    condstore_ = true;
    return true;
  }
  uint32_t recent() const {
    return box_->recentCount();
  }

  // The view indexes a set names; false (after a BAD) when a sequence
  // number is out of range.
  bool resolve(const wire::Command& c, const wire::SequenceSet& set, bool uid,
               std::vector<size_t>& out) {
    const auto& msgs = box_->messages();
    wire::SequenceSet s = set;
    if (set.isSaved()) {
      // "$": the saved UIDs, as UIDs or mapped to sequence numbers.
      if (uid) {
        s = wire::SequenceSet::fromValues(saved_);
      } else {
        std::vector<uint32_t> uids(saved_);
        std::sort(uids.begin(), uids.end());
        std::vector<uint32_t> seqs;
        for (size_t i = 0; i < msgs.size(); ++i) {
          if (std::binary_search(uids.begin(), uids.end(), msgs.uid(i)))
            seqs.push_back(static_cast<uint32_t>(i + 1));
        }
        s = wire::SequenceSet::fromValues(seqs);
      }
    }
    out.clear();
    if (uid) {
      std::vector<uint32_t> uids;
      uids.reserve(msgs.size());
      for (size_t i = 0; i < msgs.size(); ++i) uids.push_back(msgs.uid(i));
      s.forEachIndex(uids, [&](size_t i) { out.push_back(i); });
      return true;
    }
    const uint32_t count = static_cast<uint32_t>(msgs.size());
    // A number past the count is an error (RFC 9051 §6.4.8), but a range
    // that ends in "*" is not: "1:*" in an empty mailbox names nothing.
    for (const auto& r : s.ranges()) {
      if (r.first == wire::kStar || r.last == wire::kStar) continue;
      if (r.first > count || r.last > count) {
        bad(c.tag, "Invalid message sequence number");
        return false;
      }
    }
    s.forEachNumber(count, [&](uint32_t n) { out.push_back(n - 1); });
    return true;
  }

  // ---- dispatch ----
  void handle(const wire::Command& c) {
    using K = wire::CommandKind;
    const bool selectedOnly = c.kind == K::Check || c.kind == K::Close ||
                              c.kind == K::Unselect || c.kind == K::Expunge ||
                              c.kind == K::Search || c.kind == K::Fetch ||
                              c.kind == K::Store || c.kind == K::Copy || c.kind == K::Move;
    if (selectedOnly && !box_) {
      bad(c.tag, "No mailbox selected");
      return;
    }
    switch (c.kind) {
      case K::Capability:
        out_ += wire::untaggedData(std::string("CAPABILITY ") + kCapabilities);
        finish(c, "CAPABILITY completed");
        break;
      case K::Noop:
        finish(c, "NOOP completed");
        break;
      case K::Check:
        finish(c, "CHECK completed");
        break;
      case K::Logout:
        out_ += wire::untagged(Cond::Bye, "", "Logging out");
        ok(c, "LOGOUT completed");
        closing_ = true;
        break;
      case K::StartTls:
      case K::Authenticate:
      case K::Login:
        bad(c.tag, "Already authenticated");
        break;
      case K::Enable: enable(c); break;
      case K::Id: id(c); break;
      case K::Select:
      case K::Examine: select(c); break;
      case K::Create: create(c); break;
      case K::Delete: remove(c); break;
      case K::Rename: rename(c); break;
      case K::Subscribe:
      case K::Unsubscribe: subscribe(c); break;
      case K::List:
      case K::Lsub: list(c); break;
      case K::Namespace:
        out_ += wire::untaggedData("NAMESPACE ((\"\" " + delimiterString() + ")) NIL NIL");
        finish(c, "NAMESPACE completed");
        break;
      case K::Status: status(c); break;
      case K::Append: append(c); break;
      case K::Close:
      case K::Unselect: close(c); break;
      case K::Expunge: expunge(c); break;
      case K::Search: search(c); break;
      case K::Fetch: fetch(c); break;
      case K::Store: storeFlags(c); break;
      case K::Copy:
      case K::Move: copy(c); break;
      case K::Idle:
        report(true, false);
        idling_ = true;
        idleTag_ = c.tag;
        parser_.setLineMode(true);
        out_ += wire::continuation("idling");
        break;
    }
  }

  // Updates, then the tagged OK.
  void finish(const wire::Command& c, std::string_view text, std::string_view code = "") {
    const bool noExpunge = c.kind == wire::CommandKind::Fetch ||
                           c.kind == wire::CommandKind::Store ||
                           c.kind == wire::CommandKind::Search;
    report(!noExpunge, c.uid);
    ok(c, text, code);
  }

  std::string delimiterString() const {
    std::string d;
    wire::appendQuoted(d, std::string(1, store_.delimiter()));
    return d;
  }

  void enable(const wire::Command& c) {
    const auto& a = std::get<wire::EnableArgs>(c.args);
    std::string enabled;
    for (const auto& cap : a.capabilities) {
      if (cap == "IMAP4REV2" && !rev2_) {
        rev2_ = true;
        parser_.setUtf8(true);
        enabled += " IMAP4rev2";
      } else if (cap == "CONDSTORE" && !condstore_) {
        condstore_ = true;
        enabled += " CONDSTORE";
      }
    }
    out_ += wire::untaggedData("ENABLED" + enabled);
    ok(c, "ENABLE completed");
  }

  void id(const wire::Command& c) {
    out_ += wire::untaggedData("ID (\"name\" \"yubin\")");
    ok(c, "ID completed");
  }

  void closeMailbox() {
    ++selections_;
    box_.reset();
    headerCache_.reset();
    cache_.clear();
    saved_.clear();
  }

  void select(const wire::Command& c) {
    const auto& a = std::get<wire::SelectArgs>(c.args);
    const bool readOnly = c.kind == wire::CommandKind::Examine;
    auto name = wire::mailboxFromWire(a.mailbox, rules());
    if (box_) {
      closeMailbox();
      if (rev2_) out_ += wire::untagged(Cond::Ok, "CLOSED", "Previous mailbox closed");
    }
    if (!name) {
      bad(c.tag, "Invalid mailbox name");
      return;
    }
    auto box = store_.select(*name, readOnly);
    if (!box) {
      storeError(c, box.error(), "SELECT");
      return;
    }
    box_ = std::move(*box);
    ++selections_;
    // SEARCH's header fields, shared with the process's other sessions of
    // this folder (header_cache.hpp).
    headerCache_ = processHeaderCaches().forFolder(settings_.user, *name, box_->uidValidity());
    if (a.condstore) condstore_ = true;  // SELECT/EXAMINE (CONDSTORE), RFC 7162 §3.1.8
    const auto& msgs = box_->messages();
    std::vector<std::string> flags = {"\\Answered", "\\Flagged", "\\Deleted", "\\Seen",
                                      "\\Draft"};
    for (const auto& k : box_->keywords()) flags.push_back(k);
    std::string fl;
    wire::appendFlagList(fl, flags);
    out_ += wire::untaggedData("FLAGS " + fl);
    out_ += wire::untaggedData(std::to_string(msgs.size()) + " EXISTS");
    if (!rev2_) {
      out_ += wire::untaggedData(std::to_string(recent()) + " RECENT");
      for (size_t i = 0; i < msgs.size(); ++i) {
        if (!(msgs.brief(i).system & store::kFlagSeen)) {
          out_ += wire::untagged(Cond::Ok, wire::codeNumber("UNSEEN", i + 1),
                                 "First unseen message");
          break;
        }
      }
    }
    if (box_->readOnly()) {
      out_ += wire::untagged(Cond::Ok, "PERMANENTFLAGS ()", "No permanent flags permitted");
    } else {
      out_ += wire::untagged(Cond::Ok,
                             wire::codePermanentFlags(flags, box_->canCreateKeywords()),
                             "Flags permitted");
    }
    out_ += wire::untagged(Cond::Ok, wire::codeNumber("UIDVALIDITY", box_->uidValidity()),
                           "UIDs valid");
    out_ += wire::untagged(Cond::Ok, wire::codeNumber("UIDNEXT", box_->uidNext()),
                           "Predicted next UID");
    // RFC 7162 §3.1.2.1: with every SELECT and EXAMINE.
    if (box_->highestModSeq() > 0) {
      out_ += wire::untagged(Cond::Ok, wire::codeNumber("HIGHESTMODSEQ", box_->highestModSeq()),
                             "Highest");
    } else {
      out_ += wire::untagged(Cond::Ok, "NOMODSEQ", "No mod-sequences in this mailbox");
    }
    if (rev2_) {
      std::string l = "LIST () " + delimiterString() + " ";
      wire::appendMailbox(l, *name, true);
      out_ += wire::untaggedData(l);
    }
    ok(c, readOnly ? "EXAMINE completed" : "SELECT completed",
       box_->readOnly() ? "READ-ONLY" : "READ-WRITE");
  }

  void create(const wire::Command& c) {
    const auto& a = std::get<wire::CreateArgs>(c.args);
    std::string w = a.mailbox;
    // A trailing delimiter says children will follow (RFC 3501 §6.3.3).
    if (w.size() > 1 && w.back() == store_.delimiter()) w.pop_back();
    auto name = mailboxName(c, w);
    if (!name) return;
    if (*name == "INBOX") {
      no(c, "ALREADYEXISTS", "INBOX always exists");
      return;
    }
    std::string use;
    if (a.specialUse.size() > 1) {
      no(c, "USEATTR", "One special-use attribute per mailbox");
      return;
    }
    if (a.specialUse.size() == 1) {
      use = wire::canonicalFlag(a.specialUse[0]);
      static const char* const kUses[] = {"\\Sent", "\\Drafts", "\\Trash", "\\Junk",
                                          "\\Archive"};
      bool known = false;
      for (const char* u : kUses) {
        if (lower(use) == lower(u)) {
          use = u;
          known = true;
        }
      }
      if (!known) {
        no(c, "USEATTR", "Unsupported special-use attribute");
        return;
      }
    }
    auto st = store_.create(*name, use);
    if (!st) {
      storeError(c, st.error(), "CREATE");
      return;
    }
    finish(c, "CREATE completed");
  }

  void remove(const wire::Command& c) {
    const auto& a = std::get<wire::MailboxArgs>(c.args);
    auto name = mailboxName(c, a.mailbox);
    if (!name) return;
    if (*name == "INBOX") {
      no(c, "CANNOT", "INBOX cannot be deleted");
      return;
    }
    auto st = store_.remove(*name);
    if (!st) {
      storeError(c, st.error(), "DELETE");
      return;
    }
    finish(c, "DELETE completed");
  }

  void rename(const wire::Command& c) {
    const auto& a = std::get<wire::RenameArgs>(c.args);
    auto from = mailboxName(c, a.from);
    if (!from) return;
    auto to = mailboxName(c, a.to);
    if (!to) return;
    if (*to == "INBOX") {
      no(c, "ALREADYEXISTS", "INBOX always exists");
      return;
    }
    auto st = store_.rename(*from, *to);
    if (!st) {
      storeError(c, st.error(), "RENAME");
      return;
    }
    finish(c, "RENAME completed");
  }

  void subscribe(const wire::Command& c) {
    const auto& a = std::get<wire::MailboxArgs>(c.args);
    auto name = mailboxName(c, a.mailbox);
    if (!name) return;
    const bool on = c.kind == wire::CommandKind::Subscribe;
    auto st = store_.subscribe(*name, on);
    if (!st) {
      storeError(c, st.error(), on ? "SUBSCRIBE" : "UNSUBSCRIBE");
      return;
    }
    finish(c, on ? "SUBSCRIBE completed" : "UNSUBSCRIBE completed");
  }

  // "(MESSAGES 3 UIDNEXT 4)" for the items asked.
  static std::string statusList(const store::MailboxStatus& st,
                                const std::vector<wire::StatusItem>& items) {
    std::string r = "(";
    bool first = true;
    for (auto item : items) {
      uint64_t v = 0;
      switch (item) {
        case wire::StatusItem::Messages: v = st.messages; break;
        case wire::StatusItem::Recent: v = st.recent; break;
        case wire::StatusItem::UidNext: v = st.uidNext; break;
        case wire::StatusItem::UidValidity: v = st.uidValidity; break;
        case wire::StatusItem::Unseen: v = st.unseen; break;
        case wire::StatusItem::Deleted: v = st.deleted; break;
        case wire::StatusItem::Size: v = st.size; break;
        case wire::StatusItem::HighestModSeq: v = st.highestModSeq; break;
      }
      if (!first) r += ' ';
      first = false;
      r += wire::statusItemName(item);
      r += ' ';
      r += std::to_string(v);
    }
    r += ')';
    return r;
  }

  void status(const wire::Command& c) {
    const auto& a = std::get<wire::StatusArgs>(c.args);
    auto name = mailboxName(c, a.mailbox);
    if (!name) return;
    auto st = store_.status(*name);
    if (!st) {
      storeError(c, st.error(), "STATUS");
      return;
    }
    for (auto item : a.items)
      if (item == wire::StatusItem::HighestModSeq) condstore_ = true;  // RFC 7162 §3.1
    std::string d = "STATUS ";
    wire::appendMailbox(d, *name, utf8());
    d += ' ';
    d += statusList(*st, a.items);
    out_ += wire::untaggedData(d);
    finish(c, "STATUS completed");
  }

  void list(const wire::Command& c) {
    const auto& a = std::get<wire::ListArgs>(c.args);
    const bool lsub = c.kind == wire::CommandKind::Lsub;
    const char delim = store_.delimiter();
    auto ref = wire::patternFromWire(a.reference, rules());
    if (!ref) {
      bad(c.tag, "Invalid reference");
      return;
    }
    std::vector<std::string> patterns;
    for (const auto& p : a.patterns) {
      auto pat = wire::patternFromWire(p, rules());
      if (!pat) {
        bad(c.tag, "Invalid mailbox pattern");
        return;
      }
      patterns.push_back(*pat);
    }
    const std::string verb = lsub ? "LSUB " : "LIST ";
    for (auto item : a.statusItems)  // LIST-STATUS with HIGHESTMODSEQ, as STATUS (RFC 7162 §3.1)
      if (a.retStatus && item == wire::StatusItem::HighestModSeq) condstore_ = true;
    // The empty pattern asks for the delimiter and the root.
    if (!a.extended() && patterns.size() == 1 && patterns[0].empty()) {
      out_ += wire::untaggedData(verb + "(\\Noselect) " + delimiterString() + " \"\"");
      finish(c, lsub ? "LSUB completed" : "LIST completed");
      return;
    }
    auto entries = store_.list();
    if (!entries) {
      storeError(c, entries.error(), "LIST");
      return;
    }
    auto subs = store_.subscriptions();
    if (!subs) {
      storeError(c, subs.error(), "LIST");
      return;
    }
    std::vector<std::string> subscribed = *subs;
    std::sort(subscribed.begin(), subscribed.end());
    auto isSubscribed = [&](const std::string& n) {
      return std::binary_search(subscribed.begin(), subscribed.end(), n);
    };
    auto matches = [&](const std::string& name) {
      for (const auto& p : patterns) {
        std::string full = *ref + p;
        if (wire::isInbox(full.substr(0, 5)) && (full.size() == 5 || full[5] == delim))
          full.replace(0, 5, "INBOX");
        if (wire::matchPattern(full, name, delim)) return true;
      }
      return false;
    };
    const bool subscribedOnly = lsub || a.selSubscribed;
    const bool showSubscribed = !lsub && (a.retSubscribed || a.selSubscribed);
    struct Line {
      std::string name;
      std::vector<std::string> attrs;
      bool selectable;
      bool childInfo = false;  // RECURSIVEMATCH: a subscribed descendant (RFC 5258 §3.5)
    };
    const bool recursive = a.selSubscribed && a.selRecursiveMatch && !lsub;
    auto subscribedChild = [&](const std::string& n) {
      const std::string prefix = n + delim;
      auto it = std::lower_bound(subscribed.begin(), subscribed.end(), prefix);
      return it != subscribed.end() && it->compare(0, prefix.size(), prefix) == 0;
    };
    std::vector<Line> lines;
    std::vector<std::string> seen;
    for (const auto& e : *entries) {
      if (!matches(e.name)) continue;
      const bool sub = isSubscribed(e.name);
      const bool childInfo = recursive && subscribedChild(e.name);
      if (subscribedOnly && !sub && !childInfo) continue;
      if (a.selSpecialUse && e.specialUse.empty()) continue;
      Line l{e.name, {}, !e.noSelect};
      if (e.noSelect) l.attrs.emplace_back("\\Noselect");
      if (!lsub) l.attrs.emplace_back(e.hasChildren ? "\\HasChildren" : "\\HasNoChildren");
      if (showSubscribed && sub) l.attrs.emplace_back("\\Subscribed");
      if (!lsub && !e.specialUse.empty()) l.attrs.push_back(e.specialUse);
      l.childInfo = childInfo;
      lines.push_back(std::move(l));
      seen.push_back(e.name);
    }
    if (subscribedOnly && !a.selSpecialUse) {
      // Subscribed names with no mailbox behind them.
      std::sort(seen.begin(), seen.end());
      for (const auto& n : subscribed) {
        if (std::binary_search(seen.begin(), seen.end(), n) || !matches(n)) continue;
        Line l{n, {}, false};
        if (lsub) {
          l.attrs.emplace_back("\\Noselect");
        } else {
          l.attrs.emplace_back("\\NonExistent");
          l.attrs.emplace_back("\\Subscribed");
        }
        lines.push_back(std::move(l));
      }
    }
    for (const auto& l : lines) {
      std::string d = verb + "(";
      for (size_t i = 0; i < l.attrs.size(); ++i) {
        if (i) d += ' ';
        d += l.attrs[i];
      }
      d += ") " + delimiterString() + " ";
      wire::appendMailbox(d, l.name, utf8());
      if (l.childInfo) d += " (\"CHILDINFO\" (\"SUBSCRIBED\"))";
      out_ += wire::untaggedData(d);
      if (a.retStatus && l.selectable && !lsub) {
        auto st = store_.status(l.name);
        if (st) {
          std::string s = "STATUS ";
          wire::appendMailbox(s, l.name, utf8());
          s += ' ';
          s += statusList(*st, a.statusItems);
          out_ += wire::untaggedData(s);
        }
      }
    }
    finish(c, lsub ? "LSUB completed" : "LIST completed");
  }

  // Flags from the client -> store::Flags; false (after a BAD) on an
  // invalid flag.
  bool parseFlags(const wire::Command& c, const std::vector<std::string>& in, store::Flags& out) {
    for (const auto& f : in) {
      const std::string canon = wire::canonicalFlag(f);
      if (auto bit = systemFlagBit(canon)) {
        out.system |= *bit;
      } else if (canon == "\\Recent") {
        continue;  // cannot be set by a client; ignored
      } else if (!canon.empty() && canon[0] == '\\') {
        bad(c.tag, "Unknown system flag");
        return false;
      } else if (wire::isValidKeyword(canon)) {
        bool dup = false;
        for (const auto& k : out.keywords) dup = dup || lower(k) == lower(canon);
        if (!dup) out.keywords.push_back(canon);
      } else {
        bad(c.tag, "Invalid flag");
        return false;
      }
    }
    return true;
  }

  void append(const wire::Command& c) {
    const auto& a = std::get<wire::AppendArgs>(c.args);
    std::vector<Spool> spools = std::move(spools_);
    spools_.clear();
    auto name = mailboxName(c, a.mailbox);
    if (!name) return;
    if (spools.size() != a.messages.size()) {
      no(c, "SERVERBUG", "APPEND lost its message");
      return;
    }
    std::vector<store::Flags> flags(a.messages.size());
    std::vector<int64_t> dates(a.messages.size(), 0);
    for (size_t i = 0; i < a.messages.size(); ++i) {
      if (!parseFlags(c, a.messages[i].flags, flags[i])) return;
      if (a.messages[i].date) dates[i] = wire::dateTimeToUnix(*a.messages[i].date);
      if (spools[i].failed()) {
        no(c, "SERVERBUG", "Could not keep the message");
        return;
      }
    }
    // Every message is written first, then all are committed, one after
    // the other (commitAppends).
    auto job = std::make_unique<AppendRun>();
    for (size_t i = 0; i < spools.size(); ++i) {
      auto tx = store_.beginAppend(*name);
      if (!tx) {
        if (tx.error().errnum == ENOENT) {
          no(c, "TRYCREATE", "No such mailbox");
        } else {
          storeError(c, tx.error(), "APPEND");
        }
        return;
      }
      auto st = spools[i].copyTo(**tx);
      if (!st) {
        storeError(c, st.error(), "APPEND");
        return;
      }
      job->txs.push_back(std::move(*tx));
    }
    job->cmd = c;
    job->cmd.args = std::monostate{};
    job->flags = std::move(flags);
    job->dates = std::move(dates);
    append_ = std::move(job);
    commitAppends();
  }

  // An APPEND's messages being committed.
  struct AppendRun {
    wire::Command cmd;  // without its arguments
    std::vector<std::shared_ptr<store::AppendTransaction>> txs;
    std::vector<store::Flags> flags;
    std::vector<int64_t> dates;
    size_t next = 0;       // the message to commit next
    bool pending = false;  // txs[next - 1]'s commit has not called back yet
    store::AppendedUids all;
  };

  // Commits the messages from append_->next on, each once the one before
  // is done; returns when all are (the tagged reply is queued) or when one
  // waits for the runner (waiting_; committed() goes on from there).
  void commitAppends() {
    while (append_) {
      AppendRun& a = *append_;
      if (a.next == a.txs.size()) {
        finish(a.cmd, "APPEND completed", wire::codeAppendUid(a.all.uidValidity, a.all.uids));
        append_.reset();
        return;
      }
      const size_t i = a.next++;
      a.pending = true;
      store::commitAppend(std::move(a.txs[i]), a.flags[i], a.dates[i], offload_.runner,
                          [this, alive = alive_](Result<store::AppendedUids> r) {
                            if (*alive) committed(std::move(r));
                          });
      if (append_ && append_->pending) {
        waiting_ = true;
        return;
      }
    }
  }

  // One message's commit ended: on the spot (inside commitAppends) or
  // later, from the runner.
  void committed(Result<store::AppendedUids> r) {
    append_->pending = false;
    if (!r) {
      // What is not committed yet is dropped (its temporary file removed).
      storeError(append_->cmd, r.error(), "APPEND");
      append_.reset();
    } else {
      append_->all.uidValidity = r->uidValidity;
      append_->all.uids.insert(append_->all.uids.end(), r->uids.begin(), r->uids.end());
      ++stats_.appended;
    }
    if (!waiting_) return;  // commitAppends goes on
    waiting_ = false;
    commitAppends();
    if (waiting_) return;
    run();
    if (offload_.resumed) offload_.resumed();
  }

  void close(const wire::Command& c) {
    if (c.kind == wire::CommandKind::Close && !box_->readOnly()) {
      std::vector<size_t> del;
      const auto& msgs = box_->messages();
      for (size_t i = 0; i < msgs.size(); ++i) {
        if ((msgs.brief(i).system & store::kFlagDeleted) && !msgs.brief(i).expunged) del.push_back(i);
      }
      if (!del.empty()) {
        auto st = box_->expunge(del);
        if (st) stats_.expunged += del.size();
      }
    }
    closeMailbox();
    ok(c, c.kind == wire::CommandKind::Close ? "CLOSE completed" : "UNSELECT completed");
  }

  void expunge(const wire::Command& c) {
    if (box_->readOnly()) {
      no(c, "READ-ONLY", "Mailbox is read-only");
      return;
    }
    std::vector<size_t> inSet;
    if (c.uid) {
      if (!resolve(c, std::get<wire::ExpungeArgs>(c.args).set, true, inSet)) return;
    }
    std::vector<size_t> del;
    const auto& msgs = box_->messages();
    auto consider = [&](size_t i) {
      const store::MessageBrief b = msgs.brief(i);  // one lookup: EXPUNGE walks the folder
      if ((b.system & store::kFlagDeleted) && !b.expunged) del.push_back(i);
    };
    if (c.uid) {
      for (size_t i : inSet) consider(i);
    } else {
      for (size_t i = 0; i < msgs.size(); ++i) consider(i);
    }
    if (!del.empty()) {
      auto st = box_->expunge(del);
      if (!st) {
        storeError(c, st.error(), "EXPUNGE");
        return;
      }
      stats_.expunged += del.size();
    }
    finish(c, "EXPUNGE completed");
  }

  void storeFlags(const wire::Command& c) {
    const auto& a = std::get<wire::StoreArgs>(c.args);
    if (a.unchangedSince && !needModSeqs(c)) return;
    std::vector<size_t> idx;
    if (!resolve(c, a.set, c.uid, idx)) return;
    store::Flags flags;
    if (!parseFlags(c, a.flags, flags)) return;
    if (box_->readOnly()) {
      no(c, "READ-ONLY", "Mailbox is read-only");
      return;
    }
    const auto& msgs = box_->messages();
    std::vector<size_t> live;
    for (size_t i : idx) {
      if (!msgs.brief(i).expunged) live.push_back(i);
    }
    if (!flags.keywords.empty() && !box_->canCreateKeywords() &&
        a.op != wire::StoreArgs::Op::Remove) {
      auto known = box_->keywords();
      for (const auto& k : flags.keywords) {
        bool found = false;
        for (const auto& kk : known) found = found || lower(kk) == lower(k);
        if (!found) {
          no(c, "LIMIT", "Too many keywords in this mailbox");
          return;
        }
      }
    }
    std::vector<size_t> failed;  // UNCHANGEDSINCE test failed (RFC 7162 §3.1.3)
    std::vector<uint64_t> before;
    for (size_t i : live) before.push_back(msgs.brief(i).modSeq);
    if (!live.empty()) {
      store::FlagOp op = a.op == wire::StoreArgs::Op::Replace ? store::FlagOp::Replace
                         : a.op == wire::StoreArgs::Op::Add   ? store::FlagOp::Add
                                                              : store::FlagOp::Remove;
      if (a.unchangedSince) {
        auto r = box_->setFlagsUnchangedSince(live, op, flags, *a.unchangedSince);
        if (!r) {
          storeError(c, r.error(), "STORE");
          return;
        }
        failed = std::move(*r);
      } else {
        auto st = box_->setFlags(live, op, flags);
        if (!st) {
          storeError(c, st.error(), "STORE");
          return;
        }
      }
    }
    const bool withModSeq = modSeqs();
    for (size_t k = 0; k < live.size(); ++k) {
      const size_t i = live[k];
      if (std::binary_search(failed.begin(), failed.end(), i)) continue;
      // .SILENT: no FLAGS, but with CONDSTORE the new MODSEQ of a message
      // this STORE changed is still sent.
      const bool changed = msgs.brief(i).modSeq != before[k];
      if (a.silent && !(withModSeq && changed)) continue;
      std::string d = std::to_string(i + 1) + " FETCH (";
      if (c.uid || withModSeq) d += "UID " + std::to_string(msgs.uid(i)) + " ";
      if (!a.silent) d += "FLAGS " + flagList(msgs[i], !rev2_);
      if (withModSeq) {
        if (!a.silent) d += ' ';
        d += "MODSEQ (" + std::to_string(msgs.brief(i).modSeq) + ")";
      }
      d += ")";
      out_ += wire::untaggedData(d);
    }
    std::string code;
    if (!failed.empty()) {
      std::vector<uint32_t> numbers;
      for (size_t i : failed)
        numbers.push_back(c.uid ? msgs.uid(i) : static_cast<uint32_t>(i + 1));
      std::sort(numbers.begin(), numbers.end());
      code = wire::codeModified(numbers);
    }
    if (live.size() != idx.size()) {
      report(false, c.uid);
      no(c, "EXPUNGEISSUED", "Some messages were expunged");
      return;
    }
    if (!code.empty()) {
      report(false, c.uid);
      ok(c, "Conditional STORE failed", code);
      return;
    }
    finish(c, "STORE completed");
  }

  void copy(const wire::Command& c) {
    const auto& a = std::get<wire::CopyArgs>(c.args);
    const bool move = c.kind == wire::CommandKind::Move;
    std::vector<size_t> idx;
    if (!resolve(c, a.set, c.uid, idx)) return;
    auto dest = mailboxName(c, a.mailbox);
    if (!dest) return;
    if (move && box_->readOnly()) {
      no(c, "READ-ONLY", "Mailbox is read-only");
      return;
    }
    const auto& msgs = box_->messages();
    std::vector<size_t> live;
    for (size_t i : idx) {
      if (!msgs.brief(i).expunged) live.push_back(i);
    }
    if (live.size() != idx.size()) {
      no(c, "EXPUNGEISSUED", "Some messages were expunged");
      return;
    }
    std::string code;
    if (!live.empty()) {
      auto r = box_->copy(live, *dest, move);
      if (!r) {
        if (r.error().errnum == ENOENT) {
          no(c, "TRYCREATE", "No such mailbox");
        } else {
          storeError(c, r.error(), move ? "MOVE" : "COPY");
        }
        return;
      }
      if (!r->sourceUids.empty()) code = wire::codeCopyUid(r->uidValidity, r->sourceUids, r->destUids);
      if (move) stats_.expunged += live.size();
    } else {
      // Nothing matched (a UID set naming no message): not an error.
    }
    if (move) {
      if (!code.empty()) out_ += wire::untagged(Cond::Ok, code, "Moved");
      finish(c, "MOVE completed");
    } else {
      finish(c, "COPY completed", code);
    }
  }

  // ---- SEARCH ----
  class LazyMessage : public SearchMessage {
   public:
    LazyMessage(store::ImapMailbox& box, size_t index, HeaderCache* cache)
        : box_(box), index_(index), cache_(cache) {}
    HeaderCache* headerCache() override { return cache_; }
    uint32_t seq() const override { return static_cast<uint32_t>(index_ + 1); }
    uint32_t uid() const override { return box_.uidAt(index_); }
    const store::MessageInfo& info() const override {
      if (!info_) info_ = box_.messageAt(index_);
      return *info_;
    }
    Result<std::string_view> header() override {
      if (!whole_) {
        auto r = load(true);
        if (!r) return r.error();
      }
      size_t end = data_.find("\n\n");
      size_t end2 = data_.find("\r\n\r\n");
      size_t h = data_.size();
      if (end != std::string::npos) h = end + 2;
      if (end2 != std::string::npos && end2 + 4 < h) h = end2 + 4;
      return std::string_view(data_).substr(0, h);
    }
    Result<std::string_view> whole() override {
      if (!whole_) {
        data_.clear();
        auto r = load(false);
        if (!r) return r.error();
        whole_ = true;
      }
      return std::string_view(data_);
    }

   private:
    // headerOnly: stops once the empty line was read.
    Status load(bool headerOnly) {
      if (loadedHeader_ && headerOnly) return {};
      data_.clear();
      auto reader = box_.open(index_);
      if (!reader) return reader.error();
      for (;;) {
        auto n = (*reader)->read(data_, kCopyPiece);
        if (!n) return n.error();
        if (*n == 0) break;
        bytesRead_ += *n;
        if (data_.size() > kMaxSearchRead) break;
        if (headerOnly && (data_.find("\n\n") != std::string::npos ||
                           data_.find("\r\n\r\n") != std::string::npos))
          break;
      }
      if (headerOnly) loadedHeader_ = true;
      return {};
    }
   public:
    uint64_t bytesRead() const { return bytesRead_; }

   private:
    store::ImapMailbox& box_;
    size_t index_;
    HeaderCache* cache_;  // null: every header is read from the message
    uint64_t bytesRead_ = 0;
    std::string data_;
    mutable std::optional<store::MessageInfo> info_;  // read on first need
    bool loadedHeader_ = false;
    bool whole_ = false;
  };

 public:
  // A SEARCH runs in steps like a FETCH (produce()), so a BODY search
  // over a large mailbox does not hold the mail process for long.
  struct SearchRun {
    wire::Command cmd;
    SearchContext ctx;
    size_t next = 0;                // index of the next message to look at
    std::vector<uint32_t> results;  // seq numbers or UIDs, ascending
    std::vector<uint32_t> uids;     // of the matches, for SAVE
    std::vector<uint64_t> modSeqs;  // of the matches, for the MODSEQ result
    bool failed = false;
  };

  void search(const wire::Command& c) {
    const auto& a = std::get<wire::SearchArgs>(c.args);
    if (usesModSeq(a.key) && !needModSeqs(c)) return;
    auto cs = checkCharset(a.charset);
    if (!cs) {
      no(c, "BADCHARSET (UTF-8 US-ASCII)", "Unsupported charset");
      return;
    }
    const auto& msgs = box_->messages();
    search_ = std::make_unique<SearchRun>();
    search_->cmd = c;
    search_->ctx.maxSeq = static_cast<uint32_t>(msgs.size());
    search_->ctx.maxUid = msgs.empty() ? 0 : msgs.uid(msgs.size() - 1);
    search_->ctx.now = static_cast<int64_t>(::time(nullptr));
    search_->ctx.utf8 = utf8();
    if (stepSearch(kFirstBudget)) finishSearch();
  }

 public:
  // Looks at messages until about `budget` octets were read (a message
  // decided by its flags counts 256); true when the search is done.
  bool stepSearch(size_t budget) {
    SearchRun& run = *search_;
    const auto& a = std::get<wire::SearchArgs>(run.cmd.args);
    const auto& msgs = box_->messages();
    uint64_t spent = 0;
    while (run.next < msgs.size() && spent < budget) {
      const size_t i = run.next++;
      LazyMessage m(*box_, i, headerCache_.get());
      auto r = matches(a.key, m, run.ctx, &saved_);
      spent += 256 + m.bytesRead();
      if (!r) {
        if (msgs.brief(i).expunged) continue;
        run.failed = true;
        return true;
      }
      if (!*r) continue;
      run.results.push_back(run.cmd.uid ? msgs.uid(i) : static_cast<uint32_t>(i + 1));
      run.uids.push_back(msgs.uid(i));
      run.modSeqs.push_back(msgs.brief(i).modSeq);
    }
    return run.next >= msgs.size();
  }

  void finishSearch() {
    std::unique_ptr<SearchRun> run = std::move(search_);
    const wire::Command& c = run->cmd;
    const auto& a = std::get<wire::SearchArgs>(c.args);
    if (run->failed) {
      no(c, "SERVERBUG", "SEARCH could not read a message");
      return;
    }
    const auto& results = run->results;
    const auto& uids = run->uids;
    // RFC 7162 §3.1.5: a search with MODSEQ reports the highest mod-sequence
    // of the messages returned (of MIN and MAX only when those alone are).
    std::optional<uint64_t> modSeq;
    if (usesModSeq(a.key) && !results.empty()) {
      const uint8_t opts =
          a.returnOptions == 0 ? static_cast<uint8_t>(wire::kReturnAll) : a.returnOptions;
      uint64_t m = 0;
      if ((a.esearch || rev2_) && !(opts & (wire::kReturnAll | wire::kReturnCount))) {
        if (opts & wire::kReturnMin) m = std::max(m, run->modSeqs.front());
        if (opts & wire::kReturnMax) m = std::max(m, run->modSeqs.back());
      } else {
        for (uint64_t v : run->modSeqs) m = std::max(m, v);
      }
      if (m > 0) modSeq = m;
    }
    // IMAP4rev2 answers every SEARCH with ESEARCH (RFC 9051 §7.3.4).
    if (a.esearch || rev2_) {
      uint8_t opts = a.returnOptions;
      if (opts == 0) opts = wire::kReturnAll;  // "RETURN ()" and rev2's plain SEARCH
      if (opts & wire::kReturnSave) {
        // RFC 5182 §2.1: with MIN or MAX (and not ALL/COUNT) only those are saved.
        if ((opts & (wire::kReturnMin | wire::kReturnMax)) &&
            !(opts & (wire::kReturnAll | wire::kReturnCount)) && !uids.empty()) {
          std::vector<uint32_t> sv;
          if (opts & wire::kReturnMin) sv.push_back(uids.front());
          if ((opts & wire::kReturnMax) && uids.size() > 1) sv.push_back(uids.back());
          saved_ = sv;
        } else {
          saved_ = uids;
        }
      }
      std::string d = wire::esearchData(c.tag, c.uid, opts, results, modSeq);
      if (!d.empty()) out_ += wire::untaggedData(d);
    } else {
      out_ += wire::untaggedData(wire::searchData(results, modSeq));
    }
    finish(c, "SEARCH completed");
  }

 private:
  // ---- FETCH ----
  void fetch(const wire::Command& c) {
    const auto& a = std::get<wire::FetchArgs>(c.args);
    using K = wire::FetchAtt::Kind;
    if (a.vanished) {  // QRESYNC (RFC 7162 §3.2.6), which is not offered
      bad(c.tag, "VANISHED needs QRESYNC");
      return;
    }
    bool wantsModSeq = a.changedSince.has_value();
    for (const auto& att : a.atts) wantsModSeq = wantsModSeq || att.kind == K::ModSeq;
    if (wantsModSeq && !needModSeqs(c)) return;
    std::vector<size_t> idx;
    if (!resolve(c, a.set, c.uid, idx)) return;
    std::vector<wire::FetchAtt> atts = a.atts;
    if (a.changedSince) {
      // CHANGEDSINCE: only messages with a greater mod-sequence, and MODSEQ
      // is implied (RFC 7162 §3.1.4.1).
      const auto& msgs = box_->messages();
      idx.erase(std::remove_if(idx.begin(), idx.end(),
                               [&](size_t i) { return msgs.brief(i).modSeq <= *a.changedSince; }),
                idx.end());
      bool has = false;
      for (const auto& att : atts) has = has || att.kind == K::ModSeq;
      if (!has) atts.push_back(wire::FetchAtt{K::ModSeq, false, {}, {}});
    }
    if (c.uid) {
      bool has = false;
      for (const auto& att : atts) has = has || att.kind == K::Uid;
      if (!has) atts.insert(atts.begin(), wire::FetchAtt{K::Uid, false, {}, {}});
    }
    // A body fetch without PEEK sets \Seen first (RFC 3501 §6.4.5).
    bool setsSeen = false;
    for (const auto& att : atts) {
      if (((att.kind == K::BodySection || att.kind == K::Binary) && !att.peek) ||
          att.kind == K::Rfc822 || att.kind == K::Rfc822Text)
        setsSeen = true;
    }
    std::vector<bool> addFlags(idx.size(), false);
    if (setsSeen && !box_->readOnly()) {
      std::vector<size_t> unseen;
      const auto& msgs = box_->messages();
      for (size_t k = 0; k < idx.size(); ++k) {
        const store::MessageBrief m = msgs.brief(idx[k]);
        if (!m.expunged && !(m.system & store::kFlagSeen)) {
          unseen.push_back(idx[k]);
          addFlags[k] = true;
        }
      }
      if (!unseen.empty()) {
        store::Flags seen;
        seen.system = store::kFlagSeen;
        auto st = box_->setFlags(unseen, store::FlagOp::Add, seen);
        if (!st) addFlags.assign(idx.size(), false);
      }
    }
    fetch_ = std::make_unique<FetchJob>(*box_, cache_, std::move(idx), std::move(atts),
                                        std::move(addFlags), utf8());
    fetch_->setCondstore(modSeqs());
    fetch_->setHeaderCache(headerCache_.get());
    fetchTag_ = c;
    fetchTag_.args = std::monostate{};
    if (fetch_->produce(out_, kFirstBudget)) finishFetch();
  }

  void finishFetch() {
    stats_.fetchedBytes += fetch_->bodyBytes();
    const bool missed = fetch_->missed() > 0;
    const bool cte = fetch_->unknownCte();
    fetch_.reset();
    if (cte) {
      report(false, fetchTag_.uid);
      no(fetchTag_, "UNKNOWN-CTE", "Cannot decode a part's content transfer encoding");
    } else if (missed) {
      report(false, fetchTag_.uid);
      no(fetchTag_, "EXPUNGEISSUED", "Some messages were expunged");
    } else {
      finish(fetchTag_, "FETCH completed");
    }
  }

  store::MailStore& store_;
  MailSettings settings_;
  Offload offload_;
  // Shared with the callbacks of commits under way: false once this
  // session is gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<AppendRun> append_;
  wire::Parser parser_;
  std::vector<Spool> spools_;
  StructureCache cache_;
  std::vector<uint32_t> saved_;  // SEARCHRES, as UIDs
  wire::Command fetchTag_;
  std::string idleTag_;
  unsigned bad_ = 0;
  bool rev2_ = false;
  bool condstore_ = false;  // RFC 7162: enabled by ENABLE or a CONDSTORE-enabling command
};

MailSession::MailSession(store::MailStore& store, MailSettings s, Offload offload)
    : impl_(std::make_unique<Impl>(store, std::move(s), std::move(offload))) {}
MailSession::~MailSession() = default;
void MailSession::start(std::string_view loginTag, std::string_view pendingInput) {
  impl_->start(loginTag, pendingInput);
}
void MailSession::feed(std::string_view bytes) { impl_->feed(bytes); }
std::string MailSession::takeOutput() { return std::exchange(impl_->out_, std::string()); }
bool MailSession::hasOutput() const { return !impl_->out_.empty(); }
bool MailSession::producing() const { return impl_->producing(); }
bool MailSession::waiting() const { return impl_->waiting_; }
void MailSession::produce(size_t budget) { impl_->produce(budget); }
bool MailSession::closing() const { return impl_->closing_; }
int MailSession::changeFd() const { return impl_->box_ ? impl_->box_->changeFd() : -1; }
uint64_t MailSession::selections() const { return impl_->selections_; }
void MailSession::changed() { impl_->changed(); }
bool MailSession::idling() const { return impl_->idling_; }
const MailStats& MailSession::stats() const { return impl_->stats_; }

}  // namespace yubin::mrad::imap
