// Maildir names, folders and delivery; see maildir.hpp.
#include "store/maildir.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "store/transform.hpp"

namespace yubin::store {
namespace {

// Drawing a fresh name is only needed after a collision, which takes a
// clock going backwards or another process with our pid: a few tries are
// plenty, and the bound keeps a broken directory from looping forever.
constexpr int kNameAttempts = 50;

MaildirNameGenerator::Time realClock() {
  struct timespec ts;
  ::clock_gettime(CLOCK_REALTIME, &ts);
  return {static_cast<int64_t>(ts.tv_sec), static_cast<uint32_t>(ts.tv_nsec / 1000)};
}

std::string localHostName() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

// mkdir that accepts an existing directory; *created says whether it
// made one (so the caller knows to fsync the parent).
Status mkdirFs(Fs& fs, const std::string& path, bool* created) {
  if (fs.mkdir(path.c_str(), 0700) == 0) {
    if (created) *created = true;
    return {};
  }
  int err = errno;
  struct stat st;
  if (err == EEXIST && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return {};
  return errnoError("mkdir " + path, err);
}

Status ensureCurNewTmp(Fs& fs, const std::string& dir) {
  bool created = false;
  for (const char* sub : {"/cur", "/new", "/tmp"}) {
    if (auto st = mkdirFs(fs, dir + sub, &created); !st) return st;
  }
  return created ? fsyncDirFs(fs, dir) : Status{};
}

}  // namespace

std::string maildirSanitizeHost(std::string_view host) {
  std::string out;
  out.reserve(host.size());
  for (char c : host) {
    switch (c) {
      case '/':
        out += "\\057";
        break;
      case ':':
        out += "\\072";
        break;
      case ',':
        out += "\\054";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string maildirBaseName(const MaildirNameParts& p) {
  return std::to_string(p.seconds) + ".M" + std::to_string(p.micros) + "P" + std::to_string(p.pid) +
         "Q" + std::to_string(p.counter) + "." + maildirSanitizeHost(p.host);
}

std::string maildirUniqueName(const MaildirNameParts& parts, uint64_t size) {
  return maildirBaseName(parts) + ",S=" + std::to_string(size);
}

std::string_view maildirBase(std::string_view fileName) {
  return fileName.substr(0, fileName.find(':'));
}

std::string_view maildirId(std::string_view fileName) {
  return fileName.substr(0, fileName.find_first_of(",:"));
}

std::optional<uint64_t> maildirNameField(std::string_view fileName, char key) {
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

std::optional<uint64_t> maildirSizeFromName(std::string_view fileName) {
  return maildirNameField(fileName, 'S');
}

std::string_view maildirFlags(std::string_view fileName) {
  size_t colon = fileName.find(':');
  if (colon == std::string_view::npos) return {};
  std::string_view info = fileName.substr(colon + 1);
  if (info.substr(0, 2) != "2,") return {};
  return info.substr(2);
}

std::string maildirNormaliseFlags(std::string_view flags) {
  std::string out;
  for (char c : flags) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z')) out += c;
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

MaildirNameGenerator::MaildirNameGenerator(Clock clock, std::optional<uint64_t> pid,
                                           std::optional<std::string> host)
    : clock_(clock ? std::move(clock) : Clock(realClock)),
      pid_(pid ? *pid : static_cast<uint64_t>(::getpid())),
      host_(host ? std::move(*host) : localHostName()) {}

std::string MaildirNameGenerator::next() {
  Time t = clock_();
  return maildirBaseName(
      {t.seconds, t.micros, pid_, counter_.fetch_add(1, std::memory_order_relaxed), host_});
}

Result<std::string> maildirFolderPath(const std::string& root, std::string_view folder, char sep) {
  if (folder.empty() || iequals(folder, "INBOX")) return root;
  std::string name;
  size_t start = 0;
  for (;;) {
    size_t end = folder.find(sep, start);
    std::string_view comp = folder.substr(start, end == std::string_view::npos ? end : end - start);
    if (comp.empty() || comp == "." || comp == "..")
      return Error{"bad folder name: empty or dot component", EINVAL};
    for (unsigned char c : comp) {
      if (c < 0x20 || c == 0x7f || c == '/' || c == '.')
        return Error{"bad folder name: '/', '.' or control byte in a component", EINVAL};
    }
    name += '.';
    name += comp;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  if (name.size() > 255) return Error{"bad folder name: too long", ENAMETOOLONG};
  return root + "/" + name;
}

Status fsyncDirFs(Fs& fs, const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errnoError("open " + dir);
  if (fs.fsync(fd.get()) != 0) return errnoError("fsync " + dir);
  return {};
}

Result<std::string> ensureMaildirFolder(Fs& fs, const std::string& root, std::string_view folder,
                                        char sep) {
  auto path = maildirFolderPath(root, folder, sep);
  if (!path) return path.error();
  if (root.empty()) return Error{"empty Maildir path", EINVAL};
  struct stat st;
  if (::stat(root.c_str(), &st) != 0) {
    if (errno != ENOENT) return errnoError("stat " + root);
    std::string parent = dirName(root);
    if (auto s = makeDirs(parent, 0700); !s) return s.error();
    bool created = false;
    if (auto s = mkdirFs(fs, root, &created); !s) return s.error();
    if (created) {
      if (auto s = fsyncDirFs(fs, parent); !s) return s.error();
    }
  }
  if (auto s = ensureCurNewTmp(fs, root); !s) return s.error();
  if (*path == root) return path;
  bool created = false;
  if (auto s = mkdirFs(fs, *path, &created); !s) return s.error();
  if (auto s = ensureCurNewTmp(fs, *path); !s) return s.error();
  std::string marker = *path + "/maildirfolder";
  UniqueFd m(fs.open(marker.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!m) return errnoError("create " + marker);
  if (created) {
    if (auto s = fsyncDirFs(fs, *path); !s) return s.error();
    if (auto s = fsyncDirFs(fs, root); !s) return s.error();
  }
  return path;
}

Result<MaildirDelivery> MaildirDeliverer::deliver(const std::string& root, std::string_view folder,
                                                  std::string_view prefix, const MessageSource& msg,
                                                  const MaildirDeliverOptions& opts) {
  // The Maildir exists in all but the first delivery: a stat() of cur/,
  // new/ and tmp/ instead of ensureMaildirFolder()'s mkdir() and stat() of
  // each. (Sub-folders always go through it: it also makes their marker.)
  auto path = maildirFolderPath(root, folder);
  if (!path) return path.error();
  auto isDir = [](const std::string& p) {
    struct stat st;
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
  };
  if (!root.empty() && *path == root && isDir(root + "/tmp") && isDir(root + "/new") &&
      isDir(root + "/cur"))
    return deliverToDir(root, prefix, msg, opts);
  auto dir = ensureMaildirFolder(fs_, root, folder);
  if (!dir) return dir.error();
  return deliverToDir(*dir, prefix, msg, opts);
}

Result<MaildirDelivery> MaildirDeliverer::deliverToDir(const std::string& dir,
                                                       std::string_view prefix,
                                                       const MessageSource& msg,
                                                       const MaildirDeliverOptions& opts) {
  std::string base, tmpPath;
  UniqueFd fd;
  for (int i = 0; i < kNameAttempts && !fd; ++i) {
    base = names_.next();
    tmpPath = dir + "/tmp/" + base;
    fd.reset(fs_.open(tmpPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd && errno != EEXIST) return errnoError("create " + tmpPath);
  }
  if (!fd) return Error{"create in " + dir + "/tmp: no unique name", EEXIST};
  auto removeTmp = ScopeExit([&] { fs_.unlink(tmpPath.c_str()); });

  MessageWriter w(fs_, fd.get(), tmpPath, opts.lineEndings, /*mboxQuote=*/false);
  if (auto st = w.put(prefix); !st) return st.error();
  auto st = msg.forEachChunk([&](std::string_view c) { return w.put(c); });
  if (!st) return st.error();
  w.endMessage();
  if (auto s = w.flush(); !s) return s.error();
  if (opts.mtime) {
    struct timespec ts[2] = {{static_cast<time_t>(*opts.mtime), 0},
                             {static_cast<time_t>(*opts.mtime), 0}};
    if (::futimens(fd.get(), ts) != 0) return errnoError("set mtime " + tmpPath);
  }
  if (fs_.fsync(fd.get()) != 0) return errnoError("fsync " + tmpPath);
  if (::close(fd.release()) != 0) return errnoError("close " + tmpPath);

  const uint64_t size = w.written();
  const std::string sub = opts.intoCur ? "/cur/" : "/new/";
  const std::string info = opts.intoCur ? ":2," + maildirNormaliseFlags(opts.flags) : "";
  std::string name, target;
  bool linked = false;
  for (int i = 0; i < kNameAttempts && !linked; ++i) {
    if (i > 0) base = names_.next();  // the tmp name stays; only the target changes
    name = base + ",S=" + std::to_string(size) + info;
    target = dir + sub + name;
    if (fs_.link(tmpPath.c_str(), target.c_str()) == 0) {
      linked = true;
    } else if (errno != EEXIST) {
      return errnoError("link " + tmpPath + " to " + target);
    }
  }
  if (!linked) return Error{"link into " + dir + sub + ": no unique name", EEXIST};
  removeTmp.dismiss();
  if (fs_.unlink(tmpPath.c_str()) != 0) {
    // The message is safely in new/; a stray tmp file is only clutter that
    // Maildir readers clean after 36 hours.
    YLOG_WARN("maildir: cannot remove tmp file path=%s errno=%d", tmpPath.c_str(), errno);
  }
  if (auto s = fsyncDirFs(fs_, dir + sub); !s) {
    // Not durable: take it back so the sender retries rather than risk a
    // message that vanishes at the next crash.
    fs_.unlink(target.c_str());
    return s.error();
  }
  return MaildirDelivery{target, name, size};
}

}  // namespace yubin::store
