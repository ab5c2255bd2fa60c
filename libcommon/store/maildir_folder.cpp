// MaildirFolder; see maildir_folder.hpp.
#include "store/maildir_folder.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <unordered_map>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "store/mailbox.hpp"
#include "store/maildir.hpp"

namespace yubin::store {
namespace {

constexpr size_t kMaxCacheFile = size_t{16} << 20;



struct CacheEntry {
  uint64_t rawSize;
  uint64_t crlfSize;
};

// Lines "<id> <raw> <crlf>"; anything malformed is ignored (the cache only
// saves work, it is never trusted to be complete).
std::unordered_map<std::string, CacheEntry> readCache(const std::string& path) {
  std::unordered_map<std::string, CacheEntry> out;
  auto text = readFile(path, kMaxCacheFile);
  if (!text) return out;
  std::string_view rest = *text;
  while (!rest.empty()) {
    size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest = nl == std::string_view::npos ? std::string_view() : rest.substr(nl + 1);
    auto f = splitAny(line, " ");
    if (f.size() != 3) continue;
    auto raw = parseU64(f[1]), crlf = parseU64(f[2]);
    if (!raw || !crlf || *crlf < *raw) continue;
    out[f[0]] = {*raw, *crlf};
  }
  return out;
}

}  // namespace

Result<std::unique_ptr<MaildirFolder>> MaildirFolder::open(const std::string& dir) {
  std::unique_ptr<MaildirFolder> f(new MaildirFolder(dir));
  if (auto st = f->scan(); !st) return st.error();
  return f;
}

int MaildirFolder::at() const { return dirFd_ ? dirFd_.get() : AT_FDCWD; }

std::string MaildirFolder::at(size_t index) const {
  return dirFd_ ? files_[index] : dir_ + "/" + files_[index];
}

Status MaildirFolder::scan() {
  // Before the listing: a folder made after it is found by path.
  dirFd_.reset(::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  auto all = scanMaildir(dir_);
  if (!all) return all.error();

  const std::string cachePath = dir_ + "/" + kMaildirSizeCache;
  auto cache = readCache(cachePath);
  bool dirty = false;
  std::string newCache;
  for (const MaildirFile& m : *all) {
    uint64_t size;
    if (auto w = maildirNameField(m.name(), 'W'); w && *w >= m.diskSize) {
      size = *w;
    } else if (auto c = cache.find(m.id); c != cache.end() && c->second.rawSize == m.diskSize) {
      size = c->second.crlfSize;
    } else {
      auto counted = crlfFileSize(dir_ + "/" + m.fileName);
      if (!counted) {
        if (counted.error().errnum == ENOENT) continue;  // removed meanwhile
        return counted.error();
      }
      size = *counted;
      dirty = true;
    }
    newCache += m.id + " " + std::to_string(m.diskSize) + " " + std::to_string(size) + "\n";
    std::string uid = validUid(m.id) ? m.id : uidDigest(m.id);
    const bool seen = !m.isNew() && maildirFlags(m.name()).find('S') != std::string_view::npos;
    list_.push_back({std::move(uid), size, seen});
    ids_.push_back(m.id);
    files_.push_back(m.fileName);
    diskSizes_.push_back(m.diskSize);
  }
  // Entries of removed messages are dropped too, so the cache does not grow.
  if (!dirty && cache.size() != list_.size()) dirty = true;
  if (dirty && !files_.empty()) {
    if (auto st = atomicWrite(cachePath, newCache, 0600); !st)
      YLOG_WARN("maildir: size cache not written path=%s error=\"%s\"", cachePath.c_str(),
                st.error().message.c_str());
  }
  return {};
}

Result<std::string> MaildirFolder::relocate(size_t index) {
  // Renames usually come in batches (an IMAP client flagging many
  // messages): one rescan refreshes the name of every message.
  auto now = scanMaildir(dir_);
  if (!now) return now.error();
  std::unordered_map<std::string_view, size_t> byId;
  for (size_t i = 0; i < ids_.size(); ++i) byId.emplace(ids_[i], i);
  bool found = false;
  for (MaildirFile& m : *now) {
    auto it = byId.find(m.id);
    if (it == byId.end()) continue;
    files_[it->second] = std::move(m.fileName);
    found = found || it->second == index;
  }
  if (!found) return Error{"message " + ids_[index] + " is gone", ENOENT};
  return files_[index];
}

Result<std::unique_ptr<MessageReader>> MaildirFolder::open(size_t index) {
  if (index >= files_.size()) return Error{"no such message", EINVAL};
  for (int attempt = 0; attempt < 2; ++attempt) {
    UniqueFd fd(::openat(at(), at(index).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (fd) return fileReader(std::move(fd), static_cast<int64_t>(diskSizes_[index]));
    if (errno != ENOENT || attempt == 1) return errnoError("open " + dir_ + "/" + files_[index]);
    if (auto r = relocate(index); !r) return r.error();
  }
  return Error{"unreachable", EIO};
}

Status MaildirFolder::markSeen(size_t index) {
  if (index >= files_.size()) return Error{"no such message", EINVAL};
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string_view file = std::string_view(files_[index]).substr(4);
    std::string flags(maildirFlags(file));
    if (files_[index][0] == 'c' && flags.find('S') != std::string::npos) return {};
    const std::string target =
        "cur/" + std::string(maildirBase(file)) + ":2," + maildirNormaliseFlags(flags + "S");
    std::string from = at(index), to = dirFd_ ? target : dir_ + "/" + target;
    if (::renameat(at(), from.c_str(), at(), to.c_str()) == 0) {
      files_[index] = target;
      list_[index].seen = true;
      return {};
    }
    if (errno != ENOENT || attempt == 1) return errnoError("rename " + dir_ + "/" + files_[index]);
    if (auto r = relocate(index); !r) return r.error();
  }
  return Error{"unreachable", EIO};
}

Status MaildirFolder::expunge(const std::vector<size_t>& indexes) {
  bool any = false;
  for (size_t i : indexes) {
    if (i >= files_.size()) return Error{"no such message", EINVAL};
    for (int attempt = 0; attempt < 2; ++attempt) {
      if (::unlinkat(at(), at(i).c_str(), 0) == 0) {
        any = true;
        break;
      }
      if (errno != ENOENT) return errnoError("unlink " + dir_ + "/" + files_[i]);
      if (attempt == 1 || !relocate(i)) break;  // already gone: fine
    }
  }
  if (!any) return {};
  for (const char* sub : {"cur", "new"})
    if (auto st = fsyncDir(dir_ + "/" + sub); !st) return st;
  return {};
}

}  // namespace yubin::store
