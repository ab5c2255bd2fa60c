// MaildirFolder; see maildir_folder.hpp.
#include "store/maildir_folder.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <unordered_map>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "store/mailbox.hpp"
#include "store/maildir.hpp"

namespace yubin::store {
namespace {

constexpr size_t kReadChunk = size_t{64} * 1024;
constexpr size_t kMaxCacheFile = size_t{16} << 20;

// A whole file, read with read(2) as the session asks for more.
class FileReader final : public MessageReader {
 public:
  explicit FileReader(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<size_t> read(std::string& out, size_t max) override {
    size_t old = out.size();
    out.resize(old + max);
    for (;;) {
      ssize_t n = ::read(fd_.get(), out.data() + old, max);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        out.resize(old);
        return errnoError("read message");
      }
      out.resize(old + static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
  }

 private:
  UniqueFd fd_;
};

// The value of a ",X=<digits>" field of the base name.
std::optional<uint64_t> nameField(std::string_view fileName, char key) {
  std::string_view base = maildirBase(fileName);
  size_t comma = base.find(',');
  while (comma != std::string_view::npos) {
    size_t next = base.find(',', comma + 1);
    std::string_view field =
        base.substr(comma + 1, next == std::string_view::npos ? next : next - comma - 1);
    if (field.size() > 2 && field[0] == key && field[1] == '=') return parseU64(field.substr(2));
    comma = next;
  }
  return std::nullopt;
}

Result<uint64_t> countCrlf(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
  if (!fd) return errnoError("open " + path);
  CrlfCounter c;
  std::string buf(kReadChunk, '\0');
  for (;;) {
    ssize_t n = ::read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errnoError("read " + path);
    if (n == 0) break;
    c.feed(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  return c.total();
}

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

Status MaildirFolder::scan() {
  struct Found {
    std::string id;
    std::string file;
    uint64_t rawSize;
    bool seen;
  };
  std::map<std::string, Found, std::less<>> byId;
  // new/ before cur/: a message moved between the two reads is seen twice
  // (cur/ wins) rather than not at all.
  for (const char* sub : {"new", "cur"}) {
    std::string subdir = dir_ + "/" + sub;
    CPtr<DIR, closedir> d(::opendir(subdir.c_str()));
    if (!d) {
      if (errno == ENOENT) continue;
      return errnoError("opendir " + subdir);
    }
    errno = 0;
    while (struct dirent* e = ::readdir(d.get())) {
      std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      struct stat st;
      if (::lstat((subdir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      Found m;
      m.id = std::string(maildirId(name));
      m.file = std::string(sub) + "/" + name;
      m.rawSize = static_cast<uint64_t>(st.st_size);
      m.seen = sub[0] == 'c' && maildirFlags(name).find('S') != std::string_view::npos;
      byId[m.id] = std::move(m);
    }
  }
  std::vector<Found> all;
  all.reserve(byId.size());
  for (auto& [id, m] : byId) all.push_back(std::move(m));
  std::sort(all.begin(), all.end(),
            [](const Found& a, const Found& b) { return naturalLess(a.id, b.id); });

  const std::string cachePath = dir_ + "/" + kMaildirSizeCache;
  auto cache = readCache(cachePath);
  bool dirty = false;
  std::string newCache;
  for (const Found& m : all) {
    std::string_view name = std::string_view(m.file).substr(4);
    uint64_t size;
    if (auto w = nameField(name, 'W'); w && *w >= m.rawSize) {
      size = *w;
    } else if (auto c = cache.find(m.id); c != cache.end() && c->second.rawSize == m.rawSize) {
      size = c->second.crlfSize;
    } else {
      auto counted = countCrlf(dir_ + "/" + m.file);
      if (!counted) {
        if (counted.error().errnum == ENOENT) continue;  // removed meanwhile
        return counted.error();
      }
      size = *counted;
      dirty = true;
    }
    newCache += m.id + " " + std::to_string(m.rawSize) + " " + std::to_string(size) + "\n";
    std::string uid = validUid(m.id) ? m.id : uidDigest(m.id);
    list_.push_back({std::move(uid), size, m.seen});
    ids_.push_back(m.id);
    files_.push_back(m.file);
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
  const std::string& id = ids_[index];
  for (const char* sub : {"cur", "new"}) {
    std::string subdir = dir_ + "/" + sub;
    CPtr<DIR, closedir> d(::opendir(subdir.c_str()));
    if (!d) continue;
    while (struct dirent* e = ::readdir(d.get())) {
      std::string_view name = e->d_name;
      if (maildirId(name) == id) {
        files_[index] = std::string(sub) + "/" + std::string(name);
        return files_[index];
      }
    }
  }
  return Error{"message " + id + " is gone", ENOENT};
}

Result<std::unique_ptr<MessageReader>> MaildirFolder::open(size_t index) {
  if (index >= files_.size()) return Error{"no such message", EINVAL};
  for (int attempt = 0; attempt < 2; ++attempt) {
    std::string path = dir_ + "/" + files_[index];
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY));
    if (fd) return std::unique_ptr<MessageReader>(std::make_unique<FileReader>(std::move(fd)));
    if (errno != ENOENT || attempt == 1) return errnoError("open " + path);
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
    std::string from = dir_ + "/" + files_[index], to = dir_ + "/" + target;
    if (::rename(from.c_str(), to.c_str()) == 0) {
      files_[index] = target;
      list_[index].seen = true;
      return {};
    }
    if (errno != ENOENT || attempt == 1) return errnoError("rename " + from);
    if (auto r = relocate(index); !r) return r.error();
  }
  return Error{"unreachable", EIO};
}

Status MaildirFolder::expunge(const std::vector<size_t>& indexes) {
  bool any = false;
  for (size_t i : indexes) {
    if (i >= files_.size()) return Error{"no such message", EINVAL};
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::string path = dir_ + "/" + files_[i];
      if (::unlink(path.c_str()) == 0) {
        any = true;
        break;
      }
      if (errno != ENOENT) return errnoError("unlink " + path);
      if (attempt == 1 || !relocate(i)) break;  // already gone: fine
    }
  }
  if (!any) return {};
  for (const char* sub : {"cur", "new"})
    if (auto st = fsyncDir(dir_ + "/" + sub); !st) return st;
  return {};
}

}  // namespace yubin::store
