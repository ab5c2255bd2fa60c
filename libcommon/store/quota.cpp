// Quota usage; see quota.hpp.
#include "store/quota.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <cerrno>
#include <limits>

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

}  // namespace

Result<Usage> maildirUsage(const std::string& root) {
  Usage u;
  CPtr<DIR, closedir> d(::opendir(root.c_str()));
  if (!d) {
    if (errno == ENOENT) return u;
    return errnoError("opendir " + root);
  }
  if (auto s = addFolder(root, u); !s) return s.error();
  while (struct dirent* e = ::readdir(d.get())) {
    std::string_view name = e->d_name;
    if (name.size() < 2 || name[0] != '.' || name == "..") continue;
    std::string path = root + "/" + std::string(name);
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) continue;
    if (auto s = addFolder(path, u); !s) return s.error();
  }
  return u;
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

}  // namespace yubin::store
