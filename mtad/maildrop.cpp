// The maildrop file format and writer; see maildrop.hpp.
#include "mtad/maildrop.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "base/fs.hpp"
#include "base/unique_fd.hpp"

namespace yubin::mtad {
namespace {

bool cleanValue(std::string_view v) {
  for (char c : v)
    if (c == '\r' || c == '\n' || c == '\0') return false;
  return true;
}

Error bad(const std::string& what) { return Error{"maildrop file: " + what, EBADMSG}; }

bool parseSize(std::string_view text, uint64_t& out) {
  if (text.empty() || text.size() > 20 || (text.size() > 1 && text[0] == '0')) return false;
  uint64_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    uint64_t d = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - d) / 10) return false;
    v = v * 10 + d;
  }
  out = v;
  return true;
}

}  // namespace

Result<std::string> encodeDropHeader(const DropHeader& h) {
  std::string out(kMaildropMagic);
  out += '\n';
  auto field = [&out](std::string_view name, std::string_view value) -> Status {
    if (!cleanValue(value)) return Error{std::string(name) + ": CR, LF or NUL in value", EINVAL};
    if (name.size() + value.size() + 2 > kMaxDropFieldLine)
      return Error{std::string(name) + ": value too long", EINVAL};
    out.append(name).append(" ").append(value).append("\n");
    return {};
  };
  if (h.sender)
    if (auto st = field("sender", *h.sender); !st) return st.error();
  if (h.fullName)
    if (auto st = field("fullname", *h.fullName); !st) return st.error();
  if (h.recipients.empty()) return Error{"no recipient", EINVAL};
  if (h.recipients.size() > kMaxDropRecipients) return Error{"too many recipients", EINVAL};
  for (const auto& r : h.recipients) {
    if (r.empty()) return Error{"rcpt: empty", EINVAL};
    if (auto st = field("rcpt", r); !st) return st.error();
  }
  out += "size " + std::to_string(h.size) + "\n\n";
  return out;
}

Result<ParsedDrop> parseDrop(std::string_view file) {
  ParsedDrop p;
  size_t pos = 0;
  bool magic = false, sized = false;
  while (true) {
    size_t lf = file.find('\n', pos);
    if (lf == std::string_view::npos) return bad("truncated header");
    if (lf - pos + 1 > kMaxDropFieldLine) return bad("header line too long");
    std::string_view line = file.substr(pos, lf - pos);
    pos = lf + 1;
    if (!magic) {
      if (line != kMaildropMagic) return bad("not a maildrop file (bad first line)");
      magic = true;
      continue;
    }
    if (line.empty()) break;
    if (!cleanValue(line)) return bad("CR or NUL in header");
    if (sized) return bad("field after size");
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return bad("field without value");
    std::string_view name = line.substr(0, sp), value = line.substr(sp + 1);
    if (name == "sender") {
      if (p.header.sender) return bad("repeated sender");
      if (!p.header.recipients.empty()) return bad("sender after rcpt");
      p.header.sender = std::string(value);
    } else if (name == "fullname") {
      if (p.header.fullName) return bad("repeated fullname");
      if (!p.header.recipients.empty()) return bad("fullname after rcpt");
      p.header.fullName = std::string(value);
    } else if (name == "rcpt") {
      if (value.empty()) return bad("empty rcpt");
      if (p.header.recipients.size() >= kMaxDropRecipients) return bad("too many recipients");
      p.header.recipients.emplace_back(value);
    } else if (name == "size") {
      if (!parseSize(value, p.header.size)) return bad("bad size");
      sized = true;
    } else {
      return bad("unknown field");
    }
  }
  if (!sized) return bad("no size");
  if (p.header.recipients.empty()) return bad("no recipient");
  if (file.size() - pos != p.header.size)
    return bad(file.size() - pos < p.header.size ? "message truncated" : "bytes after the message");
  p.messageOffset = pos;
  return p;
}

bool isDropName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name[0] == '.') return false;
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

Status DropSync::fsyncFile(int fd, const std::string& path) {
  if (::fsync(fd) != 0) return errnoError("fsync " + path);
  return {};
}

Status DropSync::rename(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0) return errnoError("rename " + from);
  return {};
}

Status DropSync::syncDir(const std::string& dir, int fileFd) {
  UniqueFd d(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.valid()) {
    if (::fsync(d.get()) != 0) return errnoError("fsync " + dir);
    return {};
  }
  if (errno != EACCES) return errnoError("open " + dir);
  if (syncfs(fileFd) != 0) return errnoError("syncfs " + dir);
  return {};
}

DropSync& realDropSync() {
  static DropSync real;
  return real;
}

Result<std::string> writeDropFile(const std::string& dir, std::string_view bytes,
                                  DropSync& sync) {
  if (bytes.size() > kMaxDropFile) return Error{"message too large for the maildrop", EFBIG};
  unsigned char rnd[8];
  if (getrandom(rnd, sizeof rnd, 0) != static_cast<ssize_t>(sizeof rnd))
    return errnoError("getrandom");
  timeval tv;
  gettimeofday(&tv, nullptr);
  char name[64];
  snprintf(name, sizeof name, "%llx%05lx%x", static_cast<unsigned long long>(tv.tv_sec),
           static_cast<unsigned long>(tv.tv_usec), static_cast<unsigned>(getpid()));
  std::string final = name;
  for (unsigned char b : rnd) {
    static constexpr char kHex[] = "0123456789abcdef";
    final += kHex[b >> 4];
    final += kHex[b & 15];
  }
  std::string tmpPath = dir + "/." + final, finalPath = dir + "/" + final;
  UniqueFd fd(open(tmpPath.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd.valid()) return errnoError("create " + tmpPath);
  Status st = writeAll(fd.get(), bytes);
  // Readable by the pickup (the maildrop's owner, "other" here) before the
  // fsync, so that the mode is on disk with the data.
  if (st && fchmod(fd.get(), 0644) != 0) st = errnoError("chmod " + tmpPath);
  if (st) st = sync.fsyncFile(fd.get(), tmpPath);
  if (st) st = sync.rename(tmpPath, finalPath);
  if (!st) {
    unlink(tmpPath.c_str());
    return st.error();
  }
  if (Status synced = sync.syncDir(dir, fd.get()); !synced) return synced.error();
  return final;
}

}  // namespace yubin::mtad
