// MemoryStore and its MemoryMailbox view; see memory_store.hpp.
#include "store/memory_store.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <ctime>
#include <set>

#include "base/fs.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "imap/mutf7.hpp"

namespace yubin::store {
namespace {

constexpr const char* kInbox = "INBOX";

bool equalsNoCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

int64_t nowSeconds() { return static_cast<int64_t>(::time(nullptr)); }

bool isUnder(const std::string& name, const std::string& parent, char delim) {
  return name.size() > parent.size() && name.compare(0, parent.size(), parent) == 0 &&
         name[parent.size()] == delim;
}

// Applies op to `to` with the (already canonical) keywords of `flags`.
Flags applyFlags(const Flags& old, FlagOp op, const Flags& change) {
  Flags out = old;
  switch (op) {
    case FlagOp::Replace:
      out = change;
      break;
    case FlagOp::Add:
      out.system |= change.system;
      for (const auto& k : change.keywords)
        if (std::find(out.keywords.begin(), out.keywords.end(), k) == out.keywords.end())
          out.keywords.push_back(k);
      break;
    case FlagOp::Remove:
      out.system &= static_cast<uint8_t>(~change.system);
      for (const auto& k : change.keywords)
        out.keywords.erase(std::remove(out.keywords.begin(), out.keywords.end(), k),
                           out.keywords.end());
      break;
  }
  std::sort(out.keywords.begin(), out.keywords.end());
  return out;
}

// The keywords of flags in f's spelling; those that do not fit are dropped.
Flags canonical(MemoryStoreData& data, MemoryStoreData::Folder& f, const Flags& flags) {
  Flags out;
  out.system = flags.system & 31;
  for (const auto& k : flags.keywords) {
    std::string c = data.keyword(f, k);
    if (!c.empty() && std::find(out.keywords.begin(), out.keywords.end(), c) == out.keywords.end())
      out.keywords.push_back(std::move(c));
  }
  std::sort(out.keywords.begin(), out.keywords.end());
  return out;
}

uint32_t appendMessage(MemoryStoreData& data, MemoryStoreData::Folder& f,
                       std::shared_ptr<const std::string> bytes, const Flags& flags,
                       int64_t internalDate) {
  MemoryStoreData::Message m;
  m.uid = f.uidNext++;
  m.size = crlfSize(*bytes);
  m.data = std::move(bytes);
  m.flags = canonical(data, f, flags);
  m.internalDate = internalDate ? internalDate : nowSeconds();
  m.modSeq = ++f.highestModSeq;
  f.messages.push_back(std::move(m));
  return f.messages.back().uid;
}

class StringReader final : public MessageReader {
 public:
  StringReader(std::shared_ptr<const std::string> data, size_t chunk)
      : data_(std::move(data)), chunk_(chunk ? chunk : 1) {}
  Result<size_t> read(std::string& out, size_t max) override {
    size_t n = std::min({max, chunk_, data_->size() - pos_});
    out.append(*data_, pos_, n);
    pos_ += n;
    return n;
  }

 private:
  std::shared_ptr<const std::string> data_;
  size_t chunk_;
  size_t pos_ = 0;
};

}  // namespace

// ---- names ----

Result<std::string> checkMailboxName(const std::string& name, char delimiter) {
  if (name.empty()) return Error{"empty mailbox name", EINVAL};
  if (imap::isInbox(name)) return std::string(kInbox);
  std::string out = name;
  // "inbox.Sub" names INBOX's child; keep INBOX canonical as the first level.
  if (size_t d = out.find(delimiter); d != std::string::npos && imap::isInbox(out.substr(0, d)))
    out.replace(0, d, kInbox);
  size_t start = 0;
  for (;;) {
    size_t end = out.find(delimiter, start);
    std::string_view comp = std::string_view(out).substr(
        start, end == std::string::npos ? std::string::npos : end - start);
    if (comp.empty() || comp == "." || comp == "..")
      return Error{"invalid mailbox name component", EINVAL};
    if (comp.front() == '~') return Error{"mailbox name component starts with ~", EINVAL};
    for (char c : comp) {
      auto u = static_cast<unsigned char>(c);
      if (u < 0x20 || u == 0x7f || c == '/' || c == '\\')
        return Error{"invalid character in mailbox name", EINVAL};
    }
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return out;
}

bool validSpecialUse(const std::string& specialUse) {
  if (specialUse.empty()) return true;
  for (const auto& m : kDefaultMailboxes)
    if (specialUse == m.use) return true;
  return false;
}

constexpr size_t kMaxSubscriptionsFile = size_t{16} << 20;

Result<std::vector<std::string>> readSubscriptions(const std::string& path) {
  std::vector<std::string> out;
  auto text = readFile(path, kMaxSubscriptionsFile);
  if (!text) {
    if (text.error().errnum == ENOENT) return out;
    return text.error();
  }
  auto ls = lines(*text);
  size_t i = 0;
  bool v2 = !ls.empty() && ls[0] == "V\t2";
  if (v2) {  // Dovecot's newer format: header, blank line, tab-separated UTF-8 levels
    while (i < ls.size() && !ls[i].empty()) ++i;
    ++i;
  }
  std::set<std::string> seen;
  for (; i < ls.size(); ++i) {
    if (ls[i].empty()) continue;
    std::string name;
    if (v2) {
      name = std::string(ls[i]);
      std::replace(name.begin(), name.end(), '\t', '.');
    } else {
      auto d = imap::mutf7Decode(ls[i]);
      if (!d) continue;
      name = std::move(*d);
    }
    auto checked = checkMailboxName(name, '.');
    if (checked && seen.insert(*checked).second) out.push_back(*checked);
  }
  return out;
}

Status changeSubscription(const std::string& path, const std::string& name, bool on) {
  auto subs = readSubscriptions(path);
  if (!subs) return subs.error();
  auto it = std::find(subs->begin(), subs->end(), name);
  if (on == (it != subs->end())) return {};
  if (on)
    subs->push_back(name);
  else
    subs->erase(it);
  std::string text;
  for (const auto& s : *subs)
    if (auto enc = imap::mutf7Encode(s)) text += *enc + "\n";
  return atomicWrite(path, text, 0600);
}

// ---- the shared data ----

MemoryStoreData::MemoryStoreData(bool defaults) {
  auto inbox = std::make_shared<Folder>();
  inbox->uidValidity = nextUidValidity();
  folders[kInbox] = inbox;
  if (!defaults) return;
  for (const auto& m : kDefaultMailboxes) {
    auto f = std::make_shared<Folder>();
    f->uidValidity = nextUidValidity();
    f->specialUse = m.use;
    folders[m.name] = f;
    subscribed.insert(m.name);
  }
}

Status MemoryStoreData::fault(const std::string& op) {
  auto it = faults_.find(op);
  if (it == faults_.end()) return {};
  int err = it->second;
  faults_.erase(it);
  return errnoError("injected " + op, err);
}

std::shared_ptr<MemoryStoreData::Folder> MemoryStoreData::find(const std::string& name) const {
  auto it = folders.find(name);
  return it == folders.end() ? nullptr : it->second;
}

uint32_t MemoryStoreData::nextUidValidity() {
  // Time-based like the Maildir backend, strictly increasing over the
  // process, not only the store: two stores never share a value, as two
  // folders of one Maildir root never do (caches keyed by user, mailbox and
  // UIDVALIDITY, such as mrad's header cache, rely on it).
  static std::atomic<uint32_t> last{0};
  const auto now = static_cast<uint32_t>(nowSeconds());
  uint32_t prev = last.load();
  uint32_t next;
  do {
    next = std::max(prev + 1, now);
  } while (!last.compare_exchange_weak(prev, next));
  return next;
}

std::string MemoryStoreData::keyword(Folder& f, const std::string& k) {
  for (const auto& have : f.keywords)
    if (equalsNoCase(have, k)) return have;
  if (f.keywords.size() >= maxKeywords) return {};
  f.keywords.push_back(k);
  return k;
}

// ---- the selected mailbox ----

class MemoryMailbox final : public ImapMailbox {
 public:
  MemoryMailbox(std::shared_ptr<MemoryStoreData> data, std::shared_ptr<MemoryStoreData::Folder> f,
                bool readOnly, UniqueFd fd)
      : data_(std::move(data)), f_(std::move(f)), readOnly_(readOnly), fd_(std::move(fd)) {
    f_->watchers.push_back(this);
    uidValidity_ = f_->uidValidity;
    refresh(true);
  }
  ~MemoryMailbox() override {
    auto& w = f_->watchers;
    w.erase(std::remove(w.begin(), w.end(), this), w.end());
  }
  MemoryMailbox(const MemoryMailbox&) = delete;
  MemoryMailbox& operator=(const MemoryMailbox&) = delete;

  uint32_t uidValidity() const override { return uidValidity_; }
  uint32_t uidNext() const override { return uidNext_; }
  uint64_t highestModSeq() const override { return highestModSeq_; }
  bool readOnly() const override { return readOnly_; }
  std::vector<std::string> keywords() const override { return f_->keywords; }
  bool canCreateKeywords() const override {
    return !readOnly_ && f_->keywords.size() < data_->maxKeywords;
  }
  size_t messageCount() const override { return view_.size(); }
  uint32_t uidAt(size_t i) const override { return view_[i].uid; }
  MessageInfo messageAt(size_t i) const override { return view_[i]; }
  MessageBrief briefAt(size_t i) const override { return briefOf(view_[i]); }
  size_t sessionBytes() const override { return viewBytes(view_) + versions_.capacity() * sizeof(uint64_t); }

  Result<MailboxChanges> sync(bool allowExpunge) override {
    if (auto st = data_->fault("sync"); !st) return st.error();
    return refresh(allowExpunge);
  }
  Result<std::unique_ptr<MessageReader>> open(size_t index) override;
  Status setFlags(const std::vector<size_t>& indexes, FlagOp op, const Flags& flags) override;
  // The test against the shared message (another handle's change counts
  // even before this view synced).
  Result<std::vector<size_t>> setFlagsUnchangedSince(const std::vector<size_t>& indexes, FlagOp op,
                                                     const Flags& flags,
                                                     uint64_t unchangedSince) override {
    if (auto st = checkIndexes(indexes); !st) return st.error();
    std::vector<size_t> ok, failed;
    for (size_t i : indexes) {
      ptrdiff_t s = view_[i].expunged ? -1 : sharedIndex(view_[i].uid);
      uint64_t m = s < 0 ? view_[i].modSeq : f_->messages[static_cast<size_t>(s)].modSeq;
      (m > unchangedSince ? failed : ok).push_back(i);
    }
    if (!ok.empty())
      if (auto st = setFlags(ok, op, flags); !st) return st.error();
    std::sort(failed.begin(), failed.end());
    failed.erase(std::unique(failed.begin(), failed.end()), failed.end());
    return failed;
  }
  Status expunge(const std::vector<size_t>& indexes) override;
  Result<CopiedUids> copy(const std::vector<size_t>& indexes, const std::string& dest,
                          bool move) override;
  int changeFd() const override { return fd_.get(); }
  void drainChangeFd() override {
    uint64_t v;
    while (::read(fd_.get(), &v, sizeof v) > 0) {
    }
  }

  void poke() {
    uint64_t one = 1;
    (void)!::write(fd_.get(), &one, sizeof one);
  }

 private:
  MailboxChanges refresh(bool allowExpunge);
  // Index of uid in the shared folder, or -1.
  ptrdiff_t sharedIndex(uint32_t uid) const {
    auto& ms = f_->messages;
    auto it =
        std::lower_bound(ms.begin(), ms.end(), uid,
                         [](const MemoryStoreData::Message& m, uint32_t u) { return m.uid < u; });
    if (it == ms.end() || it->uid != uid) return -1;
    return it - ms.begin();
  }
  Status checkIndexes(const std::vector<size_t>& indexes) const {
    for (size_t i : indexes)
      if (i >= view_.size()) return Error{"no such message", EINVAL};
    return {};
  }
  // Removes the messages from the shared folder (the view keeps them marked).
  void removeShared(const std::vector<size_t>& indexes);

  std::shared_ptr<MemoryStoreData> data_;
  std::shared_ptr<MemoryStoreData::Folder> f_;
  bool readOnly_;
  UniqueFd fd_;
  uint32_t uidValidity_ = 0;
  uint32_t uidNext_ = 1;
  uint32_t maxUid_ = 0;  // highest UID in the view so far
  uint64_t highestModSeq_ = 0;
  std::vector<MessageInfo> view_;
  std::vector<uint64_t> versions_;  // flagVersion last seen, item by item with view_
};

void MemoryStoreData::notify(Folder& f, const MemoryMailbox* origin) {
  for (MemoryMailbox* w : f.watchers)
    if (w != origin) w->poke();
}

MailboxChanges MemoryMailbox::refresh(bool allowExpunge) {
  MailboxChanges ch;
  std::vector<bool> changed(view_.size(), false);
  for (size_t i = 0; i < view_.size(); ++i) {
    MessageInfo& v = view_[i];
    if (v.expunged) continue;
    ptrdiff_t s = sharedIndex(v.uid);
    if (s < 0) {
      v.expunged = true;
      continue;
    }
    const auto& m = f_->messages[static_cast<size_t>(s)];
    if (m.flagVersion != versions_[i]) {
      versions_[i] = m.flagVersion;
      if (!(m.flags == v.flags) || m.modSeq != v.modSeq) {
        v.flags = m.flags;
        v.modSeq = m.modSeq;
        changed[i] = true;
      }
    }
  }
  if (allowExpunge) {
    for (size_t i = view_.size(); i-- > 0;) {
      if (!view_[i].expunged) continue;
      ch.expunged.push_back(static_cast<uint32_t>(i + 1));
      ch.expungedUids.push_back(view_[i].uid);
      view_.erase(view_.begin() + static_cast<ptrdiff_t>(i));
      versions_.erase(versions_.begin() + static_cast<ptrdiff_t>(i));
      changed.erase(changed.begin() + static_cast<ptrdiff_t>(i));
    }
  }
  for (size_t i = 0; i < changed.size(); ++i)
    if (changed[i]) ch.flagsChanged.push_back(i);
  for (auto& m : f_->messages) {
    if (m.uid <= maxUid_) continue;
    MessageInfo v;
    v.uid = m.uid;
    v.flags = m.flags;
    v.size = m.size;
    v.internalDate = m.internalDate;
    v.recent = m.recentUnclaimed;
    v.modSeq = m.modSeq;
    if (!readOnly_) m.recentUnclaimed = false;
    view_.push_back(std::move(v));
    versions_.push_back(m.flagVersion);
    maxUid_ = m.uid;
    ch.existsChanged = true;
  }
  uidNext_ = std::max(f_->uidNext, maxUid_ + 1);
  highestModSeq_ = f_->highestModSeq;
  return ch;
}

Result<std::unique_ptr<MessageReader>> MemoryMailbox::open(size_t index) {
  if (auto st = data_->fault("open"); !st) return st.error();
  if (index >= view_.size()) return Error{"no such message", EINVAL};
  ptrdiff_t s = view_[index].expunged ? -1 : sharedIndex(view_[index].uid);
  if (s < 0) return Error{"message expunged", ENOENT};
  return std::unique_ptr<MessageReader>(
      std::make_unique<StringReader>(f_->messages[static_cast<size_t>(s)].data, data_->readChunk));
}

Status MemoryMailbox::setFlags(const std::vector<size_t>& indexes, FlagOp op, const Flags& flags) {
  if (readOnly_) return Error{"mailbox is read-only", EROFS};
  if (auto st = checkIndexes(indexes); !st) return st;
  if (auto st = data_->fault("setFlags"); !st) return st;
  Flags change = canonical(*data_, *f_, flags);
  bool any = false;
  const uint64_t modSeq = f_->highestModSeq + 1;  // one per operation
  for (size_t i : indexes) {
    if (view_[i].expunged) continue;
    ptrdiff_t s = sharedIndex(view_[i].uid);
    if (s < 0) continue;  // gone meanwhile: the next sync reports it
    auto& m = f_->messages[static_cast<size_t>(s)];
    Flags next = applyFlags(m.flags, op, change);
    if (!(next == m.flags)) {
      m.flags = next;
      ++m.flagVersion;
      m.modSeq = modSeq;
      any = true;
    }
    view_[i].flags = m.flags;
    view_[i].modSeq = m.modSeq;
    versions_[i] = m.flagVersion;
  }
  if (any) {
    f_->highestModSeq = modSeq;
    highestModSeq_ = std::max(highestModSeq_, modSeq);
    data_->notify(*f_, this);
  }
  return {};
}

void MemoryMailbox::removeShared(const std::vector<size_t>& indexes) {
  bool any = false;
  for (size_t i : indexes) {
    ptrdiff_t s = sharedIndex(view_[i].uid);
    view_[i].expunged = true;
    if (s < 0) continue;
    f_->messages.erase(f_->messages.begin() + s);
    any = true;
  }
  if (any) {
    ++f_->highestModSeq;  // an expunge is a change of the mailbox
    data_->notify(*f_, this);
  }
}

Status MemoryMailbox::expunge(const std::vector<size_t>& indexes) {
  if (readOnly_) return Error{"mailbox is read-only", EROFS};
  if (auto st = checkIndexes(indexes); !st) return st;
  if (auto st = data_->fault("expunge"); !st) return st;
  removeShared(indexes);
  return {};
}

Result<CopiedUids> MemoryMailbox::copy(const std::vector<size_t>& indexes, const std::string& dest,
                                       bool move) {
  if (move && readOnly_) return Error{"mailbox is read-only", EROFS};
  if (auto st = checkIndexes(indexes); !st) return st.error();
  auto name = checkMailboxName(dest, '.');
  if (!name) return name.error();
  if (auto st = data_->fault("copy"); !st) return st.error();
  auto d = data_->find(*name);
  if (!d || d->noSelect) return Error{"no such mailbox: " + *name, ENOENT};
  std::vector<size_t> order = indexes;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return view_[a].uid < view_[b].uid; });
  order.erase(std::unique(order.begin(), order.end()), order.end());
  CopiedUids out;
  out.uidValidity = d->uidValidity;
  std::vector<size_t> copied;
  for (size_t i : order) {
    ptrdiff_t s = view_[i].expunged ? -1 : sharedIndex(view_[i].uid);
    if (s < 0) continue;
    const auto& m = f_->messages[static_cast<size_t>(s)];
    out.sourceUids.push_back(m.uid);
    out.destUids.push_back(appendMessage(*data_, *d, m.data, m.flags, m.internalDate));
    copied.push_back(i);
  }
  if (!copied.empty()) data_->notify(*d, nullptr);
  if (move) removeShared(copied);
  return out;
}

// ---- the store ----

namespace {

class MemoryAppend final : public AppendTransaction {
 public:
  MemoryAppend(std::shared_ptr<MemoryStoreData> data, std::string name)
      : data_(std::move(data)), name_(std::move(name)) {}
  Status write(std::string_view bytes) override {
    if (auto st = data_->fault("append.write"); !st) return st;
    bytes_.append(bytes);
    return {};
  }
  Result<AppendedUids> commit(const Flags& flags, int64_t internalDate) override {
    if (auto st = data_->fault("append.commit"); !st) return st.error();
    auto f = data_->find(name_);
    if (!f || f->noSelect) return Error{"no such mailbox: " + name_, ENOENT};
    AppendedUids out;
    out.uidValidity = f->uidValidity;
    out.uids.push_back(appendMessage(
        *data_, *f, std::make_shared<const std::string>(std::move(bytes_)), flags, internalDate));
    data_->notify(*f, nullptr);
    return out;
  }

 private:
  std::shared_ptr<MemoryStoreData> data_;
  std::string name_;
  std::string bytes_;
};

}  // namespace

Result<uint32_t> MemoryStore::deliver(const std::string& mailbox, std::string bytes,
                                      const Flags& flags, int64_t internalDate) {
  auto name = checkMailboxName(mailbox, '.');
  if (!name) return name.error();
  auto f = data_->find(*name);
  if (!f || f->noSelect) return Error{"no such mailbox: " + *name, ENOENT};
  uint32_t uid = appendMessage(*data_, *f, std::make_shared<const std::string>(std::move(bytes)),
                               flags, internalDate);
  data_->notify(*f, nullptr);
  return uid;
}

Result<std::vector<MailboxListEntry>> MemoryStore::list() {
  if (auto st = data_->fault("list"); !st) return st.error();
  const char delim = delimiter();
  // Every name plus every parent path of one.
  std::map<std::string, MailboxListEntry> all;
  for (const auto& [name, f] : data_->folders) {
    MailboxListEntry& e = all[name];
    e.name = name;
    e.noSelect = f->noSelect;
    e.specialUse = f->specialUse;
    for (size_t d = name.find(delim); d != std::string::npos; d = name.find(delim, d + 1)) {
      std::string parent = name.substr(0, d);
      auto [it, fresh] = all.try_emplace(parent);
      if (fresh) {
        it->second.name = parent;
        it->second.noSelect = !data_->folders.count(parent);
      }
      it->second.hasChildren = true;
    }
  }
  std::vector<MailboxListEntry> out;
  for (auto& [name, e] : all) {
    e.subscribed = data_->subscribed.count(name) > 0;
    if (name == kInbox)
      out.insert(out.begin(), e);
    else
      out.push_back(e);
  }
  return out;
}

Result<std::vector<std::string>> MemoryStore::subscriptions() {
  if (auto st = data_->fault("subscriptions"); !st) return st.error();
  return std::vector<std::string>(data_->subscribed.begin(), data_->subscribed.end());
}

Status MemoryStore::subscribe(const std::string& name, bool on) {
  auto n = checkMailboxName(name, delimiter());
  if (!n) return n.error();
  if (auto st = data_->fault("subscribe"); !st) return st;
  if (on)
    data_->subscribed.insert(*n);
  else
    data_->subscribed.erase(*n);
  return {};
}

Status MemoryStore::create(const std::string& name, const std::string& specialUse) {
  auto n = checkMailboxName(name, delimiter());
  if (!n) return n.error();
  if (!validSpecialUse(specialUse)) return Error{"unknown special-use attribute", EINVAL};
  if (auto st = data_->fault("create"); !st) return st;
  auto existing = data_->find(*n);
  if (existing && !existing->noSelect) return Error{"mailbox exists: " + *n, EEXIST};
  // Parents first, as ordinary mailboxes.
  for (size_t d = n->find(delimiter()); d != std::string::npos; d = n->find(delimiter(), d + 1)) {
    std::string parent = n->substr(0, d);
    if (data_->find(parent)) continue;
    auto p = std::make_shared<MemoryStoreData::Folder>();
    p->uidValidity = data_->nextUidValidity();
    data_->folders[parent] = p;
  }
  auto f = std::make_shared<MemoryStoreData::Folder>();
  f->uidValidity = data_->nextUidValidity();
  f->specialUse = specialUse;
  if (existing) {
    existing->deleted = true;
    existing->messages.clear();
    data_->notify(*existing, nullptr);
  }
  data_->folders[*n] = f;
  return {};
}

Status MemoryStore::remove(const std::string& name) {
  auto n = checkMailboxName(name, delimiter());
  if (!n) return n.error();
  if (*n == kInbox) return Error{"INBOX cannot be deleted", EINVAL};
  if (auto st = data_->fault("remove"); !st) return st;
  bool children = false;
  for (const auto& [other, f] : data_->folders)
    if (isUnder(other, *n, delimiter())) children = true;
  auto f = data_->find(*n);
  if (!f) {
    if (children) return Error{"\\Noselect mailbox with children: " + *n, ENOTEMPTY};
    return Error{"no such mailbox: " + *n, ENOENT};
  }
  if (f->noSelect) {
    if (children) return Error{"\\Noselect mailbox with children: " + *n, ENOTEMPTY};
    data_->folders.erase(*n);
    return {};
  }
  f->deleted = true;
  f->messages.clear();
  data_->notify(*f, nullptr);
  if (children) {
    auto p = std::make_shared<MemoryStoreData::Folder>();
    p->noSelect = true;
    data_->folders[*n] = p;
  } else {
    data_->folders.erase(*n);
  }
  return {};
}

Status MemoryStore::rename(const std::string& fromName, const std::string& toName) {
  auto from = checkMailboxName(fromName, delimiter());
  if (!from) return from.error();
  auto to = checkMailboxName(toName, delimiter());
  if (!to) return to.error();
  if (auto st = data_->fault("rename"); !st) return st;
  if (*to == kInbox || isUnder(*to, *from, delimiter()) || *from == *to)
    return Error{"cannot rename " + *from + " to " + *to, EINVAL};
  bool toExists = data_->find(*to) != nullptr;
  for (const auto& [other, f] : data_->folders)
    if (isUnder(other, *to, delimiter())) toExists = true;
  if (toExists) return Error{"mailbox exists: " + *to, EEXIST};
  auto src = data_->find(*from);
  if (*from == kInbox) {
    // RFC 3501 §6.3.5: the messages move to a new mailbox, INBOX stays (empty).
    if (auto st = create(*to, ""); !st) return st;
    auto dst = data_->find(*to);
    for (auto& m : src->messages) {
      m.uid = dst->uidNext++;
      m.flags = canonical(*data_, *dst, m.flags);
      m.flagVersion = 0;
      m.modSeq = dst->highestModSeq + 1;
      dst->messages.push_back(std::move(m));
    }
    if (!src->messages.empty()) {
      ++dst->highestModSeq;
      ++src->highestModSeq;
    }
    src->messages.clear();
    data_->notify(*src, nullptr);
    return {};
  }
  std::vector<std::string> moving;
  for (const auto& [other, f] : data_->folders)
    if (other == *from || isUnder(other, *from, delimiter())) moving.push_back(other);
  if (moving.empty()) return Error{"no such mailbox: " + *from, ENOENT};
  for (size_t d = to->find(delimiter()); d != std::string::npos; d = to->find(delimiter(), d + 1)) {
    std::string parent = to->substr(0, d);
    if (data_->find(parent)) continue;
    auto p = std::make_shared<MemoryStoreData::Folder>();
    p->uidValidity = data_->nextUidValidity();
    data_->folders[parent] = p;
  }
  for (const auto& old : moving) {
    auto f = data_->folders[old];
    data_->folders.erase(old);
    data_->folders[*to + old.substr(from->size())] = f;
  }
  return {};
}

Result<MailboxStatus> MemoryStore::status(const std::string& name) {
  auto n = checkMailboxName(name, delimiter());
  if (!n) return n.error();
  if (auto st = data_->fault("status"); !st) return st.error();
  auto f = data_->find(*n);
  if (!f || f->noSelect) return Error{"no such mailbox: " + *n, ENOENT};
  MailboxStatus s;
  s.uidNext = f->uidNext;
  s.uidValidity = f->uidValidity;
  s.highestModSeq = f->highestModSeq;
  for (const auto& m : f->messages) {
    ++s.messages;
    if (m.recentUnclaimed) ++s.recent;
    if (!(m.flags.system & kFlagSeen)) ++s.unseen;
    if (m.flags.system & kFlagDeleted) ++s.deleted;
    s.size += m.size;
  }
  return s;
}

Result<std::unique_ptr<ImapMailbox>> MemoryStore::select(const std::string& name, bool readOnly) {
  auto n = checkMailboxName(name, delimiter());
  if (!n) return n.error();
  if (auto st = data_->fault("select"); !st) return st.error();
  auto f = data_->find(*n);
  if (!f || f->noSelect) return Error{"no such mailbox: " + *n, ENOENT};
  UniqueFd fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!fd) return errnoError("eventfd");
  return std::unique_ptr<ImapMailbox>(
      std::make_unique<MemoryMailbox>(data_, std::move(f), readOnly, std::move(fd)));
}

Result<std::unique_ptr<AppendTransaction>> MemoryStore::beginAppend(const std::string& name) {
  auto n = checkMailboxName(name, delimiter());
  if (!n) return n.error();
  if (auto st = data_->fault("beginAppend"); !st) return st.error();
  auto f = data_->find(*n);
  if (!f || f->noSelect) return Error{"no such mailbox: " + *n, ENOENT};
  return std::unique_ptr<AppendTransaction>(std::make_unique<MemoryAppend>(data_, *n));
}

}  // namespace yubin::store
