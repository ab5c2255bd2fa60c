// The Maildir UID list; see uid_list.hpp.
#include "store/uid_list.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <unordered_map>
#include <unordered_set>

#include "base/fs.hpp"
#include "base/strings.hpp"
#include "store/maildir.hpp"

namespace yubin::store {
namespace {

constexpr size_t kMaxUidListFile = size_t{256} << 20;
// RFC 7162: mod-sequences are positive 63-bit numbers.
constexpr uint64_t kMaxModSeq = 0x7fffffffffffffffULL;

std::optional<uint32_t> parseU32(std::string_view s) {
  auto v = parseU64(s);
  if (!v || *v > UINT32_MAX) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

// Splits text into lines; false when the last line is not terminated.
bool splitLines(std::string_view text, std::vector<std::string_view>& out) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) return false;
    out.push_back(text.substr(0, nl));
    text.remove_prefix(nl + 1);
  }
  return true;
}

bool validId(std::string_view id) {
  if (id.empty() || id.front() == '.') return false;
  for (char c : id) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7f || c == '/') return false;
  }
  return true;
}

bool validToken(std::string_view t) {
  if (t.empty()) return true;  // not known yet
  if (t[0] != 'F' && t[0] != '#') return false;
  for (char c : t) {
    auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u >= 0x7f) return false;
  }
  return true;
}

// Checks order, bounds and unique ids.
bool consistent(const UidList& l) {
  if (l.uidValidity == 0 || l.uidNext == 0 || l.firstRecent == 0 || l.firstRecent > l.uidNext ||
      l.highestModSeq == 0 || l.highestModSeq > kMaxModSeq)
    return false;
  uint32_t prev = 0;
  std::unordered_set<std::string_view> ids;
  for (const auto& e : l.entries) {
    if (e.uid <= prev || e.uid >= l.uidNext || !validId(e.id) || !ids.insert(e.id).second ||
        e.modSeq == 0 || e.modSeq > l.highestModSeq || !validToken(e.flags))
      return false;
    prev = e.uid;
  }
  return true;
}

}  // namespace

std::string flagsToken(std::string_view info) {
  bool plain = true;
  for (char c : info) {
    auto u = static_cast<unsigned char>(c);
    plain = plain && u > 0x20 && u < 0x7f;
  }
  if (plain) return "F" + std::string(info);
  // FNV-1a: only equality matters (a changed name must give another token).
  const uint64_t h = fnv1a64(info);
  static const char kHex[] = "0123456789abcdef";
  std::string out = "#";
  for (int shift = 60; shift >= 0; shift -= 4) out += kHex[(h >> shift) & 15];
  return out;
}

Result<FileLock> FileLock::acquire(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
  if (!fd) return errnoError("open " + path);
  for (;;) {
    if (::flock(fd.get(), LOCK_EX) == 0) break;
    if (errno != EINTR) return errnoError("flock " + path);
  }
  return FileLock(std::move(fd));
}

Result<FileLock> lockUidList(const std::string& dir) {
  return FileLock::acquire(dir + "/" + kUidListFile + ".lock");
}

std::string formatUidList(const UidList& list) {
  std::string out = std::string(kUidListFile) + " 2 V" + std::to_string(list.uidValidity) + " N" +
                    std::to_string(list.uidNext) + " R" + std::to_string(list.firstRecent) +
                    " M" + std::to_string(list.highestModSeq) + "\n";
  out.reserve(out.size() + list.entries.size() * 64);
  for (const auto& e : list.entries) {
    out += std::to_string(e.uid);
    out += ' ';
    out += std::to_string(e.modSeq);
    out += ' ';
    out += e.flags.empty() ? std::string_view("?") : std::string_view(e.flags);
    out += ' ';
    out += e.id;
    out += '\n';
  }
  out += "end " + std::to_string(list.entries.size()) + "\n";
  return out;
}

std::optional<UidList> parseUidList(std::string_view text) {
  std::vector<std::string_view> lines;
  if (!splitLines(text, lines) || lines.size() < 2) return std::nullopt;
  auto head = splitAny(lines[0], " ");
  if (head.size() < 2 || head[0] != kUidListFile) return std::nullopt;
  const bool v2 = head[1] == "2";
  if (!(v2 ? head.size() == 6 : head[1] == "1" && head.size() == 5)) return std::nullopt;
  UidList l;
  auto field = [&](const std::string& f, char key, uint32_t& out) {
    if (f.size() < 2 || f[0] != key) return false;
    auto v = parseU32(std::string_view(f).substr(1));
    if (!v) return false;
    out = *v;
    return true;
  };
  if (!field(head[2], 'V', l.uidValidity) || !field(head[3], 'N', l.uidNext) ||
      !field(head[4], 'R', l.firstRecent))
    return std::nullopt;
  if (v2) {
    const std::string& m = head[5];
    auto v = m.size() >= 2 && m[0] == 'M' ? parseU64(std::string_view(m).substr(1)) : std::nullopt;
    if (!v) return std::nullopt;
    l.highestModSeq = *v;
  }
  std::string_view last = lines.back();
  if (last.substr(0, 4) != "end ") return std::nullopt;
  auto count = parseU64(last.substr(4));
  if (!count || *count != lines.size() - 2) return std::nullopt;
  l.entries.reserve(lines.size() - 2);
  for (size_t i = 1; i + 1 < lines.size(); ++i) {
    std::string_view line = lines[i];
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    auto uid = parseU32(line.substr(0, sp));
    if (!uid) return std::nullopt;
    UidEntry e;
    e.uid = *uid;
    line.remove_prefix(sp + 1);
    if (v2) {
      size_t sp2 = line.find(' ');
      size_t sp3 = sp2 == std::string_view::npos ? sp2 : line.find(' ', sp2 + 1);
      if (sp3 == std::string_view::npos) return std::nullopt;
      auto ms = parseU64(line.substr(0, sp2));
      if (!ms) return std::nullopt;
      e.modSeq = *ms;
      std::string_view tok = line.substr(sp2 + 1, sp3 - sp2 - 1);
      if (tok != "?") {
        if (tok.empty()) return std::nullopt;
        e.flags = std::string(tok);
      }
      line.remove_prefix(sp3 + 1);
    }
    e.id = std::string(line);
    l.entries.push_back(std::move(e));
  }
  if (!consistent(l)) return std::nullopt;
  return l;
}

Result<UidListRead> readUidList(const std::string& dir) {
  UidListRead r;
  auto text = readFile(dir + "/" + kUidListFile, kMaxUidListFile);
  if (!text) {
    if (text.error().errnum == ENOENT) return r;
    if (text.error().errnum == EFBIG || text.error().errnum == 0) {
      r.state = UidListState::Corrupt;
      return r;
    }
    return text.error();
  }
  auto l = parseUidList(*text);
  if (!l) {
    r.state = UidListState::Corrupt;
    return r;
  }
  auto log = readFile(dir + "/" + kUidLogFile, kMaxUidListFile);
  if (!log && log.error().errnum != ENOENT && log.error().errnum != EFBIG &&
      log.error().errnum != 0)
    return log.error();
  if (log) {
    UidList merged = *l;
    // A log that is not this list's (left from before a rewrite) is left
    // out: the list alone is then the whole state.
    if (applyUidLog(merged, *log) && consistent(merged)) l = std::move(merged);
  }
  r.state = UidListState::Ok;
  r.list = std::move(*l);
  return r;
}

namespace {
std::string uidLogHeader(const UidList& list) {
  return std::string(kUidLogMagic) + " V" + std::to_string(list.uidValidity) + " B" +
         std::to_string(list.highestModSeq) + "\n";
}
}  // namespace

Status writeUidList(const std::string& dir, const UidList& list) {
  if (auto st = atomicWrite(dir + "/" + kUidListFile, formatUidList(list), 0600); !st) return st;
  // The log starts afresh, bound to this list (a crash before this leaves
  // the old log, whose base no longer matches: it is ignored).
  return atomicWrite(dir + "/" + kUidLogFile, uidLogHeader(list), 0600);
}

std::string formatUidLogBatch(const UidList& after, const std::vector<uint32_t>& changed,
                              const std::vector<uint32_t>& removed) {
  std::string out;
  for (uint32_t uid : changed) {
    auto it = std::lower_bound(after.entries.begin(), after.entries.end(), uid,
                               [](const UidEntry& e, uint32_t u) { return e.uid < u; });
    if (it == after.entries.end() || it->uid != uid) continue;
    out += "E " + std::to_string(uid) + " " + std::to_string(it->modSeq) + " " +
           (it->flags.empty() ? std::string("?") : it->flags) + " " + it->id + "\n";
  }
  for (uint32_t uid : removed) out += "X " + std::to_string(uid) + "\n";
  out += "H " + std::to_string(after.uidNext) + " " + std::to_string(after.firstRecent) + " " +
         std::to_string(after.highestModSeq) + "\n";
  return out;
}

bool applyUidLog(UidList& list, std::string_view text) {
  size_t nl = text.find('\n');
  if (nl == std::string_view::npos || text.substr(0, nl + 1) != uidLogHeader(list)) return false;
  text.remove_prefix(nl + 1);
  // The last record of each UID wins (the log is bound to exactly this
  // list by its base, so the records apply in order to it). Batches end
  // with their "H" line; what follows the last one (a write cut short by a
  // crash) is not applied.
  struct Rec {
    bool remove = false;
    UidEntry e;
  };
  std::unordered_map<uint32_t, Rec> last;
  std::vector<Rec> batch;
  uint32_t next = list.uidNext, recent = list.firstRecent;
  uint64_t high = list.highestModSeq;
  for (;;) {
    nl = text.find('\n');
    if (nl == std::string_view::npos) break;
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    auto f = splitAny(line, " ");
    if (f.size() == 4 && f[0] == "H") {
      auto n = parseU32(f[1]), r = parseU32(f[2]);
      auto h = parseU64(f[3]);
      if (!n || !r || !h || *h == 0 || *h > kMaxModSeq) break;
      for (auto& rec : batch) {
        high = std::max(high, rec.e.modSeq);
        last[rec.e.uid] = std::move(rec);
      }
      batch.clear();
      next = std::max(next, *n);
      recent = std::max(recent, *r);
      high = std::max(high, *h);
      continue;
    }
    Rec rec;
    if (f.size() == 2 && f[0] == "X") {
      auto uid = parseU32(f[1]);
      if (!uid) break;
      rec.remove = true;
      rec.e.uid = *uid;
    } else if (f.size() == 5 && f[0] == "E") {
      auto uid = parseU32(f[1]);
      auto ms = parseU64(f[2]);
      if (!uid || !ms || *ms == 0 || *ms > kMaxModSeq || !validId(f[4]) ||
          (f[3] != "?" && (f[3].empty() || !validToken(f[3]))))
        break;
      rec.e = {*uid, f[4], *ms, f[3] == "?" ? std::string() : f[3]};
    } else {
      break;
    }
    batch.push_back(std::move(rec));
  }
  std::vector<UidEntry> merged;
  merged.reserve(list.entries.size() + last.size());
  for (auto& e : list.entries) {
    auto it = last.find(e.uid);
    if (it == last.end()) {
      merged.push_back(std::move(e));
      continue;
    }
    Rec& rec = it->second;
    if (!rec.remove) {
      if (rec.e.id != e.id) return false;
      merged.push_back(std::move(rec.e));
    }
    last.erase(it);
  }
  // What is left: messages added since the list was written.
  std::vector<UidEntry> added;
  for (auto& [uid, rec] : last)
    if (!rec.remove) added.push_back(std::move(rec.e));
  std::sort(added.begin(), added.end(),
            [](const UidEntry& a, const UidEntry& b) { return a.uid < b.uid; });
  if (!added.empty() && !merged.empty() && added.front().uid <= merged.back().uid) return false;
  for (auto& e : added) {
    next = std::max(next, e.uid + 1);
    merged.push_back(std::move(e));
  }
  list.entries = std::move(merged);
  list.logBase = list.highestModSeq;
  list.uidNext = next;
  list.firstRecent = std::min(recent, next);
  list.highestModSeq = high;
  return true;
}

Status saveUidListChange(const std::string& dir, const UidList& after,
                         const std::vector<uint32_t>& changed,
                         const std::vector<uint32_t>& removed, UidLogSync sync) {
  const std::string path = dir + "/" + kUidLogFile;
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) {
    if (errno != ENOENT) return errnoError("open " + path);
    return writeUidList(dir, after);
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return errnoError("stat " + path);
  const auto size = static_cast<uint64_t>(st.st_size);
  // Without a log bound to the list as read, or once the log has grown
  // past a bound that keeps the rewrite's cost per change small, the list
  // is written whole (and the log started afresh).
  if (after.logBase == 0 || size == 0 || size > kUidLogMinBound + after.entries.size() * 16)
    return writeUidList(dir, after);
  if (auto w = writeAll(fd.get(), formatUidLogBatch(after, changed, removed)); !w) return w;
  if (sync == UidLogSync::Durable && ::fdatasync(fd.get()) != 0)
    return errnoError("fdatasync " + path);
  return {};
}

std::optional<uint32_t> readFirstRecent(const std::string& dir) {
  UniqueFd fd(::open((dir + "/" + kUidListFile).c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return std::nullopt;
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  std::string_view head(buf, static_cast<size_t>(n));
  size_t nl = head.find('\n');
  if (nl == std::string_view::npos) return std::nullopt;
  auto fields = splitAny(head.substr(0, nl), " ");
  if (fields.size() < 5 || fields[0] != kUidListFile) return std::nullopt;
  const std::string& r = fields[4];
  if (r.size() < 2 || r[0] != 'R') return std::nullopt;
  auto recent = parseU32(std::string_view(r).substr(1));
  if (!recent) return std::nullopt;
  // Later claims are in the log's batch lines ("H <next> <recent> <modseq>").
  if (auto log = readFile(dir + "/" + kUidLogFile, kMaxUidListFile); log) {
    for (std::string_view line : lines(*log)) {
      if (line.substr(0, 2) != "H ") continue;
      auto h = splitAny(line.substr(2), " ");
      if (h.size() != 3) continue;
      if (auto v = parseU32(h[1])) recent = std::max(*recent, *v);
    }
  }
  return recent;
}

std::optional<UidList> parseDovecotUidList(std::string_view text) {
  std::vector<std::string_view> lines;
  size_t start = 0;
  while (start < text.size()) {  // the last line may lack its '\n'
    size_t nl = text.find('\n', start);
    if (nl == std::string_view::npos) nl = text.size();
    lines.push_back(text.substr(start, nl - start));
    start = nl + 1;
  }
  if (lines.empty()) return std::nullopt;
  auto head = splitAny(lines[0], " ");
  UidList l;
  if (head.size() >= 3 && head[0] == "1") {
    auto v = parseU32(head[1]), n = parseU32(head[2]);
    if (!v || !n) return std::nullopt;
    l.uidValidity = *v;
    l.uidNext = *n;
  } else if (!head.empty() && head[0] == "3") {
    bool haveV = false, haveN = false;
    for (size_t i = 1; i < head.size(); ++i) {
      const std::string& f = head[i];
      if (f.size() < 2) continue;
      if (f[0] == 'V' || f[0] == 'N') {
        auto v = parseU32(std::string_view(f).substr(1));
        if (!v) return std::nullopt;
        (f[0] == 'V' ? l.uidValidity : l.uidNext) = *v;
        (f[0] == 'V' ? haveV : haveN) = true;
      }
    }
    if (!haveV || !haveN) return std::nullopt;
  } else {
    return std::nullopt;
  }
  for (size_t i = 1; i < lines.size(); ++i) {
    std::string_view line = lines[i];
    if (line.empty()) continue;
    size_t sp = line.find(' ');
    if (sp == std::string_view::npos) return std::nullopt;
    auto uid = parseU32(line.substr(0, sp));
    if (!uid) return std::nullopt;
    std::string_view name;
    if (head[0] == "3") {
      // "<uid> [<fields>] :<name>": the name follows the first " :".
      size_t colon = line.find(" :", sp);
      if (colon != std::string_view::npos)
        name = line.substr(colon + 2);
      else
        name = line.substr(line.rfind(' ') + 1);
    } else {
      name = line.substr(sp + 1);
    }
    l.entries.push_back({*uid, std::string(maildirId(name)), 1, {}});
  }
  // Dovecot may not have stored N past the last UID after a crash.
  if (!l.entries.empty() && l.uidNext <= l.entries.back().uid)
    l.uidNext = l.entries.back().uid + 1;
  l.firstRecent = l.uidNext;
  if (!consistent(l)) return std::nullopt;
  return l;
}

Result<uint32_t> allocateUidValidity(const std::string& root) {
  auto lock = FileLock::acquire(root + "/yubin-store.lock");
  if (!lock) return lock.error();
  const std::string path = root + "/yubin-uidvalidity";
  uint32_t last = 0;
  if (auto text = readFile(path, 64); text) {
    if (auto v = parseU32(trim(*text))) last = *v;
  }
  auto now = static_cast<uint32_t>(::time(nullptr));
  uint32_t next = std::max(now, last + 1);
  if (next == 0) next = 1;
  if (auto st = atomicWrite(path, std::to_string(next) + "\n", 0600); !st) return st.error();
  return next;
}

}  // namespace yubin::store
