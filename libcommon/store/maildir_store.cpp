// MaildirStore; see maildir_store.hpp.
#include "store/maildir_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>
#include <tuple>
#include <unordered_set>
#include <utility>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "imap/mutf7.hpp"
#include "store/fsync_batcher.hpp"
#include "store/mailbox.hpp"
#include "store/maildir.hpp"
#include "store/maildir_folder.hpp"  // kMaildirSizeCache
#include "store/memory_store.hpp"    // checkMailboxName, validSpecialUse
#include "store/uid_list.hpp"
#include "store/watch_pool.hpp"

namespace yubin::store {
namespace {

constexpr const char* kInbox = "INBOX";
constexpr size_t kReadChunk = size_t{64} * 1024;
constexpr size_t kMaxSmallFile = size_t{16} << 20;
constexpr size_t kMaxKeywords = 26;

bool exists(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}
bool isDir(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

bool isUnder(const std::string& name, const std::string& parent, char delim) {
  return name.size() > parent.size() && name.compare(0, parent.size(), parent) == 0 &&
         name[parent.size()] == delim;
}

// Removes a tree without following symlinks.
void removeTree(const std::string& path) {
  ::nftw(
      path.c_str(), [](const char* p, const struct stat*, int, struct FTW*) { return ::remove(p); },
      16, FTW_DEPTH | FTW_PHYS);
}

Status makeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0700) == 0 || errno == EEXIST) return {};
  return errnoError("mkdir " + path);
}

// ---- flags <-> Maildir info ----

struct LetterFlag {
  char letter;
  uint8_t flag;
};
constexpr LetterFlag kLetters[] = {{'D', kFlagDraft},
                                   {'F', kFlagFlagged},
                                   {'R', kFlagAnswered},
                                   {'S', kFlagSeen},
                                   {'T', kFlagDeleted}};

// Keyword names by letter index (slot n = letter 'a' + n; "" = unused).
using KeywordSlots = std::vector<std::string>;

KeywordSlots readKeywords(const std::string& dir) {
  KeywordSlots slots;
  auto text = readFile(dir + "/" + kKeywordsFile, kMaxSmallFile);
  if (!text) return slots;
  for (std::string_view line : lines(*text)) {
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    auto n = parseU64(line.substr(0, sp));
    std::string_view name = line.substr(sp + 1);
    if (!n || *n >= kMaxKeywords || name.empty()) continue;
    if (slots.size() <= *n) slots.resize(*n + 1);
    slots[*n] = std::string(name);
  }
  return slots;
}

Status writeKeywords(const std::string& dir, const KeywordSlots& slots) {
  std::string text;
  for (size_t i = 0; i < slots.size(); ++i)
    if (!slots[i].empty()) text += std::to_string(i) + " " + slots[i] + "\n";
  return atomicWrite(dir + "/" + kKeywordsFile, text, 0600);
}

int findKeyword(const KeywordSlots& slots, std::string_view k) {
  for (size_t i = 0; i < slots.size(); ++i)
    if (!slots[i].empty() && iequals(slots[i], k)) return static_cast<int>(i);
  return -1;
}

size_t usedSlots(const KeywordSlots& slots) {
  return static_cast<size_t>(
      std::count_if(slots.begin(), slots.end(), [](const std::string& s) { return !s.empty(); }));
}

// Makes sure dir's keyword file names every keyword of flags (those that do
// not fit are left out), under the folder's uid list lock. Returns the slots.
Result<KeywordSlots> defineKeywords(const std::string& dir, const Flags& flags) {
  KeywordSlots slots = readKeywords(dir);
  bool missing = false;
  for (const auto& k : flags.keywords)
    if (findKeyword(slots, k) < 0) missing = true;
  if (!missing) return slots;
  auto lock = lockUidList(dir);
  if (!lock) return lock.error();
  slots = readKeywords(dir);
  bool changed = false;
  for (const auto& k : flags.keywords) {
    if (findKeyword(slots, k) >= 0) continue;
    auto free = std::find(slots.begin(), slots.end(), std::string());
    if (free != slots.end()) {
      *free = k;
    } else if (slots.size() < kMaxKeywords) {
      slots.push_back(k);
    } else {
      continue;
    }
    changed = true;
  }
  if (changed)
    if (auto st = writeKeywords(dir, slots); !st) return st.error();
  return slots;
}

Flags flagsFromInfo(std::string_view info, const KeywordSlots& slots) {
  Flags f;
  for (char c : info) {
    for (const auto& l : kLetters)
      if (c == l.letter) f.system |= l.flag;
    if (c >= 'a' && c <= 'z') {
      size_t n = static_cast<size_t>(c - 'a');
      if (n < slots.size() && !slots[n].empty()) f.keywords.push_back(slots[n]);
    }
  }
  std::sort(f.keywords.begin(), f.keywords.end());
  return f;
}

// The info for flags; upper-case letters of old that are not ours (P) stay.
std::string infoFor(const Flags& f, std::string_view old, const KeywordSlots& slots) {
  std::string out;
  for (char c : old) {
    bool ours = false;
    for (const auto& l : kLetters) ours = ours || c == l.letter;
    if (c >= 'A' && c <= 'Z' && !ours) out += c;
  }
  for (const auto& l : kLetters)
    if (f.system & l.flag) out += l.letter;
  for (const auto& k : f.keywords)
    if (int n = findKeyword(slots, k); n >= 0) out += static_cast<char>('a' + n);
  return maildirNormaliseFlags(out);
}

Flags applyFlags(const Flags& old, FlagOp op, const Flags& change, const KeywordSlots& slots) {
  Flags out = old;
  auto has = [](const std::vector<std::string>& v, const std::string& k) {
    return std::any_of(v.begin(), v.end(), [&](const std::string& x) { return iequals(x, k); });
  };
  switch (op) {
    case FlagOp::Replace:
      out.system = change.system;
      out.keywords.clear();
      [[fallthrough]];
    case FlagOp::Add:
      out.system |= change.system;
      for (const auto& k : change.keywords) {
        int n = findKeyword(slots, k);
        if (n >= 0 && !has(out.keywords, slots[static_cast<size_t>(n)]))
          out.keywords.push_back(slots[static_cast<size_t>(n)]);
      }
      break;
    case FlagOp::Remove:
      out.system &= static_cast<uint8_t>(~change.system);
      out.keywords.erase(
          std::remove_if(out.keywords.begin(), out.keywords.end(),
                         [&](const std::string& k) { return has(change.keywords, k); }),
          out.keywords.end());
      break;
  }
  out.system &= 31;
  std::sort(out.keywords.begin(), out.keywords.end());
  return out;
}

// ---- the directory scan ----

constexpr uint64_t kUnknownSize = UINT64_MAX;

// The message files of dir's new/ and cur/ (names starting with '.' and
// non-regular files skipped; cur/ wins for an id in both), in directory
// order. Unlike scanMaildir no file is stat'ed (d_type tells regular
// files) and nothing is sorted: a 10,000-message folder is read in a few
// milliseconds. diskSize is the S= field (kUnknownSize without one; the
// size cache is checked against it), mtime is -1: statFile() fills both
// for the messages that need them (new ones).
Result<std::vector<MaildirFile>> quickScan(const std::string& dir) {
  std::vector<MaildirFile> out;
  std::unordered_map<std::string, size_t> byId;
  for (const char* sub : {"new", "cur"}) {
    std::string subdir = dir + "/" + sub;
    CPtr<DIR, closedir> d(::opendir(subdir.c_str()));
    if (!d) {
      if (errno == ENOENT) continue;
      return errnoError("opendir " + subdir);
    }
    for (;;) {
      errno = 0;
      struct dirent* e = ::readdir(d.get());
      if (!e) {
        if (errno != 0) return errnoError("readdir " + subdir);
        break;
      }
      std::string_view name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      if (e->d_type != DT_REG) {
        struct stat st;
        if (e->d_type != DT_UNKNOWN ||
            ::fstatat(::dirfd(d.get()), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 ||
            !S_ISREG(st.st_mode))
          continue;
      }
      MaildirFile f;
      f.id = std::string(maildirId(name));
      f.fileName = std::string(sub) + "/" + std::string(name);
      f.diskSize = maildirSizeFromName(name).value_or(kUnknownSize);
      f.mtime = -1;
      auto [it, fresh] = byId.try_emplace(f.id, out.size());
      if (fresh)
        out.push_back(std::move(f));
      else
        out[it->second] = std::move(f);
    }
  }
  return out;
}

// Fills f's mtime (and its size when the name has no S=).
Status statFile(const std::string& dir, MaildirFile& f) {
  struct stat st;
  const std::string path = dir + "/" + f.fileName;
  if (::lstat(path.c_str(), &st) != 0) return errnoError("stat " + path);
  f.mtime = static_cast<int64_t>(st.st_mtime);
  if (f.diskSize == kUnknownSize) f.diskSize = static_cast<uint64_t>(st.st_size);
  return {};
}

// ---- sizes ----


// The yubin-sizes cache MaildirFolder keeps too: "<id> <raw> <crlf>" lines.
class SizeCache {
 public:
  explicit SizeCache(std::string dir) : dir_(std::move(dir)) {
    auto text = readFile(dir_ + "/" + kMaildirSizeCache, kMaxSmallFile);
    if (!text) return;
    for (std::string_view line : lines(*text)) {
      auto f = splitAny(line, " ");
      if (f.size() != 3) continue;
      auto raw = parseU64(f[1]), crlf = parseU64(f[2]);
      if (!raw || !crlf || *crlf < *raw) continue;
      map_[f[0]] = {*raw, *crlf};
    }
  }
  // The CRLF size of f: ,W=, the cache, or counted (then remembered).
  Result<uint64_t> size(MaildirFile& f) {
    auto w = maildirNameField(f.name(), 'W');
    if (w && (f.diskSize == kUnknownSize || *w >= f.diskSize)) return *w;
    if (f.diskSize == kUnknownSize)
      if (auto st = statFile(dir_, f); !st) return st.error();
    if (auto c = map_.find(f.id); c != map_.end() && c->second.first == f.diskSize)
      return c->second.second;
    auto n = crlfFileSize(dir_ + "/" + f.fileName);
    if (!n) return n.error();
    map_[f.id] = {f.diskSize, *n};
    dirty_ = true;
    return *n;
  }
  // Writes the cache when it learnt something, keeping the live ids only.
  void save(const std::vector<MaildirFile>& live) {
    if (!dirty_) return;
    std::unordered_map<std::string_view, uint64_t> sizes;
    sizes.reserve(live.size());
    for (const auto& f : live) sizes.emplace(f.id, f.diskSize);
    saveIf([&](std::string_view id, uint64_t diskSize) {
      auto it = sizes.find(id);
      return it != sizes.end() && it->second == diskSize;
    });
  }
  // The same, keeping the entries keep(id, size on disk) accepts.
  template <typename Keep>
  void saveIf(const Keep& keep) {
    if (!dirty_) return;
    dirty_ = false;
    std::string text;
    for (const auto& [id, c] : map_) {
      if (!keep(std::string_view(id), c.first)) continue;
      text += id + " " + std::to_string(c.first) + " " + std::to_string(c.second) + "\n";
    }
    // Replaced by rename, without fsync: the cache only saves work, and a
    // damaged entry is either refused (crlf < raw) or its id is gone.
    const std::string path = dir_ + "/" + kMaildirSizeCache;
    const std::string tmp = path + ".tmp";
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    Status st = fd ? writeAll(fd.get(), text) : errnoError("create " + tmp);
    if (st && ::rename(tmp.c_str(), path.c_str()) != 0) st = errnoError("rename " + tmp);
    if (!st)
      YLOG_WARN("maildir: size cache not written path=%s error=\"%s\"", path.c_str(),
                st.error().message.c_str());
  }

 private:
  std::string dir_;
  std::unordered_map<std::string, std::pair<uint64_t, uint64_t>> map_;
  bool dirty_ = false;
};

// ---- the uid list of a folder, brought in step with its files ----

struct LoadedMessage {
  uint32_t uid;
  MaildirFile file;
  uint64_t modSeq = 1;
};
struct LoadedFolder {
  uint32_t uidValidity = 0;
  uint32_t uidNext = 1;
  uint32_t firstRecent = 1;             // before this load took \Recent
  uint64_t highestModSeq = 1;
  std::vector<LoadedMessage> messages;  // ascending UID
};

// The uid list's flags token for a file (see uid_list.hpp).
std::string fileToken(const MaildirFile& f) {
  return flagsToken(f.isNew() ? std::string_view() : maildirFlags(f.name()));
}
std::string nameToken(std::string_view fileName) {  // "new/<name>" or "cur/<name>"
  return flagsToken(fileName[0] == 'n' ? std::string_view() : maildirFlags(fileName.substr(4)));
}

// The entry of uid in a list, or nullptr.
UidEntry* findEntry(UidList& l, uint32_t uid) {
  auto it = std::lower_bound(l.entries.begin(), l.entries.end(), uid,
                             [](const UidEntry& e, uint32_t u) { return e.uid < u; });
  return it != l.entries.end() && it->uid == uid ? &*it : nullptr;
}

// The next mod-sequence of a list, for every change of one write.
Result<uint64_t> nextModSeq(const UidList& l, const std::string& dir) {
  if (l.highestModSeq >= 0x7fffffffffffffffULL)
    return Error{"mod-sequence space exhausted in " + dir, EOVERFLOW};
  return l.highestModSeq + 1;
}

// A list for a folder that has none of ours: Dovecot's, or a fresh one.
Result<UidList> startList(const std::string& root, const std::string& dir, bool corrupt) {
  if (!corrupt) {
    if (auto text = readFile(dir + "/" + kDovecotUidListFile, size_t{256} << 20); text) {
      if (auto l = parseDovecotUidList(*text)) return std::move(*l);
      YLOG_WARN("maildir: dovecot-uidlist not usable, new UIDVALIDITY dir=%s", dir.c_str());
    }
  } else {
    YLOG_WARN("maildir: uid list corrupt, rebuilt with a new UIDVALIDITY dir=%s", dir.c_str());
  }
  UidList l;
  auto v = allocateUidValidity(root);
  if (!v) return v.error();
  l.uidValidity = *v;
  return l;
}

// Scans dir and gives every message a UID (under the lock when the list
// must change); with claimRecent, \Recent is taken.
Result<LoadedFolder> loadFolder(const std::string& root, const std::string& dir, bool claimRecent) {
  // The list before the scan: an entry in it whose file the scan does not
  // find is gone (entries are written only after their file is in place).
  auto read = readUidList(dir);
  if (!read) return read.error();
  auto files = quickScan(dir);
  if (!files) return files.error();

  // A write is needed for files the list does not know, files whose flags
  // changed behind the list's back (a new modseq), tokens not known yet
  // (a version 1 or Dovecot list) and \Recent to take.
  auto needsWrite = [&](const UidList& l, const std::vector<MaildirFile>& fs, bool& stale) {
    std::unordered_map<std::string_view, const UidEntry*> known;
    known.reserve(l.entries.size());
    for (const auto& e : l.entries) known.emplace(e.id, &e);
    bool unknown = false;
    for (const auto& f : fs) {
      auto it = known.find(f.id);
      if (it == known.end()) {
        unknown = true;
        continue;
      }
      if (!unknown && it->second->flags != fileToken(f)) unknown = true;
      known.erase(it);
    }
    stale = !known.empty();  // entries whose file is gone
    return unknown || (claimRecent && l.firstRecent < l.uidNext);
  };

  bool stale = false;
  bool write = read->state != UidListState::Ok || needsWrite(read->list, *files, stale);
  if (!write && stale) {
    // A file renamed while readdir ran may have been missed: look again
    // before dropping its entry.
    files = quickScan(dir);
    if (!files) return files.error();
    write = needsWrite(read->list, *files, stale) || stale;
  }
  UidList list;
  uint32_t firstRecent;
  if (write) {
    auto lock = lockUidList(dir);
    if (!lock) return lock.error();
    // Another process may have written the list since: read it again (the
    // scan need not be redone: a file it missed gets its UID next time).
    // Only entries that were there before the scan may be dropped.
    std::unordered_set<std::string> before;
    if (read->state == UidListState::Ok)
      for (const auto& e : read->list.entries) before.insert(e.id);
    read = readUidList(dir);
    if (!read) return read.error();
    if (read->state == UidListState::Ok) {
      list = std::move(read->list);
    } else {
      auto l = startList(root, dir, read->state == UidListState::Corrupt);
      if (!l) return l.error();
      list = std::move(*l);
    }
    std::unordered_map<std::string_view, const MaildirFile*> present;
    present.reserve(files->size());
    for (const auto& f : *files) present.emplace(f.id, &f);
    UidList next;
    next.uidValidity = list.uidValidity;
    next.uidNext = list.uidNext;
    next.firstRecent = list.firstRecent;
    next.highestModSeq = list.highestModSeq;
    // Every change of this write (new files, flags changed elsewhere,
    // messages gone) takes one new mod-sequence.
    auto modSeq = nextModSeq(list, dir);
    if (!modSeq) return modSeq.error();
    bool changed = false;
    std::vector<uint32_t> touched, removed;  // for the change log
    for (auto& e : list.entries) {
      auto it = present.find(e.id);
      if (it != present.end()) {
        std::string token = fileToken(*it->second);
        if (e.flags.empty()) {
          e.flags = std::move(token);  // first sight (an older list): no change
          touched.push_back(e.uid);
        } else if (e.flags != token) {
          e.flags = std::move(token);
          e.modSeq = *modSeq;
          changed = true;
          touched.push_back(e.uid);
        }
        present.erase(it);
        next.entries.push_back(std::move(e));
      } else if (!before.count(e.id)) {
        next.entries.push_back(std::move(e));  // added after our scan
      } else {
        changed = true;  // expunged
        removed.push_back(e.uid);
      }
    }
    // New messages in delivery order: natural order of the id.
    std::vector<const MaildirFile*> fresh;
    fresh.reserve(present.size());
    for (const auto& f : *files)
      if (present.count(f.id)) fresh.push_back(&f);
    std::sort(fresh.begin(), fresh.end(),
              [](const MaildirFile* a, const MaildirFile* b) { return naturalLess(a->id, b->id); });
    for (const MaildirFile* f : fresh) {
      if (next.uidNext == UINT32_MAX) return Error{"UID space exhausted in " + dir, EOVERFLOW};
      touched.push_back(next.uidNext);
      next.entries.push_back({next.uidNext++, f->id, *modSeq, fileToken(*f)});
      changed = true;
    }
    if (changed) next.highestModSeq = *modSeq;
    firstRecent = next.firstRecent;
    if (claimRecent) next.firstRecent = next.uidNext;
    // A list of ours changes through the log; a new one is written whole.
    if (auto st = read->state == UidListState::Ok ? saveUidListChange(dir, next, touched, removed)
                                                  : writeUidList(dir, next);
        !st)
      return st.error();
    list = std::move(next);
  } else {
    list = std::move(read->list);
    firstRecent = list.firstRecent;
  }
  LoadedFolder out;
  out.uidValidity = list.uidValidity;
  out.uidNext = list.uidNext;
  out.firstRecent = firstRecent;
  out.highestModSeq = list.highestModSeq;
  std::unordered_map<std::string_view, MaildirFile*> byId;
  byId.reserve(files->size());
  for (auto& f : *files) byId.emplace(f.id, &f);
  out.messages.reserve(list.entries.size());
  for (const auto& e : list.entries) {
    auto it = byId.find(e.id);
    if (it == byId.end()) continue;  // vanished after the scan
    out.messages.push_back({e.uid, std::move(*it->second), e.modSeq});
  }
  return out;
}

// UIDs for messages this session just placed into dir (APPEND, COPY),
// with one new mod-sequence; tokens: the flagsToken of each file. A
// message another session has already seen keeps the UID it was given.
// sync Lazy: a batch appended to the log is not fdatasync'd here (the
// caller does it, off its loop, before it tells the client).
// A copy of the list kept by a folder state (MaildirFolderState::
// listForChange), used instead of reading the list when it is current.
struct CachedList {
  std::function<Result<UidList*>()> get;  // under the lock; nullptr: read it
  std::function<void(bool saved)> done;
};

Result<AppendedUids> assignUids(const std::string& root, const std::string& dir,
                                const std::vector<std::string>& ids,
                                const std::vector<std::string>& tokens,
                                uint64_t* modSeqOut = nullptr, const CachedList* cached = nullptr,
                                UidLogSync sync = UidLogSync::Durable) {
  for (int attempt = 0;; ++attempt) {
    auto lock = lockUidList(dir);
    if (!lock) return lock.error();
    Result<UidListRead> read = UidListRead{};
    UidList* cachedList = nullptr;
    if (cached) {
      auto c = cached->get();
      if (!c) return c.error();
      cachedList = *c;
    }
    if (!cachedList) {
      read = readUidList(dir);
      if (!read) return read.error();
    } else {
      read->state = UidListState::Ok;
    }
    bool saved = false;
    ScopeExit tell([&] {
      if (cachedList) cached->done(saved);
    });
    if (read->state != UidListState::Ok) {
      // No usable list yet: the full load (which sees every file, ours
      // included) builds it first.
      if (attempt == 1) return Error{"uid list of " + dir + " cannot be built", EIO};
      lock = Error{};
      auto loaded = loadFolder(root, dir, false);
      if (!loaded) return loaded.error();
      continue;
    }
    UidList& list = cachedList ? *cachedList : read->list;
    // A message another session has already given a UID (it listed the
    // folder between our link and now) keeps it.
    std::unordered_map<std::string_view, uint32_t> known;
    if (ids.size() > 4) {
      for (const auto& e : list.entries) known.emplace(e.id, e.uid);
    } else {
      for (const auto& id : ids)
        for (const auto& e : list.entries)
          if (e.id == id) known.emplace(e.id, e.uid);
    }
    AppendedUids out;
    out.uidValidity = list.uidValidity;
    auto modSeq = nextModSeq(list, dir);
    if (!modSeq) return modSeq.error();
    std::vector<uint32_t> added;
    for (size_t i = 0; i < ids.size(); ++i) {
      if (auto it = known.find(ids[i]); it != known.end()) {
        out.uids.push_back(it->second);
        continue;
      }
      if (list.uidNext == UINT32_MAX) return Error{"UID space exhausted in " + dir, EOVERFLOW};
      out.uids.push_back(list.uidNext);
      added.push_back(list.uidNext);
      list.entries.push_back({list.uidNext++, ids[i], *modSeq, i < tokens.size() ? tokens[i] : ""});
    }
    if (!added.empty()) {
      list.highestModSeq = *modSeq;
      if (auto st = saveUidListChange(dir, list, added, {}, sync); !st) return st.error();
    }
    saved = true;
    if (modSeqOut) *modSeqOut = *modSeq;
    return out;
  }
}

struct Shared {
  Shared(std::string r, std::shared_ptr<MaildirFolderStates> s)
      : root(std::move(r)), states(std::move(s)) {}
  std::string root;
  MaildirNameGenerator names;
  std::shared_ptr<MaildirFolderStates> states;
  // The process's shared directory and log syncs (the states' own); the
  // one member a commit thread uses.
  std::shared_ptr<FsyncBatcher> syncs;
};

bool sameTime(const struct timespec& a, const struct timespec& b) {
  return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec;
}

}  // namespace

// ---- the shared folder state ----

// One message of a folder as the mail process knows it (see
// MaildirFolderState). size and internalDate are filled on first need.
struct StateMessage {
  uint32_t uid = 0;
  uint64_t modSeq = 1;
  std::string fileName;          // "new/<name>" or "cur/<name>"
  uint64_t size = kUnknownSize;  // RFC822.SIZE
  int64_t internalDate = -1;     // the file's mtime
  uint64_t stamp = 0;            // the state's generation at its last change
  uint32_t writer = 0;           // the session that made that change (0: another writer)
  std::string_view name() const { return std::string_view(fileName).substr(4); }
  bool isNew() const { return fileName[0] == 'n'; }
};

// The one state of a folder in this process, shared by every session that
// has it selected (MaildirFolderStates hands it out by directory): the
// message list with UIDs, file names, sizes, dates and mod-sequences, the
// uid list's counters and the keyword letters. It is brought in step with
// the disk incrementally: an inotify descriptor on new/ and cur/ tells
// whether anything happened that this process did not do itself (every
// event is checked against the names the state holds), and only then is
// the folder listed again and diffed by name; the uid list is read only
// when that diff finds a change. Changes made through the sessions (STORE,
// EXPUNGE, APPEND, the new/ -> cur/ move) update it directly. Each change
// stamps the messages concerned with a new generation, so a session finds
// what changed since it last looked without a copy of the list.
class MaildirFolderState {
 public:
  static constexpr uint32_t kWatchMask =
      IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF;

  MaildirFolderState(std::string root, std::string dir)
      : root_(std::move(root)), dir_(std::move(dir)), sizes_(dir_) {}

  const std::string& dir() const { return dir_; }

  Status init() {
    struct stat cur;
    if (::stat((dir_ + "/cur").c_str(), &cur) == 0) {
      curDev_ = cur.st_dev;
      curIno_ = cur.st_ino;
    }
    fd_.reset(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC));
    if (fd_) {
      newWd_ = ::inotify_add_watch(fd_.get(), (dir_ + "/new").c_str(), kWatchMask);
      curWd_ = ::inotify_add_watch(fd_.get(), (dir_ + "/cur").c_str(), kWatchMask);
      if (newWd_ < 0 || curWd_ < 0) fd_.reset();
    }
    return relist();
  }

  // Brings the state in step with the disk: cheap when nothing happened
  // that this process did not do itself. force: list the folder again.
  Status refresh(bool force) {
    bool need = force || !loaded_ || unexplainedChanges();
    if (!need && fd_) {
      struct stat st;
      need = ::stat((dir_ + "/cur").c_str(), &st) != 0;  // folder renamed or deleted
    }
    if (!need) return {};
    return relist();
  }

  // Whether the folder's cur/ is still the directory this state watches
  // (not deleted and created again, or another folder renamed onto it).
  // With inotify, adding the watches again answers it: the same watch
  // descriptors while they still watch the same directories (inode
  // numbers may be reused).
  bool sameFolder() const {
    struct stat cur;
    if (::stat((dir_ + "/cur").c_str(), &cur) != 0 || cur.st_dev != curDev_ ||
        cur.st_ino != curIno_)
      return false;
    if (!fd_) return true;
    return ::inotify_add_watch(fd_.get(), (dir_ + "/new").c_str(), kWatchMask) == newWd_ &&
           ::inotify_add_watch(fd_.get(), (dir_ + "/cur").c_str(), kWatchMask) == curWd_;
  }
  size_t messageCount() const { return msgs_.size(); }
  bool hasSessions() const { return !acked_.empty(); }

  uint32_t uidValidity() const { return uidValidity_; }
  uint32_t uidNext() const { return uidNext_; }
  uint32_t firstRecent() const { return firstRecent_; }
  uint64_t highestModSeq() const { return highestModSeq_; }
  uint64_t generation() const { return generation_; }
  bool gone() const { return gone_; }
  const KeywordSlots& slots() const { return slots_; }
  void setSlots(KeywordSlots s) { slots_ = std::move(s); }
  std::vector<StateMessage>& messages() { return msgs_; }

  // The message with this UID, or nullptr.
  StateMessage* find(uint32_t uid) {
    auto it = std::lower_bound(msgs_.begin(), msgs_.end(), uid,
                               [](const StateMessage& m, uint32_t u) { return m.uid < u; });
    return it != msgs_.end() && it->uid == uid ? &*it : nullptr;
  }
  Flags flagsOf(const StateMessage& m) const {
    return m.isNew() ? Flags{} : flagsFromInfo(maildirFlags(m.name()), slots_);
  }
  // The system flags only (no keyword list built).
  static uint8_t systemFlagsOf(const StateMessage& m) {
    uint8_t out = 0;
    if (m.isNew()) return out;
    for (char c : maildirFlags(m.name()))
      for (const auto& l : kLetters)
        if (c == l.letter) out |= l.flag;
    return out;
  }

  // Fills m's size and internal date (ENOENT: the file is gone).
  Status meta(StateMessage& m) {
    if (auto st = sizeOf(m); !st) return st;
    if (m.internalDate >= 0) return {};
    struct stat st;
    const std::string path = dir_ + "/" + m.fileName;
    if (::lstat(path.c_str(), &st) != 0) return errnoError("stat " + path);
    m.internalDate = static_cast<int64_t>(st.st_mtime);
    return {};
  }
  // Fills m's size only: no stat when the name has W=, or S= and the size
  // cache knows the id.
  Status sizeOf(StateMessage& m) {
    if (m.size != kUnknownSize) return {};
    MaildirFile f;
    f.id = std::string(maildirId(m.name()));
    f.fileName = m.fileName;
    f.diskSize = maildirSizeFromName(m.name()).value_or(kUnknownSize);
    f.mtime = -1;  // set when size() has to stat the file
    auto size = sizes_.size(f);
    if (!size) return size.error();
    m.size = *size;
    if (f.mtime >= 0) m.internalDate = f.mtime;
    return {};
  }
  // Writes the size cache when meta() learnt something.
  void saveSizes() {
    sizes_.saveIf([&](std::string_view id, uint64_t) { return byId_.count(std::string(id)) > 0; });
  }

  // Session `writer` of this process renamed m's file (flags) and gave it
  // modSeq.
  void renamed(StateMessage& m, std::string fileName, uint64_t modSeq, uint32_t writer) {
    m.fileName = std::move(fileName);
    m.modSeq = modSeq;
    m.stamp = ++generation_;
    m.writer = writer;
    highestModSeq_ = std::max(highestModSeq_, modSeq);
  }
  void setHighestModSeq(uint64_t m) { highestModSeq_ = std::max(highestModSeq_, m); }

  // This process removed the files of these UIDs (or found them gone).
  void removed(const std::vector<uint32_t>& uids) {
    if (uids.empty()) return;
    std::unordered_set<uint32_t> gone(uids.begin(), uids.end());
    const uint64_t gen = ++generation_;
    for (auto& m : msgs_) {
      if (!gone.count(m.uid)) continue;
      byId_.erase(std::string(maildirId(m.name())));
      bury(std::move(m), gen);
    }
    msgs_.erase(std::remove_if(msgs_.begin(), msgs_.end(),
                               [&](const StateMessage& m) { return gone.count(m.uid) > 0; }),
                msgs_.end());
  }

  // ---- the sessions reading this state, for the expunged messages ----
  // A message removed from the list is kept as a tombstone (its last
  // flags, size, date, mod-sequence) until every session that had it has
  // reported its expunge (RFC 3501 §7.4.1: until then it keeps its
  // sequence number there, and a FETCH of its flags is still answered).
  // Each session says which generation it last acknowledged: it had
  // reported every removal up to it (a session that attaches later never
  // had the messages removed before).
  void attach(const void* session) { acked_[session] = generation_; }
  void detach(const void* session) {
    acked_.erase(session);
    prune();
  }
  void acknowledge(const void* session, uint64_t gen) {
    acked_[session] = gen;
    prune();
  }
  // The generation of the last removal from the list.
  uint64_t lastRemoval() const { return lastRemoval_; }
  // The tombstone of uid, or nullptr.
  StateMessage* tomb(uint32_t uid) {
    auto it = std::lower_bound(tombs_.begin(), tombs_.end(), uid,
                               [](const Tomb& t, uint32_t u) { return t.m.uid < u; });
    return it != tombs_.end() && it->m.uid == uid ? &it->m : nullptr;
  }
  size_t tombCount() const { return tombs_.size(); }

  // This process placed a message into the folder and gave it uid.
  void added(uint32_t uid, std::string fileName, uint64_t modSeq, uint64_t size, int64_t date) {
    if (!loaded_ || find(uid)) return;
    StateMessage m;
    m.uid = uid;
    m.modSeq = modSeq;
    m.fileName = std::move(fileName);
    m.size = size;
    m.internalDate = date;
    m.stamp = ++generation_;
    byId_[std::string(maildirId(m.name()))] = uid;
    auto at = std::lower_bound(msgs_.begin(), msgs_.end(), uid,
                               [](const StateMessage& x, uint32_t u) { return x.uid < u; });
    msgs_.insert(at, std::move(m));
    uidNext_ = std::max(uidNext_, uid + 1);
    highestModSeq_ = std::max(highestModSeq_, modSeq);
  }

  // A session of this process is placing a message as "cur/<name>" (an
  // APPEND: the file is linked on a worker thread and published here a
  // loop turn or more later, append_commit.hpp): its inotify event is not
  // another writer's change, and does not make the state list the folder.
  void expect(const std::string& fileName) { incoming_.insert(fileName); }
  void forget(const std::string& fileName) { incoming_.erase(fileName); }

  // Finds the files of the known messages again after another writer
  // renamed them, without the uid list (so: safe under its lock); nullptr
  // when uid's file is gone.
  Result<StateMessage*> relocate(uint32_t uid) {
    auto files = quickScan(dir_);
    if (!files) return files.error();
    bool found = false;
    for (auto& f : *files) {
      auto it = byId_.find(f.id);
      StateMessage* m = it == byId_.end() ? nullptr : find(it->second);
      if (!m) continue;
      if (m->fileName != f.fileName) {
        if (flagLetters(*m) != flagLetters(f.fileName)) {
          m->stamp = ++generation_;
          m->writer = 0;
        }
        m->fileName = std::move(f.fileName);
        hasNew_ = hasNew_ || m->isNew();
      }
      found = found || m->uid == uid;
    }
    return found ? find(uid) : nullptr;
  }

  // Dovecot's rule: a read-write session moves new/ to cur/ (no flag
  // change: the list's token is the same).
  void moveNewToCur() {
    if (!hasNew_) return;
    hasNew_ = false;
    for (auto& m : msgs_) {
      if (!m.isNew()) continue;
      std::string target = "cur/" + std::string(m.name()) + ":2,";
      if (::rename((dir_ + "/" + m.fileName).c_str(), (dir_ + "/" + target).c_str()) == 0)
        m.fileName = std::move(target);
    }
  }

  // The uid list as it is on disk, for a change under its lock (which the
  // caller holds): the copy this state read or saved last when neither the
  // list nor its log changed since (inode, size, mtime of both), else read
  // again. nullptr: no sound list of this UIDVALIDITY (being rebuilt).
  // A caller that changes the copy calls listSaved() after saving it, or
  // dropList() when it did not get that far.
  Result<UidList*> listForChange() {
    const ListStamp now = listStamp();
    if (list_ && now == listStamp_) return &*list_;
    list_.reset();
    auto read = readUidList(dir_);
    if (!read) return read.error();
    if (read->state != UidListState::Ok || read->list.uidValidity != uidValidity_)
      return static_cast<UidList*>(nullptr);
    list_ = std::move(read->list);
    listStamp_ = now;
    return &*list_;
  }
  void listSaved() { listStamp_ = listStamp(); }
  void dropList() { list_.reset(); }

  // Takes \Recent for a read-write session: returns [first, end) of the
  // UIDs it gets (empty when another session took them), recorded in the
  // uid list so that no other session or process gets them too. Not forced
  // to stable storage (UidLogSync::Lazy): a power cut may lose the claim,
  // and the messages are then \Recent once more for the next session,
  // which RFC 3501 allows; an fdatasync here cost the loop one wait for
  // the disk per message another session appended.
  Result<std::pair<uint32_t, uint32_t>> claimRecent() {
    const std::pair<uint32_t, uint32_t> none{uidNext_, uidNext_};
    if (firstRecent_ >= uidNext_) return none;
    auto lock = lockUidList(dir_);
    if (!lock) return lock.error();
    auto listp = listForChange();
    if (!listp) return listp.error();
    if (!*listp) return none;
    UidList& l = **listp;
    const uint32_t from = l.firstRecent, to = std::min(l.uidNext, uidNext_);
    if (from >= to) {
      firstRecent_ = std::max(firstRecent_, from);
      return none;
    }
    l.firstRecent = to;
    if (auto st = saveUidListChange(dir_, l, {}, {}, UidLogSync::Lazy); !st) {
      dropList();
      return st.error();
    }
    listSaved();
    firstRecent_ = to;
    return std::pair{from, to};
  }

 private:
  // Whether anything happened in new/ or cur/ that the state does not
  // already show (drains the inotify queue); without inotify, the
  // directory mtimes (one in the last second counting as "maybe changed").
  bool unexplainedChanges() {
    if (!fd_) {
      struct stat n, c;
      if (::stat((dir_ + "/new").c_str(), &n) != 0 || ::stat((dir_ + "/cur").c_str(), &c) != 0)
        return true;
      return unsure_ || !sameTime(n.st_mtim, newMtime_) || !sameTime(c.st_mtim, curMtime_);
    }
    bool unexplained = false;
    alignas(struct inotify_event) char buf[8192];
    for (;;) {
      ssize_t n = ::read(fd_.get(), buf, sizeof buf);
      if (n <= 0) break;
      for (size_t off = 0; off + sizeof(struct inotify_event) <= static_cast<size_t>(n);) {
        const auto* ev = reinterpret_cast<const struct inotify_event*>(buf + off);
        off += sizeof(struct inotify_event) + ev->len;
        if (unexplained) continue;
        const char* sub = ev->wd == newWd_ ? "new/" : ev->wd == curWd_ ? "cur/" : nullptr;
        if (!sub || ev->len == 0 ||
            (ev->mask & (IN_Q_OVERFLOW | IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))) {
          unexplained = true;
          continue;
        }
        std::string_view name(ev->name, ::strnlen(ev->name, ev->len));
        if (name.empty() || name[0] == '.') continue;  // not a message (quickScan skips it)
        const bool appeared = (ev->mask & (IN_CREATE | IN_MOVED_TO)) != 0;
        if (appeared && !incoming_.empty() && incoming_.count(std::string(sub).append(name)))
          continue;
        if (appeared != holds(sub, name)) unexplained = true;
      }
    }
    return unexplained;
  }

  // Whether the state has a message under "<sub><name>".
  bool holds(std::string_view sub, std::string_view name) {
    auto it = byId_.find(std::string(maildirId(name)));
    if (it == byId_.end()) return false;
    const StateMessage* m = find(it->second);
    return m && m->fileName.size() == sub.size() + name.size() &&
           m->fileName.compare(0, sub.size(), sub) == 0 &&
           m->fileName.compare(sub.size(), std::string::npos, name) == 0;
  }

  // Lists the folder; when the names differ from the state's, reads the
  // uid list (loadFolder: new files get UIDs) and merges it by UID.
  Status relist() {
    struct stat n, c;
    if (::stat((dir_ + "/new").c_str(), &n) != 0 || ::stat((dir_ + "/cur").c_str(), &c) != 0) {
      if (errno != ENOENT) return errnoError("stat " + dir_);
      // The folder was deleted (or renamed away): every message is gone.
      if (!msgs_.empty()) {
        const uint64_t gen = ++generation_;
        for (auto& m : msgs_) bury(std::move(m), gen);
      }
      msgs_.clear();
      byId_.clear();
      gone_ = true;
      unsure_ = true;
      return {};
    }
    gone_ = false;
    newMtime_ = n.st_mtim;
    curMtime_ = c.st_mtim;
    const int64_t now = static_cast<int64_t>(::time(nullptr));
    unsure_ = n.st_mtim.tv_sec >= now - 1 || c.st_mtim.tv_sec >= now - 1;
    if (loaded_) {
      auto files = quickScan(dir_);
      if (!files) return files.error();
      bool same = files->size() == msgs_.size();
      for (size_t i = 0; same && i < files->size(); ++i) {
        const MaildirFile& f = (*files)[i];
        auto it = byId_.find(f.id);
        const StateMessage* m = it == byId_.end() ? nullptr : find(it->second);
        same = m && m->fileName == f.fileName;
      }
      if (same) return {};
    }
    slots_ = readKeywords(dir_);
    auto loaded = loadFolder(root_, dir_, false);
    if (!loaded) return loaded.error();
    const uint64_t gen = ++generation_;
    if (loaded_ && loaded->uidValidity != uidValidity_) msgs_.clear();  // a new list: start over
    std::vector<StateMessage> next;
    next.reserve(loaded->messages.size());
    size_t j = 0;
    hasNew_ = false;
    for (auto& lm : loaded->messages) {
      while (j < msgs_.size() && msgs_[j].uid < lm.uid) {
        bury(std::move(msgs_[j++]), gen);  // gone from disk
      }
      StateMessage m;
      if (j < msgs_.size() && msgs_[j].uid == lm.uid) {
        m = std::move(msgs_[j++]);
        if (m.modSeq != lm.modSeq || flagLetters(m.fileName) != flagLetters(lm.file.fileName)) {
          m.stamp = gen;
          m.writer = 0;
        }
        m.modSeq = lm.modSeq;
        m.fileName = std::move(lm.file.fileName);
      } else {
        m.uid = lm.uid;
        m.modSeq = lm.modSeq;
        m.fileName = std::move(lm.file.fileName);
        m.stamp = gen;
      }
      hasNew_ = hasNew_ || m.isNew();
      next.push_back(std::move(m));
    }
    for (; j < msgs_.size(); ++j) bury(std::move(msgs_[j]), gen);
    msgs_ = std::move(next);
    byId_.clear();
    byId_.reserve(msgs_.size());
    for (const auto& m : msgs_) byId_.emplace(std::string(maildirId(m.name())), m.uid);
    uidValidity_ = loaded->uidValidity;
    uidNext_ = loaded->uidNext;
    firstRecent_ = loaded->firstRecent;
    highestModSeq_ = loaded->highestModSeq;
    loaded_ = true;
    return {};
  }

  struct ListStamp {
    ino_t listIno = 0, logIno = 0;
    off_t listSize = -1, logSize = -1;
    struct timespec listMtime {}, logMtime {};
    bool operator==(const ListStamp& o) const {
      return listIno == o.listIno && logIno == o.logIno && listSize == o.listSize &&
             logSize == o.logSize && sameTime(listMtime, o.listMtime) &&
             sameTime(logMtime, o.logMtime);
    }
  };
  ListStamp listStamp() const {
    ListStamp s;
    struct stat st;
    if (::stat((dir_ + "/" + kUidListFile).c_str(), &st) == 0) {
      s.listIno = st.st_ino;
      s.listSize = st.st_size;
      s.listMtime = st.st_mtim;
    }
    if (::stat((dir_ + "/" + kUidLogFile).c_str(), &st) == 0) {
      s.logIno = st.st_ino;
      s.logSize = st.st_size;
      s.logMtime = st.st_mtim;
    }
    return s;
  }

  // The flag letters of a file name ("new/..." has none).
  static std::string_view flagLetters(std::string_view fileName) {
    return fileName.size() < 4 || fileName[0] == 'n' ? std::string_view()
                                                    : maildirFlags(fileName.substr(4));
  }
  static std::string_view flagLetters(const StateMessage& m) { return flagLetters(m.fileName); }

  struct Tomb {
    StateMessage m;
    uint64_t gen = 0;  // the generation that removed it
  };
  void bury(StateMessage&& m, uint64_t gen) {
    lastRemoval_ = gen;
    if (acked_.empty()) return;  // no session had it
    auto it = std::lower_bound(tombs_.begin(), tombs_.end(), m.uid,
                               [](const Tomb& t, uint32_t u) { return t.m.uid < u; });
    if (it != tombs_.end() && it->m.uid == m.uid) return;
    tombs_.insert(it, Tomb{std::move(m), gen});
  }
  // Drops the tombstones every session has acknowledged.
  void prune() {
    if (tombs_.empty()) return;
    uint64_t low = UINT64_MAX;
    for (const auto& [session, gen] : acked_) low = std::min(low, gen);
    tombs_.erase(std::remove_if(tombs_.begin(), tombs_.end(),
                                [&](const Tomb& t) { return t.gen <= low; }),
                 tombs_.end());
    if (tombs_.empty()) tombs_.shrink_to_fit();
  }

  std::string root_, dir_;
  SizeCache sizes_;
  std::optional<UidList> list_;  // see listForChange()
  ListStamp listStamp_;
  UniqueFd fd_;
  int newWd_ = -1, curWd_ = -1;
  dev_t curDev_ = 0;
  ino_t curIno_ = 0;
  bool loaded_ = false, gone_ = false, hasNew_ = false, unsure_ = true;
  struct timespec newMtime_ {};
  struct timespec curMtime_ {};
  uint32_t uidValidity_ = 0, uidNext_ = 1, firstRecent_ = 1;
  uint64_t highestModSeq_ = 1;
  uint64_t generation_ = 0;
  KeywordSlots slots_;
  std::vector<StateMessage> msgs_;                    // ascending UID
  std::vector<Tomb> tombs_;                           // ascending UID
  std::unordered_map<const void*, uint64_t> acked_;   // session -> generation
  uint64_t lastRemoval_ = 0;
  std::unordered_map<std::string, uint32_t> byId_;    // Maildir id -> UID
  std::unordered_set<std::string> incoming_;          // see expect()
};

// The folder states of one process, by directory. A state lives as long
// as a session has its folder selected, and then lingers a while (at most
// kLingerSeconds, kLingerFolders folders, kLingerMessages messages in all,
// the most recently released kept) so that a client that logs out and in
// again, or selects another folder and comes back, does not load the list
// again: inotify keeps telling it what changed meanwhile.
class MaildirFolderStates {
 public:
  static constexpr int64_t kLingerSeconds = 30;
  static constexpr size_t kLingerFolders = 4;
  static constexpr size_t kLingerMessages = 40000;

  explicit MaildirFolderStates(std::shared_ptr<WatchPool> watches)
      : watches_(watches ? std::move(watches) : std::make_shared<WatchPool>()) {}

  // The state of dir (in use or lingering), or nullptr. A state whose
  // folder was replaced on disk is dropped.
  std::shared_ptr<MaildirFolderState> find(const std::string& dir) {
    expire();
    auto it = map_.find(dir);
    if (it == map_.end()) return nullptr;
    auto s = it->second.lock();
    if (s && !s->sameFolder()) {
      map_.erase(it);
      std::erase_if(lingering_, [&](const Lingering& l) { return l.state == s; });
      return nullptr;
    }
    return s;
  }
  Result<std::shared_ptr<MaildirFolderState>> acquire(const std::string& root,
                                                      const std::string& dir) {
    if (auto s = find(dir)) {
      // In use again: no longer lingering (release() puts it back).
      std::erase_if(lingering_, [&](const Lingering& l) { return l.state == s; });
      return s;
    }
    for (auto it = map_.begin(); it != map_.end();) it = it->second.expired() ? map_.erase(it) : ++it;
    auto s = std::make_shared<MaildirFolderState>(root, dir);
    if (auto st = s->init(); !st) return st.error();
    map_[dir] = s;
    return s;
  }
  // A session is done with the state: it lingers when no other holds it.
  void release(std::shared_ptr<MaildirFolderState> s) {
    if (!s) return;
    std::erase_if(lingering_, [&](const Lingering& l) { return l.state == s; });
    if (s->hasSessions()) return;
    lingering_.push_back({static_cast<int64_t>(::time(nullptr)), std::move(s)});
    expire();
  }
  size_t lingering() const { return lingering_.size(); }
  const std::shared_ptr<FsyncBatcher>& syncs() const { return syncs_; }

  // The process's kept inotify descriptors (watch_pool.hpp), shared with
  // its mbox stores.
  WatchPool& watches() { return *watches_; }

 private:
  struct Lingering {
    int64_t since;
    std::shared_ptr<MaildirFolderState> state;
  };
  // Drops lingering states past their time or beyond the bounds (oldest first).
  void expire() {
    const int64_t now = static_cast<int64_t>(::time(nullptr));
    size_t messages = 0;
    for (const auto& l : lingering_) messages += l.state->messageCount();
    while (!lingering_.empty() &&
           (lingering_.front().since + kLingerSeconds < now ||
            lingering_.size() > kLingerFolders || messages > kLingerMessages)) {
      messages -= lingering_.front().state->messageCount();
      lingering_.erase(lingering_.begin());
    }
  }

  std::unordered_map<std::string, std::weak_ptr<MaildirFolderState>> map_;
  std::vector<Lingering> lingering_;  // oldest first
  std::shared_ptr<WatchPool> watches_;
  // Thread-safe (the only part of this class that is): APPEND commits of
  // every store of the process share their directory and log syncs.
  std::shared_ptr<FsyncBatcher> syncs_ = std::make_shared<FsyncBatcher>();
};

std::shared_ptr<MaildirFolderStates> makeMaildirFolderStates(std::shared_ptr<WatchPool> watches) {
  return std::make_shared<MaildirFolderStates>(std::move(watches));
}

size_t lingeringFolderStates(const MaildirFolderStates& states) { return states.lingering(); }

namespace {

// ---- the selected mailbox ----

// One session's view: what RFC 3501 keeps per session and nothing else —
// the UIDs of the sequence numbers it has told of (4 octets a message;
// a message expunged elsewhere keeps its number until a sync(true)
// reports it) and its \Recent UID ranges. Flags, sizes, dates and
// mod-sequences are read from the shared state (MaildirFolderState) on
// each access; a message the state no longer lists is expunged, and its
// last data is the state's tombstone until this session acknowledges the
// removal at its next sync(true).
class MaildirImapMailbox final : public ImapMailbox {
 public:
  MaildirImapMailbox(std::shared_ptr<Shared> shared, std::string dir, bool readOnly)
      : shared_(std::move(shared)), dir_(std::move(dir)), readOnly_(readOnly) {}
  ~MaildirImapMailbox() override {
    shared_->states->watches().keep(std::move(wake_));
    if (!state_) return;
    state_->detach(this);
    shared_->states->release(std::move(state_));
  }
  MaildirImapMailbox(const MaildirImapMailbox&) = delete;
  MaildirImapMailbox& operator=(const MaildirImapMailbox&) = delete;

  Status init() {
    auto state = shared_->states->acquire(shared_->root, dir_);
    if (!state) return state.error();
    state_ = std::move(*state);
    state_->attach(this);
    wake_ = shared_->states->watches().take({dir_ + "/new", dir_ + "/cur"},
                                            IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE);
    auto r = refresh(true);
    if (!r) return r.error();
    return {};
  }

  uint32_t uidValidity() const override { return uidValidity_; }
  uint32_t uidNext() const override { return uidNext_; }
  uint64_t highestModSeq() const override { return highestModSeq_; }
  bool readOnly() const override { return readOnly_; }
  std::vector<std::string> keywords() const override {
    std::vector<std::string> out;
    for (const auto& k : state_->slots())
      if (!k.empty()) out.push_back(k);
    return out;
  }
  bool canCreateKeywords() const override {
    return !readOnly_ && usedSlots(state_->slots()) < kMaxKeywords;
  }
  size_t messageCount() const override { return uids_.size(); }
  uint32_t uidAt(size_t i) const override { return uids_[i]; }
  MessageInfo messageAt(size_t i) const override {
    MessageInfo v;
    v.uid = uids_[i];
    v.recent = isRecent(v.uid);
    StateMessage* m = lookup(i, v.expunged);
    if (!m) return v;
    v.flags = state_->flagsOf(*m);
    v.modSeq = m->modSeq;
    if (!v.expunged) (void)state_->meta(*m);  // a file gone meanwhile: what is known
    if (m->size != kUnknownSize) v.size = m->size;
    if (m->internalDate >= 0) v.internalDate = m->internalDate;
    return v;
  }
  MessageBrief briefAt(size_t i) const override {
    MessageBrief b;
    b.uid = uids_[i];
    b.recent = isRecent(b.uid);
    if (const StateMessage* m = lookup(i, b.expunged)) {
      b.system = MaildirFolderState::systemFlagsOf(*m);
      b.modSeq = m->modSeq;
    }
    return b;
  }
  uint32_t recentCount() const override { return recentCount_; }
  size_t sessionBytes() const override {
    return sizeof(*this) + uids_.capacity() * sizeof(uint32_t) +
           recent_.capacity() * sizeof(recent_[0]) + dir_.capacity();
  }
  Result<MailboxChanges> sync(bool allowExpunge) override { return refresh(allowExpunge); }
  Result<std::unique_ptr<MessageReader>> open(size_t index) override;
  Status setFlags(const std::vector<size_t>& indexes, FlagOp op, const Flags& flags) override {
    auto r = changeFlags(indexes, op, flags, std::nullopt);
    if (!r) return r.error();
    return {};
  }
  Result<std::vector<size_t>> setFlagsUnchangedSince(const std::vector<size_t>& indexes, FlagOp op,
                                                     const Flags& flags,
                                                     uint64_t unchangedSince) override {
    return changeFlags(indexes, op, flags, unchangedSince);
  }
  Status expunge(const std::vector<size_t>& indexes) override;
  Result<CopiedUids> copy(const std::vector<size_t>& indexes, const std::string& dest,
                          bool move) override;
  int changeFd() const override { return wake_.fd(); }
  void drainChangeFd() override { wake_.drain(); }

 private:
  Result<MailboxChanges> refresh(bool allowExpunge);
  // The state's message (or tombstone: expunged = true) of view index i;
  // nullptr when neither is left.
  StateMessage* lookup(size_t i, bool& expunged) const {
    const uint32_t uid = uids_[i];
    auto& msgs = state_->messages();
    // Nothing expunged before i since this session's last report: the
    // same index.
    if (i < msgs.size() && msgs[i].uid == uid) return &msgs[i];
    // Otherwise the state has lost the messages expunged meanwhile, fewer
    // before each later index: the shift found last is tried first (a
    // walk over the folder then costs no binary search per message).
    if (shift_ <= i && i - shift_ < msgs.size() && msgs[i - shift_].uid == uid)
      return &msgs[i - shift_];
    if (StateMessage* m = state_->find(uid)) {
      const auto at = static_cast<size_t>(m - msgs.data());
      shift_ = at <= i ? i - at : 0;
      return m;
    }
    expunged = true;
    return state_->tomb(uid);
  }
  bool live(size_t i) const {
    bool expunged = false;
    return lookup(i, expunged) && !expunged;
  }
  bool isRecent(uint32_t uid) const {
    // recent_ is sorted and disjoint (ranges are added past the last UID
    // seen): a binary search, as sessions that share a folder with writers
    // collect thousands of ranges.
    auto it = std::upper_bound(recent_.begin(), recent_.end(), uid,
                               [](uint32_t u, const std::pair<uint32_t, uint32_t>& r) {
                                 return u < r.first;
                               });
    return it != recent_.begin() && uid < std::prev(it)->second;
  }
  // The state's message of view index i, looked for again on disk when its
  // file is not where the state thought (renamed by another process);
  // nullptr when it is gone.
  Result<StateMessage*> locate(size_t i, bool again) {
    if (again) return state_->relocate(uids_[i]);
    bool expunged = false;
    StateMessage* m = lookup(i, expunged);
    return expunged ? nullptr : m;
  }
  Status checkIndexes(const std::vector<size_t>& indexes) const {
    for (size_t i : indexes)
      if (i >= uids_.size()) return Error{"no such message", EINVAL};
    return {};
  }
  Status removeFiles(const std::vector<size_t>& indexes);
  // setFlags, and with unchangedSince the conditional STORE: the test, the
  // renames and the new mod-sequences all under the uid list's lock.
  Result<std::vector<size_t>> changeFlags(const std::vector<size_t>& indexes, FlagOp op,
                                          const Flags& flags,
                                          std::optional<uint64_t> unchangedSince);

  static uint32_t nextSessionId() {
    static std::atomic<uint32_t> next{1};
    return next++;
  }

  std::shared_ptr<Shared> shared_;
  std::string dir_;
  bool readOnly_;
  std::shared_ptr<MaildirFolderState> state_;
  Watch wake_;  // changeFd(), from and back to the states' WatchPool
  const uint32_t id_ = nextSessionId();  // StateMessage::writer of our own changes
  uint32_t uidValidity_ = 0;
  uint32_t uidNext_ = 1;
  uint32_t maxUid_ = 0;
  uint64_t highestModSeq_ = 0;
  uint64_t seen_ = 0;     // the state's generation this view was last merged with
  uint64_t acked_ = 0;    // the state's generation of the last sync(true)
  std::vector<uint32_t> uids_;                        // sequence number - 1 -> UID
  mutable size_t shift_ = 0;  // lookup(): view index - state index, last found
  std::vector<std::pair<uint32_t, uint32_t>> recent_;  // \Recent: [from, to) UIDs
  // The view's messages in recent_, kept by refresh() (counting them on
  // each EXISTS walked thousands of ranges per APPEND of another session).
  uint32_t recentCount_ = 0;
};

Result<MailboxChanges> MaildirImapMailbox::refresh(bool allowExpunge) {
  MailboxChanges ch;
  if (auto st = state_->refresh(false); !st) return st.error();
  if (!state_->gone()) {
    if (uidValidity_ != 0 && state_->uidValidity() != uidValidity_)
      return Error{"UIDVALIDITY of " + dir_ + " changed", ESTALE};
    uidValidity_ = state_->uidValidity();
  }
  // \Recent: a read-write session takes what no one has taken; a
  // read-only one shows what is still untaken without taking it.
  uint32_t recentFrom = state_->firstRecent(), recentEnd = UINT32_MAX;
  if (!readOnly_ && !state_->gone()) {
    state_->moveNewToCur();
    auto claim = state_->claimRecent();
    if (!claim) return claim.error();
    recentFrom = claim->first;
    recentEnd = claim->second;
  }
  const auto& msgs = state_->messages();
  if (state_->generation() != seen_) {
    // Flag changes by others: both ascending by UID, one merge.
    size_t j = 0;
    for (size_t i = 0; i < uids_.size() && j < msgs.size(); ++i) {
      while (j < msgs.size() && msgs[j].uid < uids_[i]) ++j;
      if (j == msgs.size()) break;
      const StateMessage& m = msgs[j];
      if (m.uid == uids_[i] && m.stamp > seen_ && m.writer != id_) ch.flagsChanged.push_back(i);
    }
    // New messages: the state's past the last UID this view has.
    auto it = std::upper_bound(msgs.begin(), msgs.end(), maxUid_,
                               [](uint32_t u, const StateMessage& m) { return u < m.uid; });
    if (it != msgs.end()) {
      const uint32_t before = maxUid_;
      const size_t firstNew = uids_.size();
      uids_.reserve(uids_.size() + static_cast<size_t>(msgs.end() - it));
      for (; it != msgs.end(); ++it) uids_.push_back(it->uid);
      maxUid_ = uids_.back();
      ch.existsChanged = true;
      const uint32_t from = std::max(recentFrom, before + 1);
      const uint32_t to = static_cast<uint32_t>(
          std::min<uint64_t>(recentEnd, static_cast<uint64_t>(maxUid_) + 1));
      if (from < to) {
        if (!recent_.empty() && recent_.back().second == from)
          recent_.back().second = to;
        else
          recent_.emplace_back(from, to);
        // Only new UIDs are >= from.
        const auto tail = uids_.begin() + static_cast<std::ptrdiff_t>(firstNew);
        recentCount_ += static_cast<uint32_t>(std::lower_bound(tail, uids_.end(), to) -
                                              std::lower_bound(tail, uids_.end(), from));
      }
    }
    seen_ = state_->generation();
  }
  uidNext_ = std::max(state_->uidNext(), maxUid_ + 1);
  highestModSeq_ = state_->highestModSeq();
  if (!allowExpunge) return ch;
  if (state_->lastRemoval() > acked_) {
    // Messages of the view the state no longer lists: reported now.
    std::vector<size_t> remap(uids_.size());
    size_t kept = 0, j = 0;
    for (size_t i = 0; i < uids_.size(); ++i) {
      while (j < msgs.size() && msgs[j].uid < uids_[i]) ++j;
      const bool gone = j == msgs.size() || msgs[j].uid != uids_[i];
      remap[i] = gone ? SIZE_MAX : kept;
      if (!gone) {
        uids_[kept++] = uids_[i];
      } else {
        ch.expungedUids.push_back(uids_[i]);
        if (isRecent(uids_[i])) --recentCount_;
      }
    }
    if (!ch.expungedUids.empty()) {
      for (size_t i = remap.size(); i-- > 0;)
        if (remap[i] == SIZE_MAX) ch.expunged.push_back(static_cast<uint32_t>(i + 1));
      std::reverse(ch.expungedUids.begin(), ch.expungedUids.end());
      std::vector<size_t> flags;
      for (size_t i : ch.flagsChanged)
        if (remap[i] != SIZE_MAX) flags.push_back(remap[i]);
      ch.flagsChanged = std::move(flags);
      uids_.resize(kept);
      if (uids_.capacity() > 2 * kept + 64) uids_.shrink_to_fit();
    }
  }
  acked_ = state_->generation();
  state_->acknowledge(this, acked_);
  return ch;
}

Result<std::unique_ptr<MessageReader>> MaildirImapMailbox::open(size_t index) {
  if (index >= uids_.size()) return Error{"no such message", EINVAL};
  if (!live(index)) return Error{"message expunged", ENOENT};
  for (int attempt = 0; attempt < 2; ++attempt) {
    auto m = locate(index, attempt > 0);
    if (!m) return m.error();
    if (!*m) return Error{"message expunged", ENOENT};
    std::string path = dir_ + "/" + (*m)->fileName;
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (fd) return fileReader(std::move(fd));
    if (errno != ENOENT || attempt == 1) return errnoError("open " + path);
  }
  return Error{"unreachable", EIO};
}

Result<std::vector<size_t>> MaildirImapMailbox::changeFlags(
    const std::vector<size_t>& indexes, FlagOp op, const Flags& flags,
    std::optional<uint64_t> unchangedSince) {
  if (readOnly_) return Error{"mailbox is read-only", EROFS};
  if (auto st = checkIndexes(indexes); !st) return st.error();
  if (op != FlagOp::Remove) {
    auto slots = defineKeywords(dir_, flags);  // takes the lock itself
    if (!slots) return slots.error();
    state_->setSlots(std::move(*slots));
  }
  const KeywordSlots& slots = state_->slots();
  auto lock = lockUidList(dir_);
  if (!lock) return lock.error();
  // Without a sound list of ours (being rebuilt: the next sync fails with
  // ESTALE) the flags still change; the mod-sequences cannot.
  auto listp = state_->listForChange();
  if (!listp) return listp.error();
  UidList* list = *listp;
  bool done = false;
  ScopeExit keep([&] {
    if (!done) state_->dropList();  // the copy may hold changes not saved
  });
  uint64_t modSeq = 0;
  if (list) {
    auto n = nextModSeq(*list, dir_);
    if (!n) return n.error();
    modSeq = *n;
  }
  std::vector<size_t> failed;
  std::vector<uint32_t> touched;  // entries for the change log
  bool listChanged = false;
  for (size_t i : indexes) {
    auto located = locate(i, false);
    if (!located) return located.error();
    StateMessage* m = *located;
    if (!m) continue;  // gone: the next sync reports it
    UidEntry* entry = list ? findEntry(*list, uids_[i]) : nullptr;
    if (unchangedSince) {
      // The message's mod-sequence now: the list's, or a newer one still to
      // come when its file was renamed behind the list.
      struct stat st;
      if (::lstat((dir_ + "/" + m->fileName).c_str(), &st) != 0 && errno == ENOENT) {
        auto r = locate(i, true);
        if (!r) return r.error();
        if (!*r) continue;
        m = *r;
      }
      uint64_t current = m->modSeq;
      if (entry) {
        current = std::max(current, entry->modSeq);
        if (!entry->flags.empty() && entry->flags != nameToken(m->fileName)) current = UINT64_MAX;
      }
      if (current > *unchangedSince) {
        failed.push_back(i);
        continue;
      }
    }
    Flags next = applyFlags(state_->flagsOf(*m), op, flags, slots);
    bool changed = false;
    std::string fileName = m->fileName;
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::string_view name = std::string_view(fileName).substr(4);
      std::string target = "cur/" + std::string(maildirBase(name)) + ":2," +
                           infoFor(next, maildirFlags(name), slots);
      if (target == fileName) break;
      if (::rename((dir_ + "/" + fileName).c_str(), (dir_ + "/" + target).c_str()) == 0) {
        changed = nameToken(fileName) != nameToken(target);
        fileName = std::move(target);
        break;
      }
      if (errno != ENOENT || attempt == 1) return errnoError("rename " + dir_ + "/" + fileName);
      auto r = locate(i, true);
      if (!r) return r.error();
      if (!*r) break;  // gone: the next sync reports it
      m = *r;
      fileName = m->fileName;
    }
    uint64_t newModSeq = m->modSeq;
    if (entry) {
      // A new mod-sequence when we changed the letters, or when they had
      // changed behind the list before we came.
      std::string token = nameToken(fileName);
      if (changed || (!entry->flags.empty() && entry->flags != token)) {
        entry->modSeq = modSeq;
        listChanged = true;
        touched.push_back(entry->uid);
      } else if (entry->flags != token) {
        listChanged = true;
        touched.push_back(entry->uid);
      }
      entry->flags = std::move(token);
      newModSeq = entry->modSeq;
    }
    if (fileName != m->fileName || newModSeq != m->modSeq)
      state_->renamed(*m, std::move(fileName), newModSeq, id_);
  }
  // A flag change is not forced to stable storage before the OK (as
  // Dovecot's default mail_fsync = optimized): no directory fsync after the
  // renames, no fdatasync of the log batch. A rename is atomic, so no
  // message can be lost by it; a power cut may lose the change itself (the
  // next load then finds the letters the disk has). New messages and
  // expunges stay durable.
  if (listChanged) {
    list->highestModSeq = std::max(list->highestModSeq, modSeq);
    if (auto st = saveUidListChange(dir_, *list, touched, {}, UidLogSync::Lazy); !st)
      return st.error();
    state_->listSaved();
    state_->setHighestModSeq(list->highestModSeq);
    highestModSeq_ = std::max(highestModSeq_, list->highestModSeq);
  }
  done = true;
  std::sort(failed.begin(), failed.end());
  failed.erase(std::unique(failed.begin(), failed.end()), failed.end());
  return failed;
}

Status MaildirImapMailbox::removeFiles(const std::vector<size_t>& indexes) {
  bool any = false;
  std::vector<uint32_t> uids;

  for (size_t i : indexes) {
    if (!live(i)) continue;
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto m = locate(i, attempt > 0);
      if (!m) return m.error();
      if (!*m) break;  // already gone
      // Size and date known before the file goes: the sessions that have
      // not reported the expunge yet may still FETCH them.
      (void)state_->meta(**m);
      std::string path = dir_ + "/" + (*m)->fileName;
      if (::unlink(path.c_str()) == 0) {
        any = true;
        uids.push_back(uids_[i]);
        break;
      }
      if (errno != ENOENT) return errnoError("unlink " + path);
    }
    // Out of the state in any case (unlinked, or already gone).
    if (uids.empty() || uids.back() != uids_[i]) uids.push_back(uids_[i]);
  }
  state_->removed(uids);
  if (!any) return {};
  for (const char* sub : {"/cur", "/new"})
    if (auto st = fsyncDir(dir_ + sub); !st) return st;
  // The uid list loses the entries and takes a new HIGHESTMODSEQ (RFC 7162
  // §3.1.2: an expunge is a change).
  auto lock = lockUidList(dir_);
  if (!lock) return lock.error();
  auto listp = state_->listForChange();
  if (!listp) return listp.error();
  if (!*listp) return {};
  UidList& list = **listp;
  auto modSeq = nextModSeq(list, dir_);
  if (!modSeq) return modSeq.error();
  std::unordered_set<uint32_t> gone(uids.begin(), uids.end());
  list.entries.erase(std::remove_if(list.entries.begin(), list.entries.end(),
                                    [&](const UidEntry& e) { return gone.count(e.uid) > 0; }),
                     list.entries.end());
  list.highestModSeq = *modSeq;
  if (auto st = saveUidListChange(dir_, list, {}, uids); !st) {
    state_->dropList();
    return st;
  }
  state_->listSaved();
  state_->setHighestModSeq(*modSeq);
  highestModSeq_ = std::max(highestModSeq_, *modSeq);
  return {};
}

Status MaildirImapMailbox::expunge(const std::vector<size_t>& indexes) {
  if (readOnly_) return Error{"mailbox is read-only", EROFS};
  if (auto st = checkIndexes(indexes); !st) return st;
  return removeFiles(indexes);
}

// Places a copy of the file at src into dest's cur/ under a new unique
// name (link, or a byte copy when link is refused). Returns the new id.
Result<std::string> placeCopy(Shared& shared, const std::string& src, const std::string& dest,
                              uint64_t crlfSize, const std::string& info) {
  struct stat st;
  if (::lstat(src.c_str(), &st) != 0) return errnoError("stat " + src);
  const auto diskSize = static_cast<uint64_t>(st.st_size);
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string base = shared.names.next();
    std::string name =
        base + ",S=" + std::to_string(diskSize) + ",W=" + std::to_string(crlfSize) + ":2," + info;
    std::string target = dest + "/cur/" + name;
    if (::link(src.c_str(), target.c_str()) == 0) return base;
    if (errno == EEXIST) continue;
    if (errno != EXDEV && errno != EPERM && errno != EMLINK) return errnoError("link " + target);
    // Byte copy through tmp/.
    std::string tmp = dest + "/tmp/" + base;
    UniqueFd in(::open(src.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (!in) return errnoError("open " + src);
    UniqueFd out(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) {
      if (errno == EEXIST) continue;
      return errnoError("create " + tmp);
    }
    ScopeExit cleanup([&] { ::unlink(tmp.c_str()); });
    std::string buf(kReadChunk, '\0');
    for (;;) {
      ssize_t n = ::read(in.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errnoError("read " + src);
      if (n == 0) break;
      if (auto w = writeAll(out.get(), std::string_view(buf.data(), static_cast<size_t>(n))); !w)
        return w.error();
    }
    struct timespec times[2] = {st.st_mtim, st.st_mtim};
    if (::futimens(out.get(), times) != 0) return errnoError("futimens " + tmp);
    if (::fsync(out.get()) != 0) return errnoError("fsync " + tmp);
    if (::link(tmp.c_str(), target.c_str()) != 0) {
      if (errno == EEXIST) continue;
      return errnoError("link " + target);
    }
    return base;
  }
  return Error{"no unique name in " + dest, EEXIST};
}

Result<CopiedUids> MaildirImapMailbox::copy(const std::vector<size_t>& indexes,
                                            const std::string& destName, bool move) {
  if (move && readOnly_) return Error{"mailbox is read-only", EROFS};
  if (auto st = checkIndexes(indexes); !st) return st.error();
  auto dest = maildirStorePath(shared_->root, destName);
  if (!dest) return dest.error();
  if (!isDir(*dest) || !isDir(*dest + "/cur")) return Error{"no such mailbox: " + destName, ENOENT};
  std::vector<size_t> order = indexes;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return uids_[a] < uids_[b]; });
  order.erase(std::unique(order.begin(), order.end()), order.end());
  Flags all;
  std::vector<Flags> flagsOf(order.size());
  for (size_t k = 0; k < order.size(); ++k) {
    bool expunged = false;
    if (const StateMessage* m = lookup(order[k], expunged)) flagsOf[k] = state_->flagsOf(*m);
    for (const auto& kw : flagsOf[k].keywords) all.keywords.push_back(kw);
  }
  auto destSlots = defineKeywords(*dest, all);
  if (!destSlots) return destSlots.error();
  if (auto destState = shared_->states->find(*dest)) destState->setSlots(*destSlots);
  std::vector<std::string> newIds, newTokens;
  std::vector<size_t> copied;
  CopiedUids out;
  for (size_t k = 0; k < order.size(); ++k) {
    const size_t i = order[k];
    if (!live(i)) continue;
    const std::string info = infoFor(flagsOf[k], "", *destSlots);
    Result<std::string> id = Error{"", ENOENT};
    for (int attempt = 0; attempt < 2; ++attempt) {
      auto m = locate(i, attempt > 0);
      if (!m) return m.error();
      if (!*m) break;
      if (auto st = state_->sizeOf(**m); !st) {
        id = st.error();
        continue;
      }
      id = placeCopy(*shared_, dir_ + "/" + (*m)->fileName, *dest, (*m)->size, info);
      if (id || id.error().errnum != ENOENT) break;
    }
    if (!id) {
      if (id.error().errnum == ENOENT) continue;  // expunged by someone else
      return id.error();
    }
    newIds.push_back(std::move(*id));
    newTokens.push_back(flagsToken(info));
    out.sourceUids.push_back(uids_[i]);
    copied.push_back(i);
  }
  if (!newIds.empty())
    if (auto st = fsyncDir(*dest + "/cur"); !st) return st.error();
  auto uids = assignUids(shared_->root, *dest, newIds, newTokens);
  if (!uids) return uids.error();
  out.uidValidity = uids->uidValidity;
  out.destUids = std::move(uids->uids);
  if (move)
    if (auto st = removeFiles(copied); !st) return st.error();
  return out;
}

// ---- APPEND ----

// The commit in five steps (mail_store.hpp, CommitStep; mrad's loop runs
// the Loop ones, a worker thread the Blocking ones):
//  1. prepare (Loop): the keywords file (new keywords defined), the file
//     name with its sizes and flags; the folder state, when a session of
//     this process has the folder, is told to expect that name in cur/.
//  2. place (Blocking): the file in tmp/ created and written when the
//     message was held in memory (see below), the internal date
//     (futimens), fsync of the file, link into cur/ under that name, the
//     tmp/ name removed, fsync of cur/. A name already taken (EEXIST) sends
//     it back to 1 for another.
//  3. publish (Loop): the UID from the uid list (the state's copy of it
//     when it has one), its batch appended to the log without fdatasync.
//  4. sync (Blocking): fdatasync of the log, so that the UID the client is
//     told survives a crash as the message does.
//  5. announce (Loop): the state gets the message; the other sessions of
//     the process see it from their next sync on, never before its UID is
//     on disk.
// commit() runs the five in a row. Nothing here touches the folder state
// or the store's other objects off the loop: a Blocking step uses only the
// transaction's own file and paths.
//
// The file in tmp/ is created only once the message passes kHoldInMemory
// octets: a smaller one is held and written in step 2. Creating a file can
// cost far more than writing 4 KB to it (ext4 looks for a free inode past
// the recently deleted ones: half of the mail process's CPU under an
// APPEND and EXPUNGE load), and step 2 runs off the loop.
class MaildirAppend final : public AppendTransaction {
 public:
  static constexpr size_t kHoldInMemory = 128 * 1024;

  MaildirAppend(std::shared_ptr<Shared> shared, std::string dir, std::string base)
      : shared_(std::move(shared)), dir_(std::move(dir)), id_(std::move(base)) {}
  // On the loop thread (append_commit.hpp).
  ~MaildirAppend() override {
    // A message with its UID whose log sync failed is in the folder all
    // the same: the state shows it.
    if (phase_ == Phase::Failed && !uids_.uids.empty()) (void)announce();
    if (state_) state_->forget(expected_);
    if (!placed_ && !tmp_.empty()) ::unlink(tmp_.c_str());
  }
  MaildirAppend(const MaildirAppend&) = delete;
  MaildirAppend& operator=(const MaildirAppend&) = delete;

  Status write(std::string_view bytes) override {
    if (phase_ != Phase::Writing) return Error{"append already finished", EINVAL};
    if (!fd_ && held_.size() + bytes.size() <= kHoldInMemory) {
      held_.append(bytes);
    } else {
      if (!fd_) {
        if (auto st = createTmp(); !st) return st;  // large: on the loop, as it comes
      }
      if (auto st = writeAll(fd_.get(), bytes); !st) return st;
    }
    counter_.feed(bytes);
    size_ += bytes.size();
    return {};
  }

  Result<AppendedUids> commit(const Flags& flags, int64_t internalDate) override {
    startCommit(flags, internalDate);
    while (nextStep() != CommitStep::Done)
      if (auto st = runStep(); !st) return st.error();
    return committedUids();
  }

  void startCommit(const Flags& flags, int64_t internalDate) override {
    if (phase_ != Phase::Writing) {
      phase_ = Phase::Refused;
      return;
    }
    flags_ = flags;
    date_ = internalDate ? internalDate : static_cast<int64_t>(::time(nullptr));
    phase_ = Phase::Prepare;
  }
  CommitStep nextStep() const override {
    switch (phase_) {
      case Phase::Prepare:
      case Phase::Publish:
      case Phase::Announce:
      case Phase::Refused:
        return CommitStep::Loop;
      case Phase::Place:
      case Phase::Sync:
        return CommitStep::Blocking;
      default:
        return CommitStep::Done;
    }
  }
  Status runStep() override {
    Status st;
    switch (phase_) {
      case Phase::Prepare: st = prepare(); break;
      case Phase::Place: st = place(); break;
      case Phase::Publish: st = publish(); break;
      case Phase::Sync: st = syncLog(); break;
      case Phase::Announce: st = announce(); break;
      default: st = Error{"append already finished", EINVAL}; break;
    }
    if (!st) phase_ = Phase::Failed;
    return st;
  }
  AppendedUids committedUids() const override { return uids_; }

 private:
  enum class Phase : uint8_t {
    Writing, Prepare, Place, Publish, Sync, Announce, Done, Failed, Refused,
  };

  Status prepare() {
    if (!isDir(dir_ + "/cur")) return Error{"mailbox deleted", ENOENT};
    auto slots = defineKeywords(dir_, flags_);
    if (!slots) return slots.error();
    info_ = infoFor(applyFlags({}, FlagOp::Add, flags_, *slots), "", *slots);
    if (attempts_ > 0) id_ = shared_->names.next();
    if (state_) state_->forget(expected_);
    expected_ = "cur/" + id_ + ",S=" + std::to_string(size_) +
                ",W=" + std::to_string(counter_.total()) + ":2," + info_;
    state_ = shared_->states->find(dir_);
    if (state_) {
      state_->setSlots(std::move(*slots));  // a keyword new to the folder
      state_->expect(expected_);
    }
    phase_ = Phase::Place;
    return {};
  }

  // Creates tmp/<id_> and writes what was held. id_ is one of the
  // process's unique names; should a stale file hold it, a suffix makes
  // another for tmp/ alone (the name in cur/ and the uid list is id_'s,
  // fixed in step 1; this may run on a worker, where names.next() may not).
  Status createTmp() {
    for (int attempt = 0; attempt < 100; ++attempt) {
      const std::string tmp =
          dir_ + "/tmp/" + id_ + (attempt > 0 ? "-" + std::to_string(attempt) : "");
      UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
      if (!fd) {
        if (errno != EEXIST) return errnoError("create " + tmp);
        continue;
      }
      tmp_ = tmp;
      fd_ = std::move(fd);
      if (auto st = writeAll(fd_.get(), held_); !st) return st;
      std::string().swap(held_);
      return {};
    }
    return Error{"no unique name in " + dir_ + "/tmp", EEXIST};
  }

  Status place() {
    if (tmp_.empty()) {
      if (auto st = createTmp(); !st) return st;
    }
    if (fd_) {
      struct timespec times[2] = {{date_, 0}, {date_, 0}};
      if (::futimens(fd_.get(), times) != 0) return errnoError("futimens " + tmp_);
      if (::fsync(fd_.get()) != 0) return errnoError("fsync " + tmp_);
      if (::close(fd_.release()) != 0) return errnoError("close " + tmp_);
    }
    const std::string target = dir_ + "/" + expected_;
    if (::link(tmp_.c_str(), target.c_str()) != 0) {
      if (errno != EEXIST || ++attempts_ > 100) return errnoError("link " + target);
      phase_ = Phase::Prepare;  // another name, taken on the loop
      return {};
    }
    placed_ = true;
    ::unlink(tmp_.c_str());
    // Shared with the other commits into this folder that linked a file
    // before it starts.
    if (auto st = shared_->syncs->sync(dir_ + "/cur", FsyncBatcher::Kind::Directory); !st) {
      // Not known to be on disk: the client hears NO, so it goes.
      ::unlink(target.c_str());
      return st;
    }
    phase_ = Phase::Publish;
    return {};
  }

  Status publish() {
    // A session of this process with the folder selected: its state's copy
    // of the list is used, and it learns of the message here rather than by
    // listing the folder again.
    auto state = shared_->states->find(dir_);
    CachedList cached{[&] { return state->listForChange(); },
                      [&](bool saved) { saved ? state->listSaved() : state->dropList(); }};
    auto uids = assignUids(shared_->root, dir_, {id_}, {flagsToken(info_)}, &modSeq_,
                           state ? &cached : nullptr, UidLogSync::Lazy);
    if (!uids) {
      // No UID: the client hears NO, so the message goes (no session of
      // this process has seen it).
      ::unlink((dir_ + "/" + expected_).c_str());
      return uids.error();
    }
    uids_ = std::move(*uids);
    phase_ = Phase::Sync;
    return {};
  }

  Status announce() {
    if (state_) state_->forget(expected_);
    state_.reset();
    if (auto state = shared_->states->find(dir_))
      state->added(uids_.uids[0], expected_, modSeq_, counter_.total(), date_);
    phase_ = Phase::Done;
    return {};
  }

  Status syncLog() {
    // Any descriptor of the log flushes it (one sync for the batches of
    // every commit that wrote before it starts); no log: the list was
    // rewritten whole, durably, and the log removed.
    if (auto st = shared_->syncs->sync(dir_ + "/" + kUidLogFile, FsyncBatcher::Kind::Data); !st)
      return st;
    phase_ = Phase::Announce;
    return {};
  }

  std::shared_ptr<Shared> shared_;
  std::string dir_, id_;
  std::string tmp_;   // the file in tmp/, once created
  std::string held_;  // the message while it is small and no file exists
  UniqueFd fd_;
  CrlfCounter counter_;
  uint64_t size_ = 0;
  Phase phase_ = Phase::Writing;
  Flags flags_;
  int64_t date_ = 0;
  std::string info_;
  std::string expected_;  // "cur/<the file's name>"
  // The state told to expect the name (loop thread only).
  std::shared_ptr<MaildirFolderState> state_;
  int attempts_ = 0;
  bool placed_ = false;
  AppendedUids uids_;
  uint64_t modSeq_ = 0;
};

// ---- the store ----

class MaildirStore final : public MailStore {
 public:
  explicit MaildirStore(std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)), root_(shared_->root) {}

  Status init();
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
  // The mailbox names of the directories under the root (decoded, checked),
  // without INBOX, with whether each is selectable.
  Result<std::map<std::string, bool>> folders();
  std::map<std::string, std::string> readSpecialUse();
  Status writeSpecialUse(const std::map<std::string, std::string>& m);
  Status makeFolder(const std::string& name);
  // The existing selectable folder's directory, or ENOENT.
  Result<std::string> selectable(const std::string& name);

  std::shared_ptr<Shared> shared_;
  std::string root_;
};

Result<std::map<std::string, bool>> MaildirStore::folders() {
  std::map<std::string, bool> out;
  CPtr<DIR, closedir> d(::opendir(root_.c_str()));
  if (!d) return errnoError("opendir " + root_);
  for (;;) {
    errno = 0;
    struct dirent* e = ::readdir(d.get());
    if (!e) {
      if (errno != 0) return errnoError("readdir " + root_);
      break;
    }
    std::string_view entry = e->d_name;
    if (entry.size() < 2 || entry[0] != '.' || entry == "..") continue;
    auto name = imap::mutf7Decode(entry.substr(1));
    if (!name) continue;
    auto checked = checkMailboxName(*name, '.');
    if (!checked || *checked != *name || *name == kInbox) continue;
    const std::string path = root_ + "/" + std::string(entry);
    if (!isDir(path)) continue;
    out[*name] = isDir(path + "/cur");
  }
  return out;
}

std::map<std::string, std::string> MaildirStore::readSpecialUse() {
  std::map<std::string, std::string> out;
  auto text = readFile(root_ + "/" + kSpecialUseFile, kMaxSmallFile);
  if (!text) return out;
  for (std::string_view line : lines(*text)) {
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) continue;
    std::string use(line.substr(0, sp));
    auto name = imap::mutf7Decode(line.substr(sp + 1));
    if (!name || use.empty() || !validSpecialUse(use)) continue;
    out[*name] = use;
  }
  return out;
}

Status MaildirStore::writeSpecialUse(const std::map<std::string, std::string>& m) {
  std::string text;
  for (const auto& [name, use] : m) {
    auto enc = imap::mutf7Encode(name);
    if (enc) text += use + " " + *enc + "\n";
  }
  return atomicWrite(root_ + "/" + kSpecialUseFile, text, 0600);
}

Status MaildirStore::makeFolder(const std::string& name) {
  auto path = maildirStorePath(root_, name);
  if (!path) return path.error();
  if (auto st = makeDir(*path); !st) return st;
  // The uid list first: the folder is selectable once cur/ exists.
  if (!exists(*path + "/" + kUidListFile)) {
    UidList l;
    auto v = allocateUidValidity(root_);
    if (!v) return v.error();
    l.uidValidity = *v;
    if (auto st = writeUidList(*path, l); !st) return st;
  }
  for (const char* sub : {"/tmp", "/new", "/cur"})
    if (auto st = makeDir(*path + sub); !st) return st;
  UniqueFd marker(::open((*path + "/maildirfolder").c_str(),
                         O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!marker) return errnoError("create " + *path + "/maildirfolder");
  if (auto st = fsyncDir(*path); !st) return st;
  return fsyncDir(root_);
}

Status MaildirStore::init() {
  if (auto st = makeDirs(root_, 0700); !st) return st;
  for (const char* sub : {"/cur", "/new", "/tmp"})
    if (auto st = makeDir(root_ + sub); !st) return st;
  const std::string marker = root_ + "/" + kStoreMarkerFile;
  if (exists(marker)) return {};
  auto fs = folders();
  if (!fs) return fs.error();
  if (fs->empty()) {
    auto su = readSpecialUse();
    for (const auto& m : kDefaultMailboxes) {
      if (auto st = makeFolder(m.name); !st) return st;
      su[m.name] = m.use;
    }
    if (auto st = writeSpecialUse(su); !st) return st;
    for (const auto& m : kDefaultMailboxes)
      if (auto st = subscribe(m.name, true); !st) return st;
  }
  return atomicWrite(marker, "1\n", 0600);
}

Result<std::vector<MailboxListEntry>> MaildirStore::list() {
  auto fs = folders();
  if (!fs) return fs.error();
  auto su = readSpecialUse();
  auto subs = subscriptions();
  std::set<std::string> subscribed;
  if (subs) subscribed.insert(subs->begin(), subs->end());
  std::map<std::string, MailboxListEntry> all;
  auto add = [&](const std::string& name, bool selectable) {
    MailboxListEntry& e = all[name];
    e.name = name;
    e.noSelect = !selectable;
    if (auto it = su.find(name); it != su.end()) e.specialUse = it->second;
    for (size_t d = name.find('.'); d != std::string::npos; d = name.find('.', d + 1)) {
      std::string parent = name.substr(0, d);
      auto [it, fresh] = all.try_emplace(parent);
      if (fresh) {
        it->second.name = parent;
        it->second.noSelect = !fs->count(parent) || !(*fs)[parent];
      }
      it->second.hasChildren = true;
    }
  };
  for (const auto& [name, selectable] : *fs) add(name, selectable);
  std::vector<MailboxListEntry> out;
  MailboxListEntry inbox;
  inbox.name = kInbox;
  inbox.subscribed = subscribed.count(kInbox) > 0;
  if (auto it = all.find(kInbox); it != all.end()) {  // "INBOX.Sub" makes INBOX a parent
    inbox.hasChildren = it->second.hasChildren;
    all.erase(it);
  }
  out.push_back(inbox);
  for (auto& [name, e] : all) {
    e.subscribed = subscribed.count(name) > 0;
    out.push_back(std::move(e));
  }
  return out;
}

Result<std::vector<std::string>> MaildirStore::subscriptions() {
  return readSubscriptions(root_ + "/" + kSubscriptionsFile);
}

Status MaildirStore::subscribe(const std::string& name, bool on) {
  auto n = checkMailboxName(name, '.');
  if (!n) return n.error();
  auto lock = FileLock::acquire(root_ + "/yubin-store.lock");
  if (!lock) return lock.error();
  return changeSubscription(root_ + "/" + kSubscriptionsFile, *n, on);
}

Result<std::string> MaildirStore::selectable(const std::string& name) {
  auto path = maildirStorePath(root_, name);
  if (!path) return path.error();
  // lstat on both: a folder that is a symlink is not one of ours.
  if (!isDir(*path) || !isDir(*path + "/cur")) return Error{"no such mailbox: " + name, ENOENT};
  return path;
}

Status MaildirStore::create(const std::string& name, const std::string& specialUse) {
  auto n = checkMailboxName(name, '.');
  if (!n) return n.error();
  if (!validSpecialUse(specialUse)) return Error{"unknown special-use attribute", EINVAL};
  if (*n == kInbox) return Error{"mailbox exists: INBOX", EEXIST};
  auto path = maildirStorePath(root_, *n);
  if (!path) return path.error();
  if (isDir(*path + "/cur")) return Error{"mailbox exists: " + *n, EEXIST};
  for (size_t d = n->find('.'); d != std::string::npos; d = n->find('.', d + 1)) {
    std::string parent = n->substr(0, d);
    if (parent == kInbox) continue;
    auto pp = maildirStorePath(root_, parent);
    if (!pp) return pp.error();
    if (!isDir(*pp))
      if (auto st = makeFolder(parent); !st) return st;
  }
  if (auto st = makeFolder(*n); !st) return st;
  auto su = readSpecialUse();
  if (specialUse.empty() ? su.erase(*n) > 0 : (su[*n] = specialUse, true))
    if (auto st = writeSpecialUse(su); !st) return st;
  return {};
}

Status MaildirStore::remove(const std::string& name) {
  auto n = checkMailboxName(name, '.');
  if (!n) return n.error();
  if (*n == kInbox) return Error{"INBOX cannot be deleted", EINVAL};
  auto fs = folders();
  if (!fs) return fs.error();
  bool children = false;
  for (const auto& [other, sel] : *fs) children = children || isUnder(other, *n, '.');
  auto it = fs->find(*n);
  if (it == fs->end() || !it->second) {
    if (children) return Error{"\\Noselect mailbox with children: " + *n, ENOTEMPTY};
    if (it == fs->end()) return Error{"no such mailbox: " + *n, ENOENT};
  }
  auto path = maildirStorePath(root_, *n);
  if (!path) return path.error();
  if (children) {
    // Keep the directory as a \Noselect parent: cur/ goes first.
    for (const char* sub : {"/cur", "/new", "/tmp"}) removeTree(*path + sub);
    CPtr<DIR, closedir> d(::opendir(path->c_str()));
    if (d) {
      std::vector<std::string> names;
      while (struct dirent* e = ::readdir(d.get())) {
        std::string f = e->d_name;
        if (f != "." && f != "..") names.push_back(f);
      }
      for (const auto& f : names) removeTree(*path + "/" + f);
    }
    if (isDir(*path + "/cur")) return Error{"could not delete " + *n, EIO};
  } else {
    // Out of the namespace in one rename ("..": never a mailbox name), then away.
    std::string trash = root_ + "/..yubin-trash." + shared_->names.next();
    if (::rename(path->c_str(), trash.c_str()) != 0) return errnoError("rename " + *path);
    removeTree(trash);
  }
  if (auto st = fsyncDir(root_); !st) return st;
  auto su = readSpecialUse();
  if (su.erase(*n))
    if (auto st = writeSpecialUse(su); !st) return st;
  return {};
}

Status MaildirStore::rename(const std::string& fromName, const std::string& toName) {
  auto from = checkMailboxName(fromName, '.');
  if (!from) return from.error();
  auto to = checkMailboxName(toName, '.');
  if (!to) return to.error();
  if (*to == kInbox || *from == *to || isUnder(*to, *from, '.'))
    return Error{"cannot rename " + *from + " to " + *to, EINVAL};
  auto fs = folders();
  if (!fs) return fs.error();
  for (const auto& [other, sel] : *fs)
    if (other == *to || isUnder(other, *to, '.')) return Error{"mailbox exists: " + *to, EEXIST};
  auto su = readSpecialUse();
  if (*from == kInbox) {
    // RFC 3501 §6.3.5: INBOX's messages move to a new mailbox; INBOX stays.
    if (auto st = create(*to, ""); !st) return st;
    auto dest = maildirStorePath(root_, *to);
    if (!dest) return dest.error();
    if (auto kw = readFile(root_ + "/" + kKeywordsFile, kMaxSmallFile); kw)
      if (auto st = atomicWrite(*dest + "/" + kKeywordsFile, *kw, 0600); !st) return st;
    auto files = quickScan(root_);
    if (!files) return files.error();
    for (const auto& f : *files) {
      std::string src = root_ + "/" + f.fileName, dst = *dest + "/" + f.fileName;
      if (::rename(src.c_str(), dst.c_str()) != 0 && errno != ENOENT)
        return errnoError("rename " + src);
    }
    for (const char* sub : {"/cur", "/new"}) {
      if (auto st = fsyncDir(*dest + sub); !st) return st;
      if (auto st = fsyncDir(root_ + sub); !st) return st;
    }
    return {};
  }
  std::vector<std::string> moving;
  for (const auto& [other, sel] : *fs)
    if (other == *from || isUnder(other, *from, '.')) moving.push_back(other);
  if (moving.empty()) return Error{"no such mailbox: " + *from, ENOENT};
  for (size_t d = to->find('.'); d != std::string::npos; d = to->find('.', d + 1)) {
    std::string parent = to->substr(0, d);
    if (parent == kInbox) continue;
    auto pp = maildirStorePath(root_, parent);
    if (!pp) return pp.error();
    if (!isDir(*pp))
      if (auto st = makeFolder(parent); !st) return st;
  }
  bool suChanged = false;
  for (const auto& old : moving) {
    const std::string renamed = *to + old.substr(from->size());
    auto a = maildirStorePath(root_, old), b = maildirStorePath(root_, renamed);
    if (!a) return a.error();
    if (!b) return b.error();
    if (::rename(a->c_str(), b->c_str()) != 0) return errnoError("rename " + *a);
    if (auto it = su.find(old); it != su.end()) {
      su[renamed] = it->second;
      su.erase(old);
      suChanged = true;
    }
  }
  if (auto st = fsyncDir(root_); !st) return st;
  if (suChanged)
    if (auto st = writeSpecialUse(su); !st) return st;
  return {};
}

Result<MailboxStatus> MaildirStore::status(const std::string& name) {
  auto dir = selectable(name);
  if (!dir) return dir.error();
  if (auto state = shared_->states->find(*dir)) {
    // Selected by a session of this process: its state answers.
    if (auto st = state->refresh(false); !st) return st.error();
    MailboxStatus s;
    s.uidNext = state->uidNext();
    s.uidValidity = state->uidValidity();
    s.highestModSeq = state->highestModSeq();
    // Another process may have taken \Recent since: the list's header says.
    const uint32_t firstRecent =
        std::max(state->firstRecent(), readFirstRecent(*dir).value_or(0));
    for (auto& m : state->messages()) {
      if (auto st = state->sizeOf(m); !st) {
        if (st.error().errnum == ENOENT) continue;
        return st.error();
      }
      ++s.messages;
      s.size += m.size;
      if (m.uid >= firstRecent) ++s.recent;
      std::string_view info = m.isNew() ? std::string_view() : maildirFlags(m.name());
      if (info.find('S') == std::string_view::npos) ++s.unseen;
      if (info.find('T') != std::string_view::npos) ++s.deleted;
    }
    state->saveSizes();
    return s;
  }
  auto loaded = loadFolder(root_, *dir, false);
  if (!loaded) return loaded.error();
  SizeCache sizes(*dir);
  MailboxStatus s;
  s.uidNext = loaded->uidNext;
  s.uidValidity = loaded->uidValidity;
  s.highestModSeq = loaded->highestModSeq;
  std::vector<MaildirFile> live;
  live.reserve(loaded->messages.size());
  for (auto& m : loaded->messages) {
    auto size = sizes.size(m.file);
    if (!size) {
      if (size.error().errnum == ENOENT) continue;
      return size.error();
    }
    ++s.messages;
    s.size += *size;
    if (m.uid >= loaded->firstRecent) ++s.recent;
    std::string_view info = m.file.isNew() ? std::string_view() : maildirFlags(m.file.name());
    if (info.find('S') == std::string_view::npos) ++s.unseen;
    if (info.find('T') != std::string_view::npos) ++s.deleted;
    live.push_back(std::move(m.file));
  }
  sizes.save(live);
  return s;
}

Result<std::unique_ptr<ImapMailbox>> MaildirStore::select(const std::string& name, bool readOnly) {
  auto dir = selectable(name);
  if (!dir) return dir.error();
  auto mb = std::make_unique<MaildirImapMailbox>(shared_, *dir, readOnly);
  if (auto st = mb->init(); !st) return st.error();
  return std::unique_ptr<ImapMailbox>(std::move(mb));
}

Result<std::unique_ptr<AppendTransaction>> MaildirStore::beginAppend(const std::string& name) {
  auto dir = selectable(name);
  if (!dir) return dir.error();
  // The file in tmp/ comes later (MaildirAppend: held in memory first).
  return std::unique_ptr<AppendTransaction>(
      std::make_unique<MaildirAppend>(shared_, *dir, shared_->names.next()));
}

}  // namespace

Result<std::string> maildirStorePath(const std::string& root, const std::string& name) {
  auto n = checkMailboxName(name, '.');
  if (!n) return n.error();
  if (*n == kInbox) return root;
  auto enc = imap::mutf7Encode(*n);
  if (!enc) return Error{"mailbox name is not UTF-8", EINVAL};
  // mUTF-7 never produces '/' (its base64 uses ','); checked anyway.
  if (enc->find('/') != std::string::npos) return Error{"invalid mailbox name", EINVAL};
  return root + "/." + *enc;
}

Result<std::unique_ptr<MailStore>> openMaildirStore(const std::string& root,
                                                    std::shared_ptr<MaildirFolderStates> states) {
  if (!states) states = makeMaildirFolderStates();
  auto shared = std::make_shared<Shared>(root, std::move(states));
  shared->syncs = shared->states->syncs();
  auto store = std::make_unique<MaildirStore>(std::move(shared));
  if (auto st = store->init(); !st) return st.error();
  return std::unique_ptr<MailStore>(std::move(store));
}

}  // namespace yubin::store
