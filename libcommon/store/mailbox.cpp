// The Maildir implementation of Mailbox; see mailbox.hpp.
#include "store/mailbox.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>

#include "base/unique_fd.hpp"
#include "store/maildir.hpp"

namespace yubin::store {
namespace {

bool validId(std::string_view id) {
  return !id.empty() && id.front() != '.' &&
         id.find_first_of(std::string_view("/:,\0", 4)) == std::string_view::npos;
}

bool isDigit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

bool naturalLess(std::string_view a, std::string_view b) {
  size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (isDigit(a[i]) && isDigit(b[j])) {
      size_t si = i, sj = j;
      while (si < a.size() && a[si] == '0') ++si;
      while (sj < b.size() && b[sj] == '0') ++sj;
      size_t ei = si, ej = sj;
      while (ei < a.size() && isDigit(a[ei])) ++ei;
      while (ej < b.size() && isDigit(b[ej])) ++ej;
      if (ei - si != ej - sj) return ei - si < ej - sj;
      int c = a.substr(si, ei - si).compare(b.substr(sj, ej - sj));
      if (c != 0) return c < 0;
      if (ei - i != ej - j) return ei - i < ej - j;  // fewer leading zeros first
      i = ei;
      j = ej;
      continue;
    }
    if (a[i] != b[j]) return static_cast<unsigned char>(a[i]) < static_cast<unsigned char>(b[j]);
    ++i;
    ++j;
  }
  return a.size() - i < b.size() - j;
}

Result<std::vector<MaildirFile>> scanMaildir(const std::string& dir) {
  std::map<std::string, MaildirFile, std::less<>> byId;
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
      std::string name = e->d_name;
      if (name.empty() || name[0] == '.') continue;
      struct stat st;
      if (::lstat((subdir + "/" + name).c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
      MaildirFile f;
      f.id = std::string(maildirId(name));
      f.fileName = std::string(sub) + "/" + name;
      f.diskSize = static_cast<uint64_t>(st.st_size);
      f.mtime = static_cast<int64_t>(st.st_mtime);
      byId[f.id] = std::move(f);
    }
  }
  std::vector<MaildirFile> out;
  out.reserve(byId.size());
  for (auto& [id, f] : byId) out.push_back(std::move(f));
  std::sort(out.begin(), out.end(),
            [](const MaildirFile& a, const MaildirFile& b) { return naturalLess(a.id, b.id); });
  return out;
}

Result<std::vector<MailboxEntry>> MaildirMailbox::list() {
  auto files = scanMaildir(dir_);
  if (!files) return files.error();
  std::vector<MailboxEntry> out;
  out.reserve(files->size());
  where_.clear();
  for (MaildirFile& f : *files) {
    MailboxEntry m;
    m.isNew = f.isNew();
    m.size = maildirSizeFromName(f.name()).value_or(f.diskSize);
    m.flags = m.isNew ? std::string() : maildirNormaliseFlags(maildirFlags(f.name()));
    m.mtime = f.mtime;
    where_[f.id] = f.fileName;
    m.id = std::move(f.id);
    m.fileName = std::move(f.fileName);
    out.push_back(std::move(m));
  }
  return out;
}

Result<std::string> MaildirMailbox::locate(std::string_view id, bool rescan) {
  if (!validId(id)) return Error{"bad message id", EINVAL};
  if (rescan || where_.find(id) == where_.end()) {
    auto l = list();
    if (!l) return l.error();
  }
  auto it = where_.find(id);
  if (it == where_.end()) return Error{"no such message: " + std::string(id), ENOENT};
  return it->second;
}

Result<std::unique_ptr<MessageSource>> MaildirMailbox::open(std::string_view id) {
  for (bool rescan : {false, true}) {
    auto rel = locate(id, rescan);
    if (!rel) return rel.error();
    auto f = FileSource::open(dir_ + "/" + *rel);
    if (f) return std::unique_ptr<MessageSource>(std::make_unique<FileSource>(std::move(*f)));
    if (f.error().errnum != ENOENT || rescan) return f.error();
  }
  return Error{"unreachable", EIO};
}

Status MaildirMailbox::setFlags(std::string_view id, std::string_view flags) {
  const std::string info = ":2," + maildirNormaliseFlags(flags);
  for (bool rescan : {false, true}) {
    auto rel = locate(id, rescan);
    if (!rel) return rel.error();
    // Keep the whole base (with ,S= and other fields); replace the info.
    std::string_view file = std::string_view(*rel).substr(4);  // after "new/" or "cur/"
    const std::string target = "cur/" + std::string(maildirBase(file)) + info;
    if (*rel == target) return {};
    std::string from = dir_ + "/" + *rel, to = dir_ + "/" + target;
    if (fs_.rename(from.c_str(), to.c_str()) == 0) {
      where_[std::string(id)] = target;
      return {};
    }
    if (errno != ENOENT || rescan) return errnoError("rename " + from);
  }
  return Error{"unreachable", EIO};
}

Status MaildirMailbox::remove(std::string_view id) {
  for (bool rescan : {false, true}) {
    auto rel = locate(id, rescan);
    if (!rel) return rel.error();
    std::string path = dir_ + "/" + *rel;
    if (fs_.unlink(path.c_str()) == 0) {
      where_.erase(where_.find(id));
      return {};
    }
    if (errno != ENOENT || rescan) return errnoError("unlink " + path);
  }
  return Error{"unreachable", EIO};
}

}  // namespace yubin::store
