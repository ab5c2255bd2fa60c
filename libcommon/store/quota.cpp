// Quota usage; see quota.hpp.
#include "store/quota.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <limits>
#include <optional>

#include "base/unique_fd.hpp"
#include "store/maildir.hpp"
#include "store/mbox.hpp"

namespace yubin::store {
namespace {

uint64_t addSat(uint64_t a, uint64_t b) {
  return a > std::numeric_limits<uint64_t>::max() - b ? std::numeric_limits<uint64_t>::max()
                                                      : a + b;
}

Status addFolder(const std::string& dir, Usage& u) {
  for (const char* sub : {"/new", "/cur"}) {
    std::string subdir = dir + sub;
    CPtr<DIR, closedir> d(::opendir(subdir.c_str()));
    if (!d) {
      if (errno == ENOENT) continue;
      return errnoError("opendir " + subdir);
    }
    while (struct dirent* e = ::readdir(d.get())) {
      std::string_view name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      uint64_t size;
      if (auto s = maildirSizeFromName(name)) {
        size = *s;
      } else {
        struct stat st;
        if (::lstat((subdir + "/" + std::string(name)).c_str(), &st) != 0) continue;  // gone
        if (!S_ISREG(st.st_mode)) continue;
        size = static_cast<uint64_t>(st.st_size);
      }
      u.bytes = addSat(u.bytes, size);
      u.messages = addSat(u.messages, 1);
    }
  }
  return {};
}

// The folders of a Maildir: root, then every <root>/.Name directory.
// nullopt when root does not exist.
Result<std::optional<std::vector<std::string>>> listFolders(const std::string& root) {
  CPtr<DIR, closedir> d(::opendir(root.c_str()));
  if (!d) {
    if (errno == ENOENT) return std::optional<std::vector<std::string>>();
    return errnoError("opendir " + root);
  }
  std::vector<std::string> folders{root};
  while (struct dirent* e = ::readdir(d.get())) {
    std::string_view name = e->d_name;
    if (name.size() < 2 || name[0] != '.' || name == "..") continue;
    std::string path = root + "/" + std::string(name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    folders.push_back(std::move(path));
  }
  return std::optional<std::vector<std::string>>(std::move(folders));
}

Result<Usage> countFolders(const std::vector<std::string>& folders) {
  Usage u;
  for (const std::string& f : folders)
    if (auto s = addFolder(f, u); !s) return s.error();
  return u;
}

int64_t mtimeNs(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

std::vector<int64_t> stampOf(const std::string& root, const std::vector<std::string>& folders) {
  std::vector<int64_t> s;
  s.reserve(1 + 2 * folders.size());
  s.push_back(mtimeNs(root));
  for (const std::string& f : folders) {
    s.push_back(mtimeNs(f + "/new"));
    s.push_back(mtimeNs(f + "/cur"));
  }
  return s;
}

}  // namespace

Result<Usage> maildirUsage(const std::string& root) {
  auto folders = listFolders(root);
  if (!folders) return folders.error();
  if (!*folders) return Usage{};
  return countFolders(**folders);
}

Result<Usage> mboxUsage(const std::string& path) {
  Usage u;
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return u;
    return errnoError("stat " + path);
  }
  MboxReadOptions o;
  o.keepData = false;
  auto s = readMbox(
      path,
      [&](MboxMessage&& m) -> Status {
        if (m.hasFromLine) ++u.messages;  // leading junk is not a message
        return {};
      },
      o);
  if (!s) return s.error();
  u.bytes = static_cast<uint64_t>(st.st_size);
  return u;
}

bool wouldExceed(const Usage& usage, uint64_t quotaBytes, uint64_t quotaMessages,
                 uint64_t incomingSize) {
  if (quotaBytes != 0 && (incomingSize > quotaBytes || usage.bytes > quotaBytes - incomingSize))
    return true;
  return quotaMessages != 0 && usage.messages >= quotaMessages;
}

MaildirUsageCache::MaildirUsageCache(std::chrono::seconds maxAge, size_t maxEntries)
    : maxAge_(maxAge), maxEntries_(maxEntries == 0 ? 1 : maxEntries) {}

Result<MaildirUsageCache::Lookup> MaildirUsageCache::usage(const std::string& root) {
  const auto now = std::chrono::steady_clock::now();
  std::optional<Entry> cached;
  {
    std::lock_guard lock(mu_);
    auto it = entries_.find(root);
    if (it != entries_.end() && now - it->second.scannedAt < maxAge_) cached = it->second;
  }
  // The stat() calls run outside the lock: other mailboxes need not wait.
  if (cached && stampOf(root, cached->folders) == cached->stamp)
    return Lookup{cached->usage, cached->generation};

  uint64_t addedBefore;
  {
    std::lock_guard lock(mu_);
    addedBefore = addedCalls_;
  }
  auto folders = listFolders(root);
  if (!folders) return folders.error();
  Entry e;
  e.folders = *folders ? std::move(**folders) : std::vector<std::string>{root};
  // Stamped before counting: a change during the scan shows at the next
  // lookup and costs one more scan, never a wrong figure kept.
  e.stamp = stampOf(root, e.folders);
  if (*folders) {
    auto u = countFolders(e.folders);
    if (!u) return u.error();
    e.usage = *u;
  }
  e.scannedAt = now;
  std::lock_guard lock(mu_);
  e.generation = nextGeneration_++;
  ++scans_;
  Lookup out{e.usage, e.generation};
  // A delivery of ours that ended during the scan may have linked its
  // message after the stamp and before the count, within the same tick of
  // the file system's clock, where no mtime shows it: such an entry is
  // not kept, and the next lookup scans again.
  if (addedCalls_ != addedBefore) {
    entries_.erase(root);
    return out;
  }
  if (entries_.size() >= maxEntries_ && !entries_.count(root)) entries_.clear();
  entries_[root] = std::move(e);
  return out;
}

void MaildirUsageCache::added(const std::string& root, uint64_t generation, uint64_t bytes) {
  std::lock_guard lock(mu_);
  ++addedCalls_;
  auto it = entries_.find(root);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  // A Maildir that was missing at the scan has just been made: its
  // folders were never listed.
  if (e.generation != generation || e.stamp.front() < 0) {
    entries_.erase(it);
    return;
  }
  e.usage.bytes = addSat(e.usage.bytes, bytes);
  e.usage.messages = addSat(e.usage.messages, 1);
  e.stamp = stampOf(root, e.folders);
}

uint64_t MaildirUsageCache::scans() const {
  std::lock_guard lock(mu_);
  return scans_;
}

}  // namespace yubin::store
