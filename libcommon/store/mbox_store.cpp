// MboxStore; see mbox_store.hpp.
#include "store/mbox_store.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <ctime>
#include <map>
#include <set>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"
#include "base/unique_fd.hpp"
#include "imap/mutf7.hpp"
#include "store/folder.hpp"
#include "store/mbox_folder.hpp"
#include "store/memory_store.hpp"  // checkMailboxName, validSpecialUse
#include "store/transform.hpp"
#include "store/uid_list.hpp"  // allocateUidValidity, FileLock
#include "store/watch_pool.hpp"

namespace yubin::store {
namespace {

constexpr const char* kInbox = "INBOX";
constexpr size_t kMaxKeywords = 26;
constexpr size_t kChunk = size_t{64} * 1024;
constexpr const char* kMetaDir = ".yubin";
constexpr const char* kSubscriptions = ".subscriptions";
constexpr const char* kSpecialUse = "special-use";
constexpr const char* kInitialised = "initialised";
constexpr size_t kMaxSmallFile = size_t{1} << 20;

std::optional<uint32_t> parseU32(std::string_view s) {
  auto v = parseU64(s);
  if (!v || *v > 0xffffffffULL) return std::nullopt;
  return static_cast<uint32_t>(*v);
}

std::string join(const std::vector<std::string>& v, const char* sep) {
  std::string out;
  for (const auto& s : v) {
    if (!out.empty()) out += sep;
    out += s;
  }
  return out;
}

// ---- the IMAP state of one message, from its header ----

struct Meta {
  bool pseudo = false;  // X-IMAP: the folder's internal data
  bool hasBase = false;
  uint32_t uidValidity = 0;
  uint32_t uidNext = 0;
  std::vector<std::string> keywords;  // of the mailbox (X-IMAP / X-IMAPbase)
  uint32_t uid = 0;
  Flags flags;
  bool old = false;  // Status: O
};

std::vector<std::string_view> words(std::string_view s) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == ',' || s[i] == '\r')) ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ' && s[j] != '\t' && s[j] != ',' && s[j] != '\r') ++j;
    if (j > i) out.push_back(s.substr(i, j - i));
    i = j;
  }
  return out;
}

// A keyword as IMAP allows it (an atom without the specials of flags).
bool validKeyword(std::string_view k) {
  if (k.empty() || k.size() > 100 || k[0] == '\\') return false;
  for (unsigned char c : k)
    if (c <= 0x20 || c >= 0x7f || c == '(' || c == ')' || c == '{' || c == '%' || c == '*' ||
        c == '"' || c == '\\' || c == ']')
      return false;
  return true;
}

void addKeyword(std::vector<std::string>& list, std::string_view k) {
  if (!validKeyword(k)) return;
  for (const auto& e : list)
    if (iequals(e, k)) return;
  list.emplace_back(k);
}

Meta parseMeta(std::string_view data) {
  Meta m;
  bool seenStatus = false, seenXStatus = false, seenKeywords = false, seenUid = false;
  std::string field;  // one unfolded field
  auto take = [&](std::string_view f) {
    size_t colon = f.find(':');
    if (colon == std::string_view::npos) return;
    std::string_view name = f.substr(0, colon);  // exactly, as MboxMetaFilter matches it
    std::string_view value = trim(f.substr(colon + 1));
    if (iequals(name, "Status") && !seenStatus) {
      seenStatus = true;
      for (char c : value) {
        if (c == 'R') m.flags.system |= kFlagSeen;
        if (c == 'O') m.old = true;
      }
    } else if (iequals(name, "X-Status") && !seenXStatus) {
      seenXStatus = true;
      for (char c : value) {
        if (c == 'A') m.flags.system |= kFlagAnswered;
        if (c == 'F') m.flags.system |= kFlagFlagged;
        if (c == 'T') m.flags.system |= kFlagDraft;
        if (c == 'D') m.flags.system |= kFlagDeleted;
      }
    } else if (iequals(name, "X-Keywords") && !seenKeywords) {
      seenKeywords = true;
      for (auto w : words(value)) addKeyword(m.flags.keywords, w);
    } else if (iequals(name, "X-UID") && !seenUid) {
      seenUid = true;
      auto v = parseU32(value);
      m.uid = v ? *v : 0;
    } else if (iequals(name, "X-IMAPbase") || iequals(name, "X-IMAP")) {
      // Any X-IMAP field makes the pseudo message, as mboxIsPseudoMessage
      // (POP3) decides it; the first of the two fields is the base.
      if (iequals(name, "X-IMAP")) m.pseudo = true;
      if (m.hasBase) return;
      auto w = words(value);
      if (w.size() >= 2) {
        auto v = parseU32(w[0]);
        auto n = parseU32(w[1]);
        if (v && n) {
          m.hasBase = true;
          m.uidValidity = *v;
          m.uidNext = *n;
          for (size_t i = 2; i < w.size() && m.keywords.size() < kMaxKeywords; ++i)
            addKeyword(m.keywords, w[i]);
        }
      }
    }
  };
  mboxHeaderLines(data, [&](std::string_view line, size_t) {
    if (line[0] == ' ' || line[0] == '\t') {
      if (field.size() < 4096) field.append(line);
    } else {
      take(field);
      field.assign(line.substr(0, 4096));
    }
    return true;
  });
  take(field);
  return m;
}

// ---- one mbox file, as read under its lock ----

struct FileId {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  off_t size = 0;
  int64_t mtimeSec = 0;
  long mtimeNsec = 0;
  bool operator==(const FileId&) const = default;
};

FileId fileId(const struct stat& st) {
  return {true, st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
}

FileId statPath(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return {};
  return fileId(st);
}

struct Msg {
  uint64_t dataOffset = 0;
  uint64_t endOffset = 0;
  bool hasFromLine = true;
  std::string sender;
  std::string dateText;
  int64_t date = 0;
  uint32_t uid = 0;  // after assignment (State::needsWrite tells whether it is on disk)
  Flags flags;
  bool old = false;
  uint64_t size = 0;  // visible, CRLF
};

struct State {
  FileId id;
  uint32_t uidValidity = 0;
  uint32_t uidNext = 1;
  std::vector<std::string> keywords;
  bool pseudo = false;
  std::vector<Msg> msgs;
  bool needsWrite = false;  // UIDs or the base are missing or out of order on disk
  // File offset of the base's 10-digit UIDNEXT (0: none that can be
  // updated in place).
  uint64_t baseNextAt = 0;
};

// Where the UIDNEXT of the base field starts in a message's data, when it
// is written with exactly 10 digits (as we and Dovecot write it).
std::optional<size_t> baseNextOffset(std::string_view data) {
  std::optional<size_t> out;
  mboxHeaderLines(data, [&](std::string_view line, size_t pos) {
    size_t colon = line.find(':');
    if (colon == std::string_view::npos ||
        !(iequals(line.substr(0, colon), "X-IMAPbase") || iequals(line.substr(0, colon), "X-IMAP")))
      return true;
    size_t i = colon + 1;
    while (i < line.size() && line[i] == ' ') ++i;
    while (i < line.size() && line[i] >= '0' && line[i] <= '9') ++i;
    if (i >= line.size() || line[i] != ' ') return false;
    while (i < line.size() && line[i] == ' ') ++i;
    size_t j = i;
    while (j < line.size() && line[j] >= '0' && line[j] <= '9') ++j;
    if (j - i == 10 && (j == line.size() || line[j] == ' ')) out = pos + i;
    return false;
  });
  return out;
}

// Feeds the first `size` bytes of fd to a parser with the callback.
Status parseFile(int fd, uint64_t size, const MboxParser::Callback& cb) {
  MboxParser parser(cb, true);
  std::string buf(kChunk, '\0');
  for (uint64_t pos = 0; pos < size;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(kChunk, size - pos));
    auto got = mboxPread(fd, buf.data(), n, pos);
    if (!got) return got.error();
    if (*got == 0) return Error{"mbox shorter than its size", EIO};
    if (auto s = parser.feed(std::string_view(buf.data(), *got)); !s) return s;
    pos += *got;
  }
  return parser.finish();
}

// Reads the file (the caller holds its lock) and assigns UIDs where the
// file lacks them (needsWrite then says the file must be written).
Result<State> loadState(int fd, const FileId& id) {
  State s;
  s.id = id;
  uint32_t baseNext = 0;
  bool hasBase = false;
  size_t n = 0;
  auto st = parseFile(fd, static_cast<uint64_t>(id.size), [&](MboxMessage&& m) -> Status {
    Meta meta = parseMeta(m.data);
    const bool first = n++ == 0;
    if (first && meta.hasBase) {
      hasBase = true;
      s.uidValidity = meta.uidValidity;
      baseNext = meta.uidNext;
      s.keywords = meta.keywords;
      if (auto off = baseNextOffset(m.data)) {
        // The data is un-quoted: check that the digits are where we think.
        const uint64_t at = m.dataOffset + *off;
        char digits[10];
        auto got = mboxPread(fd, digits, sizeof digits, at);
        if (got && *got == sizeof digits &&
            std::string_view(digits, sizeof digits) == std::string_view(m.data).substr(*off, 10))
          s.baseNextAt = at;
      }
    }
    if (first && meta.pseudo) {
      s.pseudo = true;
      return {};
    }
    Msg msg;
    msg.dataOffset = m.dataOffset;
    msg.endOffset = m.endOffset;
    msg.hasFromLine = m.hasFromLine;
    msg.sender = std::move(m.from.sender);
    msg.dateText = std::move(m.from.dateText);
    msg.date = m.from.date.value_or(0);
    msg.uid = meta.uid;
    msg.flags = std::move(meta.flags);
    msg.old = meta.old;
    msg.size = crlfSize(mboxVisible(m.data));
    // The last message may end without LF at the end of the file; a write
    // adds one (the separator needs it), so write it before any client
    // sees the message, which then never changes.
    if (!m.data.empty() && m.data.back() != '\n') s.needsWrite = true;
    for (const auto& k : msg.flags.keywords)
      if (s.keywords.size() < kMaxKeywords) addKeyword(s.keywords, k);
    s.msgs.push_back(std::move(msg));
    return {};
  });
  if (!st) return st.error();
  // Keywords a message has but the mailbox list cannot hold are dropped.
  for (auto& m : s.msgs) {
    std::vector<std::string> kept;
    for (const auto& k : m.flags.keywords)
      for (const auto& e : s.keywords)
        if (iequals(e, k)) kept.push_back(e);
    m.flags.keywords = std::move(kept);
  }
  // An X-UID counts only below the base's UIDNEXT and above the one before
  // (as Dovecot checks it): one a sender wrote into a message, or one left
  // by a program that did not keep the base, gets a new UID.
  uint64_t next = std::max<uint32_t>(1, baseNext);
  uint32_t prev = 0;
  bool exhausted = false;
  for (auto& m : s.msgs) {
    if (m.uid == 0 || m.uid <= prev || m.uid >= next) {
      if (next >= 0xfffffffeULL) {  // a rewrite needs UIDNEXT <= 2^32 - 2
        exhausted = true;
        break;
      }
      m.uid = static_cast<uint32_t>(next++);
      s.needsWrite = true;
    }
    prev = m.uid;
  }
  if (exhausted || next >= 0xffffffffULL) {
    // No UID left for a message, or no UIDNEXT a rewrite can keep (a base
    // with UIDNEXT near 2^32 - 1, which a sender or a broken program can
    // write): the folder starts over with UIDs from 1 under a new
    // UIDVALIDITY (RFC 3501 §2.3.1.1), given at the write, rather than
    // never opening or changing again.
    if (s.msgs.size() >= 0xfffffffdULL) return Error{"mbox: UIDs exhausted", EOVERFLOW};
    next = 1;
    for (auto& m : s.msgs) m.uid = static_cast<uint32_t>(next++);
    s.uidValidity = 0;
    s.needsWrite = true;
  }
  s.uidNext = static_cast<uint32_t>(next);
  if (!hasBase || s.uidValidity == 0) s.needsWrite = true;
  return s;
}

// What a write changes, by UID.
struct Plan {
  std::set<uint32_t> drop;
  std::map<uint32_t, Flags> flags;
  bool markOld = false;  // every message loses \Recent (a read-write session took them)
};

struct Extra {
  std::unique_ptr<MessageSource> source;  // the message as the client sees it
  Flags flags;
  int64_t date = 0;
};

std::string systemStatus(const Flags& f, bool old) {
  std::string s;
  if (f.system & kFlagSeen) s += 'R';
  if (old) s += 'O';
  return s;
}

std::string xStatus(const Flags& f) {
  std::string s;
  if (f.system & kFlagAnswered) s += 'A';
  if (f.system & kFlagFlagged) s += 'F';
  if (f.system & kFlagDraft) s += 'T';
  if (f.system & kFlagDeleted) s += 'D';
  return s;
}

std::string baseValue(const State& s, uint32_t uidNext) {
  char num[16];
  std::snprintf(num, sizeof num, "%010u", uidNext);  // fixed width, as Dovecot writes it
  std::string v = std::to_string(s.uidValidity) + " " + num;
  for (const auto& k : s.keywords) v += " " + k;
  return v;
}

// The hidden fields for one message (eol: "\n" or "\r\n").
std::string metaFields(const State& s, uint32_t uidNext, bool first, uint32_t uid,
                       const Flags& f, bool old, std::string_view eol) {
  std::string out;
  if (first) out += "X-IMAPbase: " + baseValue(s, uidNext) + std::string(eol);
  if (auto st = systemStatus(f, old); !st.empty()) out += "Status: " + st + std::string(eol);
  if (auto xs = xStatus(f); !xs.empty()) out += "X-Status: " + xs + std::string(eol);
  if (!f.keywords.empty()) out += "X-Keywords: " + join(f.keywords, " ") + std::string(eol);
  out += "X-UID: " + std::to_string(uid) + std::string(eol);
  return out;
}

std::string pseudoMessage(const State& s, uint32_t uidNext) {
  return mboxPseudoMessage(baseValue(s, uidNext), ::time(nullptr));
}

// Line ending of the first line of data.
std::string_view eolOf(std::string_view data) {
  size_t nl = data.find('\n');
  return nl != std::string_view::npos && nl > 0 && data[nl - 1] == '\r' ? "\r\n" : "\n";
}

// Re-applies a keyword list: the names as the mailbox spells them.
void addFlags(Flags& to, const Flags& f, std::vector<std::string>& mailboxKeywords,
              bool canCreate) {
  to.system |= f.system;
  for (const auto& k : f.keywords) {
    const std::string* known = nullptr;
    for (const auto& e : mailboxKeywords)
      if (iequals(e, k)) known = &e;
    if (!known) {
      if (!canCreate || mailboxKeywords.size() >= kMaxKeywords || !validKeyword(k)) continue;
      mailboxKeywords.push_back(k);
      known = &mailboxKeywords.back();
    }
    bool has = false;
    for (const auto& e : to.keywords) has = has || iequals(e, *known);
    if (!has) to.keywords.push_back(*known);
  }
}

void removeFlags(Flags& from, const Flags& f) {
  from.system &= static_cast<uint8_t>(~f.system);
  std::erase_if(from.keywords, [&](const std::string& k) {
    for (const auto& r : f.keywords)
      if (iequals(r, k)) return true;
    return false;
  });
}

// A source whose bytes pass through MboxMetaFilter (a client's own
// Status: or X-UID: fields must not be taken for ours).
class FilteredSource final : public MessageSource {
 public:
  explicit FilteredSource(std::unique_ptr<MessageSource> inner) : inner_(std::move(inner)) {
    size_ = 0;
    (void)forEachChunk([this](std::string_view c) {
      size_ += c.size();
      return Status{};
    });
  }
  Status forEachChunk(const ChunkFn& fn) const override {
    MboxMetaFilter f;
    std::string out;
    auto st = inner_->forEachChunk([&](std::string_view c) -> Status {
      out.clear();
      f.feed(c, out);
      return out.empty() ? Status{} : fn(out);
    });
    if (!st) return st;
    out.clear();
    f.finish(out);
    return out.empty() ? Status{} : fn(out);
  }
  uint64_t size() const override { return size_; }

 private:
  std::unique_ptr<MessageSource> inner_;
  uint64_t size_ = 0;
};

// ---- the locked file ----

class LockedMbox {
 public:
  // Locks path (creating it when create; else ENOENT when missing) and
  // reads it.
  static Result<LockedMbox> open(const std::string& path, const MboxLockSettings& lock, Fs& fs,
                                 bool create) {
    if (!create && !statPath(path).exists) return Error{"no such mailbox file: " + path, ENOENT};
    auto w = MboxWriter::open(path, lock, fs);
    if (!w) return w.error();
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
    if (!fd) return errnoError("open " + path);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) return errnoError("fstat " + path);
    auto state = loadState(fd.get(), fileId(st));
    if (!state) return state.error();
    return LockedMbox(path, fs, std::move(*w), std::move(fd), std::move(*state));
  }

  State& state() { return state_; }
  int fd() const { return fd_.get(); }

  // Writes the file anew (see the header comment): the plan applied, the
  // extras appended with the next UIDs (returned). The state then
  // describes the new file; the locks are held until destruction.
  Result<std::vector<uint32_t>> rewrite(const Plan& plan, std::vector<Extra>& extras,
                                        const std::function<Result<uint32_t>()>& newValidity) {
    if (state_.uidValidity == 0) {
      auto v = newValidity();
      if (!v) return v.error();
      state_.uidValidity = *v;
    }
    const uint32_t firstExtra = state_.uidNext;
    if (uint64_t{firstExtra} + extras.size() >= 0xffffffffULL)
      return Error{"mbox: UIDs exhausted", EOVERFLOW};
    const uint32_t uidNext = firstExtra + static_cast<uint32_t>(extras.size());

    const std::string dir = dirName(path_);
    const size_t slash = path_.rfind('/');
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    const std::string tmp = (dir.empty() ? std::string() : dir + "/") + "." + base + ".yubin-" +
                            std::to_string(::getpid());
    UniqueFd out(
        fs_.open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!out) return errnoError("create " + tmp);
    ScopeExit removeTmp([&tmp] { ::unlink(tmp.c_str()); });
    MessageWriter w(fs_, out.get(), tmp, LineEndings::Keep, /*mboxQuote=*/true);

    std::vector<Msg> kept;
    bool first = true;
    size_t index = 0;
    const int64_t now = ::time(nullptr);
    auto writeOne = [&](const Msg& m, const std::string& visible) -> Status {
      Flags f = m.flags;
      if (auto it = plan.flags.find(m.uid); it != plan.flags.end()) f = it->second;
      const bool old = m.old || plan.markOld;
      std::string from = m.hasFromLine ? "From " + m.sender + " " + m.dateText + "\n"
                                       : mboxFromLine("MAILER-DAEMON", now);
      if (auto s = w.raw(from); !s) return s;
      // Our fields go at the end of the header block, as Dovecot puts them
      // (at the top, a first line starting with a blank would become their
      // continuation and vanish).
      const std::string_view eol = eolOf(visible);
      const std::string_view v = visible;
      size_t at = v.size();
      for (size_t pos = 0; pos < v.size();) {
        size_t nl = v.find('\n', pos);
        if (nl == std::string_view::npos) break;
        std::string_view line = v.substr(pos, nl - pos);
        if (line.empty() || line == "\r") {
          at = pos;
          break;
        }
        pos = nl + 1;
      }
      if (at == v.size() && !v.empty() && v.back() != '\n') {
        // The unterminated last line: a lone CR becomes the empty line
        // once the LF is added, so the fields go before it.
        size_t last = v.rfind('\n');
        last = last == std::string_view::npos ? 0 : last + 1;
        if (v.substr(last) == "\r") at = last;
      }
      if (auto s = w.put(v.substr(0, at)); !s) return s;
      if (at == v.size() && !v.empty() && v.back() != '\n') {
        if (auto s = w.put(eol); !s) return s;
      }
      if (auto s = w.put(metaFields(state_, uidNext, first, m.uid, f, old, eol)); !s) return s;
      if (auto s = w.put(v.substr(at)); !s) return s;
      w.endMessage();
      if (w.lastByte() != '\n') {
        if (auto s = w.raw("\n"); !s) return s;
      }
      if (auto s = w.raw("\n"); !s) return s;
      first = false;
      Msg k = m;
      k.flags = f;
      k.old = old;
      k.size = crlfSize(visible);
      kept.push_back(std::move(k));
      return {};
    };
    bool sawPseudo = false;
    auto st = parseFile(fd_.get(), static_cast<uint64_t>(state_.id.size),
                        [&](MboxMessage&& m) -> Status {
                          if (state_.pseudo && !sawPseudo) {
                            sawPseudo = true;
                            return {};
                          }
                          if (index >= state_.msgs.size())
                            return Error{path_ + ": changed while locked", EIO};
                          const Msg& msg = state_.msgs[index++];
                          if (plan.drop.count(msg.uid)) return {};
                          return writeOne(msg, mboxVisible(m.data));
                        });
    if (!st) return st.error();
    if (index != state_.msgs.size()) return Error{path_ + ": changed while locked", EIO};
    std::vector<uint32_t> assigned;
    for (size_t i = 0; i < extras.size(); ++i) {
      Extra& e = extras[i];
      std::string data;
      if (auto s = e.source->forEachChunk([&](std::string_view c) {
            data.append(c);
            return Status{};
          });
          !s)
        return s.error();
      Msg m;
      m.hasFromLine = true;
      m.sender = "MAILER-DAEMON";
      m.date = e.date ? e.date : now;
      std::string line = mboxFromLine(m.sender, m.date);
      auto parsed = mboxParseFromLine(line);
      m.dateText = parsed.dateText;
      m.uid = firstExtra + static_cast<uint32_t>(i);
      m.flags = e.flags;
      if (auto s = writeOne(m, mboxVisible(data)); !s) return s.error();
      assigned.push_back(m.uid);
    }
    if (kept.empty()) {
      if (auto s = w.raw(pseudoMessage(state_, uidNext)); !s) return s.error();
    }
    if (auto s = w.flush(); !s) return s.error();
    struct stat old;
    if (::fstat(fd_.get(), &old) == 0) (void)::fchmod(out.get(), old.st_mode & 07777);
    if (fs_.fsync(out.get()) != 0) return errnoError("fsync " + tmp);
    if (::close(out.release()) != 0) return errnoError("close " + tmp);
    if (fs_.rename(tmp.c_str(), path_.c_str()) != 0) return errnoError("rename " + tmp);
    removeTmp.dismiss();
    if (auto s = fsyncDir(dir.empty() ? std::string(".") : dir); !s) return s.error();
    // The new file is the state now (offsets are read again by whoever
    // needs them: they changed).
    UniqueFd nfd(::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK));
    if (!nfd) return errnoError("open " + path_);
    struct stat nst;
    if (::fstat(nfd.get(), &nst) != 0) return errnoError("fstat " + path_);
    auto ns = loadState(nfd.get(), fileId(nst));
    if (!ns) return ns.error();
    if (ns->needsWrite || ns->msgs.size() != kept.size())
      return Error{path_ + ": the rewritten file does not read back as written", EIO};
    fd_ = std::move(nfd);
    state_ = std::move(*ns);
    return assigned;
  }

  // Appends at the end like a delivery (only when !state().needsWrite).
  // First the base's UIDNEXT is raised in place (ten digits over ten
  // digits: the file keeps its size and layout; a crash after it only
  // leaves unused UIDs), then the messages are appended with their X-UID.
  Result<std::vector<uint32_t>> append(std::vector<Extra>& extras) {
    std::vector<uint32_t> assigned;
    uint32_t uid = state_.uidNext;
    if (uint64_t{uid} + extras.size() >= 0xfffffffeULL) return Error{"mbox: UIDs exhausted", EOVERFLOW};
    {
      char digits[16];
      std::snprintf(digits, sizeof digits, "%010u", uid + static_cast<uint32_t>(extras.size()));
      UniqueFd w(fs_.open(path_.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600));
      if (!w) return errnoError("open " + path_);
      ssize_t n;
      do {
        n = ::pwrite(w.get(), digits, 10, static_cast<off_t>(state_.baseNextAt));
      } while (n < 0 && errno == EINTR);
      if (n != 10) return errnoError("write " + path_, n < 0 ? errno : EIO);
      if (fs_.fsync(w.get()) != 0) return errnoError("fsync " + path_);
    }
    for (Extra& e : extras) {
      if (uid >= 0xfffffffeU) return Error{"mbox: UIDs exhausted", EOVERFLOW};
      FilteredSource src(std::move(e.source));
      // The eol of our fields follows the message's first line.
      std::string head;
      (void)src.forEachChunk([&](std::string_view c) {
        head.append(c.substr(0, std::min<size_t>(c.size(), 1024 - head.size())));
        return head.size() >= 1024 ? Status{Error{"enough", ECANCELED}} : Status{};
      });
      std::string fields = metaFields(state_, 0, false, uid, e.flags, false, eolOf(head));
      MboxAppendOptions opts;
      opts.lineEndings = LineEndings::Keep;
      opts.sync = true;
      if (auto s = writer_.append("MAILER-DAEMON", e.date ? e.date : ::time(nullptr), fields, src,
                                  opts);
          !s)
        return s.error();
      assigned.push_back(uid++);
    }
    return assigned;
  }

 private:
  LockedMbox(std::string path, Fs& fs, MboxWriter w, UniqueFd fd, State s)
      : path_(std::move(path)), fs_(fs), writer_(std::move(w)), fd_(std::move(fd)),
        state_(std::move(s)) {}

  std::string path_;
  Fs& fs_;
  MboxWriter writer_;
  UniqueFd fd_;
  State state_;
};

// ---- the store ----

struct Shared {
  MboxStoreSettings settings;
  std::string root;
  Fs* fs;
  std::shared_ptr<WatchPool> watches;  // settings.watches, or the store's own
  std::string meta() const { return root + "/" + kMetaDir; }
  Result<uint32_t> newValidity() const {
    if (auto st = makeDirs(meta(), 0700); st) {
      auto v = allocateUidValidity(meta());
      if (v) return v;
      YLOG_WARN("mbox store: cannot keep the UIDVALIDITY counter root=%s error=\"%s\"",
                root.c_str(), v.error().message.c_str());
    }
    auto now = static_cast<uint32_t>(::time(nullptr));
    return now ? now : 1;
  }
  Result<std::string> path(const std::string& name) const {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    if (*n == kInbox) return settings.inbox;
    auto enc = imap::mutf7Encode(*n);
    if (!enc) return Error{"bad mailbox name", EINVAL};
    if (enc->size() >= 5 && enc->compare(enc->size() - 5, 5, ".lock") == 0)
      return Error{"a mailbox name may not end in .lock", EINVAL};
    if (enc->size() > 255) return Error{"mailbox name too long", EINVAL};
    return root + "/" + *enc;
  }
  Result<LockedMbox> lock(const std::string& path, bool inbox) const {
    return LockedMbox::open(path, settings.lock, *fs, inbox);
  }
  // Locks and brings the file's UIDs up to date on disk.
  Result<LockedMbox> lockSynced(const std::string& path, bool inbox) const {
    auto l = lock(path, inbox);
    if (!l) return l.error();
    if (l->state().needsWrite) {
      std::vector<Extra> none;
      auto r = l->rewrite(Plan{}, none, [this] { return newValidity(); });
      if (!r) return r.error();
    }
    return l;
  }
};

bool isInbox(const std::string& name) { return name == kInbox; }

// ---- the selected mailbox ----

class MboxMailbox final : public ImapMailbox {
 public:
  MboxMailbox(std::shared_ptr<Shared> shared, std::string name, std::string path, bool readOnly)
      : shared_(std::move(shared)),
        name_(std::move(name)),
        path_(std::move(path)),
        readOnly_(readOnly) {}

  ~MboxMailbox() override { shared_->watches->keep(std::move(notify_)); }
  MboxMailbox(const MboxMailbox&) = delete;
  MboxMailbox& operator=(const MboxMailbox&) = delete;

  Status init() {
    std::string dir = dirName(path_);
    notify_ = shared_->watches->take({dir.empty() ? "." : dir},
                                     IN_MODIFY | IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM |
                                         IN_CREATE | IN_DELETE | IN_ATTRIB);
    auto r = refresh(true, true);
    if (!r) return r.error();
    return {};
  }

  uint32_t uidValidity() const override { return uidValidity_; }
  uint32_t uidNext() const override { return uidNext_; }
  uint64_t highestModSeq() const override { return 0; }
  bool readOnly() const override { return readOnly_; }
  std::vector<std::string> keywords() const override { return keywords_; }
  bool canCreateKeywords() const override {
    return !readOnly_ && keywords_.size() < kMaxKeywords;
  }
  size_t messageCount() const override { return view_.size(); }
  uint32_t uidAt(size_t i) const override { return view_[i].uid; }
  MessageInfo messageAt(size_t i) const override { return view_[i]; }
  MessageBrief briefAt(size_t i) const override { return briefOf(view_[i]); }
  size_t sessionBytes() const override { return viewBytes(view_); }

  Result<MailboxChanges> sync(bool allowExpunge) override { return refresh(allowExpunge, false); }

  Result<std::unique_ptr<MessageReader>> open(size_t index) override {
    if (index >= view_.size()) return Error{"no such message", EINVAL};
    if (view_[index].expunged || !fd_) return Error{"message expunged", ENOENT};
    return mboxMessageReader(fd_->get(), spans_[index].first, spans_[index].second, fd_);
  }

  Status setFlags(const std::vector<size_t>& indexes, FlagOp op, const Flags& flags) override {
    if (readOnly_) return Error{"mailbox is read-only", EROFS};
    for (size_t i : indexes)
      if (i >= view_.size()) return Error{"no such message", EINVAL};
    auto l = shared_->lock(path_, isInbox(name_));
    if (!l) return l.error();
    State& s = l->state();
    if (s.uidValidity != uidValidity_) return Error{"mailbox replaced", ESTALE};
    std::map<uint32_t, size_t> byUid;
    for (size_t i = 0; i < s.msgs.size(); ++i) byUid[s.msgs[i].uid] = i;
    Plan plan;
    for (size_t i : indexes) {
      if (view_[i].expunged) continue;
      auto it = byUid.find(view_[i].uid);
      if (it == byUid.end()) continue;  // gone: the next sync reports it
      Flags f = s.msgs[it->second].flags;
      if (op == FlagOp::Replace) f = Flags{};
      if (op == FlagOp::Remove)
        removeFlags(f, flags);
      else
        addFlags(f, flags, s.keywords, true);
      plan.flags[view_[i].uid] = f;
    }
    if (plan.flags.empty() && !s.needsWrite) return {};
    std::vector<Extra> none;
    auto r = l->rewrite(plan, none, [this] { return shared_->newValidity(); });
    if (!r) return r.error();
    keywords_ = l->state().keywords;
    for (size_t i : indexes)
      if (auto it = plan.flags.find(view_[i].uid); it != plan.flags.end())
        view_[i].flags = it->second;
    return {};
  }

  Status expunge(const std::vector<size_t>& indexes) override {
    if (readOnly_) return Error{"mailbox is read-only", EROFS};
    for (size_t i : indexes)
      if (i >= view_.size()) return Error{"no such message", EINVAL};
    auto l = shared_->lock(path_, isInbox(name_));
    if (!l) return l.error();
    if (l->state().uidValidity != uidValidity_ && !l->state().needsWrite)
      return Error{"mailbox replaced", ESTALE};
    Plan plan;
    for (size_t i : indexes)
      if (!view_[i].expunged) plan.drop.insert(view_[i].uid);
    if (plan.drop.empty()) return {};
    std::vector<Extra> none;
    auto r = l->rewrite(plan, none, [this] { return shared_->newValidity(); });
    if (!r) return r.error();
    for (size_t i : indexes) view_[i].expunged = true;
    return {};
  }

  Result<CopiedUids> copy(const std::vector<size_t>& indexes, const std::string& dest,
                          bool move) override {
    for (size_t i : indexes)
      if (i >= view_.size()) return Error{"no such message", EINVAL};
    auto destPath = shared_->path(dest);
    if (!destPath) return destPath.error();
    std::vector<size_t> order;
    for (size_t i : indexes)
      if (!view_[i].expunged) order.push_back(i);
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    CopiedUids out;
    std::vector<Extra> extras;
    for (size_t i : order) {
      auto r = open(i);
      if (!r) return r.error();
      std::string data;
      for (;;) {
        auto n = (*r)->read(data, kChunk);
        if (!n) return n.error();
        if (*n == 0) break;
      }
      Extra e;
      e.source = std::make_unique<MemorySource>(std::move(data));
      e.flags = view_[i].flags;
      e.date = view_[i].internalDate;
      extras.push_back(std::move(e));
      out.sourceUids.push_back(view_[i].uid);
    }
    auto added = appendExtras(*shared_, *destPath, isInbox(*checkMailboxName(dest, '.')), extras);
    if (!added) return added.error();
    out.uidValidity = added->uidValidity;
    out.destUids = std::move(added->uids);
    if (move && !order.empty()) {
      if (auto st = expunge(order); !st) return st.error();
    }
    return out;
  }

  int changeFd() const override { return notify_.fd(); }
  void drainChangeFd() override { notify_.drain(); }

  // APPEND and COPY into path: the extras get the next UIDs.
  static Result<AppendedUids> appendExtras(const Shared& sh, const std::string& path, bool inbox,
                                           std::vector<Extra>& extras) {
    auto l = sh.lock(path, inbox);
    if (!l) return l.error();
    AppendedUids out;
    Result<std::vector<uint32_t>> uids = std::vector<uint32_t>{};
    // The append puts our fields first: a message starting with a blank
    // (a continuation line without a field) goes through a rewrite, which
    // puts them last.
    bool blankFirst = false;
    for (const Extra& e : extras) {
      char c = 0;
      (void)e.source->forEachChunk([&](std::string_view chunk) {
        c = chunk[0];
        return Status{Error{"first byte read", ECANCELED}};
      });
      blankFirst = blankFirst || c == ' ' || c == '\t';
    }
    if (l->state().needsWrite || l->state().baseNextAt == 0 || blankFirst)
      uids = l->rewrite(Plan{}, extras, [&sh] { return sh.newValidity(); });
    else if (!extras.empty())
      uids = l->append(extras);
    if (!uids) return uids.error();
    out.uidValidity = l->state().uidValidity;
    out.uids = std::move(*uids);
    return out;
  }

 private:
  Result<MailboxChanges> refresh(bool allowExpunge, bool initial) {
    MailboxChanges ch;
    FileId now = statPath(path_);
    if (!initial && now == seen_) {
      if (allowExpunge) removeExpunged(ch);
      return ch;
    }
    if (!now.exists && !isInbox(name_)) {
      // Deleted: everything goes.
      seen_ = now;
      for (auto& m : view_) m.expunged = true;
      gone_ = true;
      if (initial) return Error{"no such mailbox: " + name_, ENOENT};
      if (allowExpunge) removeExpunged(ch);
      return ch;
    }
    auto l = shared_->lock(path_, isInbox(name_));
    if (!l) {
      if (!initial && l.error().errnum == ENOENT) {
        seen_ = {};
        for (auto& m : view_) m.expunged = true;
        if (allowExpunge) removeExpunged(ch);
        return ch;
      }
      return l.error();
    }
    State* s = &l->state();
    // \Recent: a read-write session takes what has no O yet.
    std::set<uint32_t> taken;
    if (!readOnly_)
      for (const auto& m : s->msgs)
        if (!m.old) taken.insert(m.uid);
    if (s->needsWrite || !taken.empty()) {
      Plan plan;
      plan.markOld = !taken.empty();
      std::vector<Extra> none;
      auto r = l->rewrite(plan, none, [this] { return shared_->newValidity(); });
      if (!r) return r.error();
      s = &l->state();
    }
    if (initial) uidValidity_ = s->uidValidity;
    if (s->uidValidity != uidValidity_ || gone_) {
      // Replaced under a new UIDVALIDITY (or re-created): nothing of it is ours.
      gone_ = true;
      seen_ = s->id;
      for (auto& m : view_) m.expunged = true;
      if (allowExpunge) removeExpunged(ch);
      return ch;
    }
    merge(*s, taken, allowExpunge, ch);
    seen_ = s->id;
    auto sharedFd = std::make_shared<UniqueFd>(::dup(l->fd()));
    if (!*sharedFd) return errnoError("dup");
    fd_ = std::move(sharedFd);
    return ch;
  }

  void merge(const State& s, const std::set<uint32_t>& taken, bool allowExpunge,
             MailboxChanges& ch) {
    uidNext_ = std::max(uidNext_, s.uidNext);
    keywords_ = s.keywords;
    std::map<uint32_t, const Msg*> byUid;
    for (const auto& m : s.msgs) byUid[m.uid] = &m;
    // Old entries: flags, offsets, or gone.
    std::vector<bool> flagged(view_.size());
    for (size_t i = 0; i < view_.size(); ++i) {
      auto it = byUid.find(view_[i].uid);
      if (it == byUid.end()) {
        view_[i].expunged = true;
        continue;
      }
      if (view_[i].expunged) continue;
      const Msg& m = *it->second;
      if (!(view_[i].flags == m.flags)) {
        view_[i].flags = m.flags;
        flagged[i] = true;
      }
      view_[i].size = m.size;
      spans_[i] = {m.dataOffset, m.endOffset};
    }
    const uint32_t last = view_.empty() ? 0 : view_.back().uid;
    for (const auto& m : s.msgs) {
      if (m.uid <= last) continue;
      MessageInfo info;
      info.uid = m.uid;
      info.flags = m.flags;
      info.recent = readOnly_ ? !m.old : taken.count(m.uid) > 0;
      info.size = m.size;
      info.internalDate = m.date;
      view_.push_back(std::move(info));
      spans_.emplace_back(m.dataOffset, m.endOffset);
      flagged.push_back(false);
      ch.existsChanged = true;
    }
    if (allowExpunge) {
      removeExpunged(ch, &flagged);
    }
    for (size_t i = 0; i < flagged.size() && i < view_.size(); ++i)
      if (flagged[i]) ch.flagsChanged.push_back(i);
  }

  void removeExpunged(MailboxChanges& ch, std::vector<bool>* flagged = nullptr) {
    for (size_t i = view_.size(); i-- > 0;) {
      if (!view_[i].expunged) continue;
      ch.expunged.push_back(static_cast<uint32_t>(i + 1));
      ch.expungedUids.push_back(view_[i].uid);
      view_.erase(view_.begin() + static_cast<ptrdiff_t>(i));
      spans_.erase(spans_.begin() + static_cast<ptrdiff_t>(i));
      if (flagged) flagged->erase(flagged->begin() + static_cast<ptrdiff_t>(i));
    }
  }

  std::shared_ptr<Shared> shared_;
  std::string name_;
  std::string path_;
  bool readOnly_;
  bool gone_ = false;
  uint32_t uidValidity_ = 0;
  uint32_t uidNext_ = 1;
  std::vector<std::string> keywords_;
  std::vector<MessageInfo> view_;
  std::vector<std::pair<uint64_t, uint64_t>> spans_;  // data range in fd_'s file
  std::shared_ptr<UniqueFd> fd_;
  FileId seen_;
  Watch notify_;  // changeFd(), from and back to shared_->watches
};

// ---- APPEND ----

class MboxAppend final : public AppendTransaction {
 public:
  MboxAppend(std::shared_ptr<Shared> shared, std::string path, bool inbox, UniqueFd spool)
      : shared_(std::move(shared)), path_(std::move(path)), inbox_(inbox),
        spool_(std::move(spool)) {}
  Status write(std::string_view bytes) override {
    if (auto st = writeAllFs(realFs(), spool_.get(), bytes, "append spool"); !st) return st;
    size_ += bytes.size();
    return {};
  }
  Result<AppendedUids> commit(const Flags& flags, int64_t internalDate) override {
    UniqueFd dup(::dup(spool_.get()));
    if (!dup) return errnoError("dup");
    std::vector<Extra> extras(1);
    extras[0].source = std::make_unique<FileSource>(std::move(dup), 0, size_);
    extras[0].flags = flags;
    extras[0].date = internalDate;
    // Keywords beyond the mailbox's capacity are dropped by the write.
    return MboxMailbox::appendExtras(*shared_, path_, inbox_, extras);
  }

 private:
  std::shared_ptr<Shared> shared_;
  std::string path_;
  bool inbox_;
  UniqueFd spool_;
  uint64_t size_ = 0;
};

// A temporary name beside path that list() never takes for a mailbox.
std::string hiddenTemp(const std::string& path) {
  const size_t slash = path.rfind('/');
  return path.substr(0, slash + 1) + "." + path.substr(slash + 1) + ".yubin-new";
}

class MboxStore final : public MailStore {
 public:
  explicit MboxStore(std::shared_ptr<Shared> shared) : shared_(std::move(shared)) {}

  Status init() {
    if (!shared_->settings.createDefaults) return {};
    const std::string marker = shared_->meta() + "/" + kInitialised;
    if (statPath(marker).exists) return {};
    if (auto st = makeDirs(shared_->meta(), 0700); !st) return st;
    auto l = list();
    if (!l) return l.error();
    if (l->size() == 1) {
      for (const auto& d : kDefaultMailboxes) {
        if (auto st = create(d.name, d.use); !st && st.error().errnum != EEXIST) return st;
        if (auto st = subscribe(d.name, true); !st) return st;
      }
    }
    return atomicWrite(marker, "1\n", 0600);
  }

  char delimiter() const override { return '.'; }

  Result<std::vector<MailboxListEntry>> list() override {
    std::map<std::string, MailboxListEntry> all;
    if (DIR* d = ::opendir(shared_->root.c_str())) {
      ScopeExit close([d] { ::closedir(d); });
      while (struct dirent* e = ::readdir(d)) {
        std::string file = e->d_name;
        if (file.empty() || file[0] == '.') continue;
        if (file.size() >= 5 && file.compare(file.size() - 5, 5, ".lock") == 0) continue;
        auto name = imap::mutf7Decode(file);
        if (!name) continue;
        auto checked = checkMailboxName(*name, '.');
        if (!checked || *checked != *name || *name == kInbox) continue;
        if (!statPath(shared_->root + "/" + file).exists) continue;
        all[*name].name = *name;
      }
    }
    // Parents that exist only as a path component.
    std::vector<std::string> names;
    for (const auto& [n, e] : all) names.push_back(n);
    for (const auto& n : names) {
      for (size_t dot = n.find('.'); dot != std::string::npos; dot = n.find('.', dot + 1)) {
        std::string parent = n.substr(0, dot);
        auto [it, fresh] = all.try_emplace(parent);
        if (fresh) {
          it->second.name = parent;
          it->second.noSelect = true;
        }
        it->second.hasChildren = true;
      }
    }
    auto uses = specialUses();
    auto subs = subscriptions();
    std::set<std::string> subscribed;
    if (subs) subscribed.insert(subs->begin(), subs->end());
    std::vector<MailboxListEntry> out;
    MailboxListEntry inbox;
    inbox.name = kInbox;
    inbox.subscribed = subscribed.count(kInbox) > 0;
    if (auto it = all.find(kInbox); it != all.end()) {
      inbox.hasChildren = it->second.hasChildren;
      all.erase(it);
    }
    out.push_back(inbox);
    for (auto& [name, e] : all) {
      e.subscribed = subscribed.count(name) > 0;
      if (auto u = uses.find(name); u != uses.end() && !e.noSelect) e.specialUse = u->second;
      out.push_back(std::move(e));
    }
    return out;
  }

  Result<std::vector<std::string>> subscriptions() override {
    return readSubscriptions(shared_->root + "/" + kSubscriptions);
  }

  Status subscribe(const std::string& name, bool on) override {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    if (auto st = makeDirs(shared_->meta(), 0700); !st) return st;
    auto lock = FileLock::acquire(shared_->meta() + "/subscriptions.lock");
    if (!lock) return lock.error();
    return changeSubscription(shared_->root + "/" + kSubscriptions, *n, on);
  }

  Status create(const std::string& name, const std::string& specialUse) override {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    if (!validSpecialUse(specialUse)) return Error{"unknown special-use attribute", EINVAL};
    if (*n == kInbox) return Error{"mailbox exists: INBOX", EEXIST};
    auto path = shared_->path(*n);
    if (!path) return path.error();
    if (statPath(*path).exists) return Error{"mailbox exists: " + *n, EEXIST};
    for (size_t d = n->find('.'); d != std::string::npos; d = n->find('.', d + 1)) {
      std::string parent = n->substr(0, d);
      if (parent == kInbox) continue;
      auto pp = shared_->path(parent);
      if (!pp) return pp.error();
      if (!statPath(*pp).exists) {
        if (auto st = createFile(*pp); !st && st.error().errnum != EEXIST) return st;
      }
    }
    if (auto st = createFile(*path); !st) return st;
    if (!specialUse.empty()) return setSpecialUse(*n, specialUse);
    return {};
  }

  Status remove(const std::string& name) override {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    if (*n == kInbox) return Error{"cannot delete INBOX", EINVAL};
    auto path = shared_->path(*n);
    if (!path) return path.error();
    if (!statPath(*path).exists) return Error{"no such mailbox: " + *n, ENOENT};
    {
      // Under its lock, so a writer in the middle of a rewrite finishes first.
      auto l = shared_->lock(*path, false);
      if (!l) return l.error();
      if (shared_->fs->unlink(path->c_str()) != 0) return errnoError("unlink " + *path);
    }
    (void)fsyncDir(shared_->root);
    return setSpecialUse(*n, "");
  }

  Status rename(const std::string& fromName, const std::string& toName) override {
    auto from = checkMailboxName(fromName, '.');
    if (!from) return from.error();
    auto to = checkMailboxName(toName, '.');
    if (!to) return to.error();
    auto toPath = shared_->path(*to);
    if (!toPath) return toPath.error();
    if (*to == kInbox) return Error{"cannot rename onto INBOX", EEXIST};
    if (to->rfind(*from + ".", 0) == 0 || *to == *from)
      return Error{"cannot rename a mailbox into itself", EINVAL};
    if (*from == kInbox) return renameInbox(*to, *toPath);
    auto l = list();
    if (!l) return l.error();
    std::vector<std::pair<std::string, std::string>> moves;  // name -> new name
    for (const auto& e : *l) {
      if (e.noSelect) continue;
      if (e.name == *from || e.name.rfind(*from + ".", 0) == 0)
        moves.emplace_back(e.name, *to + e.name.substr(from->size()));
    }
    bool fromExists = false;
    for (const auto& [a, b] : moves) fromExists = fromExists || a == *from;
    if (!fromExists) return Error{"no such mailbox: " + *from, ENOENT};
    for (const auto& [a, b] : moves) {
      auto bp = shared_->path(b);
      if (!bp) return bp.error();
      if (statPath(*bp).exists) return Error{"mailbox exists: " + b, EEXIST};
    }
    for (size_t d = to->find('.'); d != std::string::npos; d = to->find('.', d + 1)) {
      auto pp = shared_->path(to->substr(0, d));
      if (pp && !statPath(*pp).exists) {
        if (auto st = createFile(*pp); !st && st.error().errnum != EEXIST) return st;
      }
    }
    auto uses = specialUses();
    for (const auto& [a, b] : moves) {
      auto ap = shared_->path(a);
      auto bp = shared_->path(b);
      if (!ap || !bp) return Error{"bad name", EINVAL};
      if (shared_->fs->rename(ap->c_str(), bp->c_str()) != 0) return errnoError("rename " + *ap);
      if (auto u = uses.find(a); u != uses.end()) {
        (void)setSpecialUse(a, "");
        (void)setSpecialUse(b, u->second);
      }
    }
    return fsyncDir(shared_->root);
  }

  Result<MailboxStatus> status(const std::string& name) override {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    auto path = shared_->path(*n);
    if (!path) return path.error();
    auto l = shared_->lockSynced(*path, *n == kInbox);
    if (!l) return l.error();
    const State& s = l->state();
    MailboxStatus out;
    out.messages = static_cast<uint32_t>(s.msgs.size());
    out.uidNext = s.uidNext;
    out.uidValidity = s.uidValidity;
    for (const auto& m : s.msgs) {
      if (!m.old) ++out.recent;
      if (!(m.flags.system & kFlagSeen)) ++out.unseen;
      if (m.flags.system & kFlagDeleted) ++out.deleted;
      out.size += m.size;
    }
    return out;
  }

  Result<std::unique_ptr<ImapMailbox>> select(const std::string& name, bool readOnly) override {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    auto path = shared_->path(*n);
    if (!path) return path.error();
    if (*n != kInbox && !statPath(*path).exists) return Error{"no such mailbox: " + *n, ENOENT};
    auto mb = std::make_unique<MboxMailbox>(shared_, *n, *path, readOnly);
    if (auto st = mb->init(); !st) return st.error();
    return std::unique_ptr<ImapMailbox>(std::move(mb));
  }

  Result<std::unique_ptr<AppendTransaction>> beginAppend(const std::string& name) override {
    auto n = checkMailboxName(name, '.');
    if (!n) return n.error();
    auto path = shared_->path(*n);
    if (!path) return path.error();
    if (*n != kInbox && !statPath(*path).exists) return Error{"no such mailbox: " + *n, ENOENT};
    if (auto st = makeDirs(shared_->meta(), 0700); !st) return st.error();
    std::string tmpl = shared_->meta() + "/append-XXXXXX";
    UniqueFd fd(::mkostemp(tmpl.data(), O_CLOEXEC));
    if (!fd) return errnoError("create append spool");
    ::unlink(tmpl.c_str());  // a dropped transaction leaves nothing
    return std::unique_ptr<AppendTransaction>(
        std::make_unique<MboxAppend>(shared_, *path, *n == kInbox, std::move(fd)));
  }

 private:
  // A new empty mailbox: the pseudo message with a fresh UIDVALIDITY.
  Status createFile(const std::string& path) {
    if (auto st = makeDirs(shared_->root, 0700); !st) return st;
    auto v = shared_->newValidity();
    if (!v) return v.error();
    State s;
    s.uidValidity = *v;
    const std::string tmp = hiddenTemp(path);
    if (auto st = atomicWrite(tmp, pseudoMessage(s, 1), 0600); !st) return st;
    ScopeExit removeTmp([&tmp] { ::unlink(tmp.c_str()); });
    if (shared_->fs->link(tmp.c_str(), path.c_str()) != 0) {
      if (errno == EEXIST) return Error{"mailbox exists", EEXIST};
      return errnoError("link " + path);
    }
    return fsyncDir(shared_->root);
  }

  Status renameInbox(const std::string& to, const std::string& toPath) {
    if (statPath(toPath).exists) return Error{"mailbox exists: " + to, EEXIST};
    for (size_t d = to.find('.'); d != std::string::npos; d = to.find('.', d + 1)) {
      auto pp = shared_->path(to.substr(0, d));
      if (pp && !statPath(*pp).exists) {
        if (auto st = createFile(*pp); !st && st.error().errnum != EEXIST) return st;
      }
    }
    auto l = shared_->lockSynced(shared_->settings.inbox, true);
    if (!l) return l.error();
    // The whole file becomes the new mailbox (same UIDVALIDITY and UIDs:
    // that value was never used for the name `to`); then INBOX is emptied,
    // keeping its UIDNEXT. A crash between the two leaves the messages in
    // both, never in neither.
    std::string data;
    {
      std::string buf(kChunk, '\0');
      for (uint64_t pos = 0; pos < static_cast<uint64_t>(l->state().id.size);) {
        auto got = mboxPread(l->fd(), buf.data(), buf.size(), pos);
        if (!got) return got.error();
        if (*got == 0) break;
        data.append(buf.data(), *got);
        pos += *got;
      }
    }
    if (auto st = makeDirs(shared_->root, 0700); !st) return st;
    const std::string tmp = hiddenTemp(toPath);
    if (auto st = atomicWrite(tmp, data, 0600); !st) return st;
    ScopeExit removeTmp([&tmp] { ::unlink(tmp.c_str()); });
    if (shared_->fs->link(tmp.c_str(), toPath.c_str()) != 0) {
      if (errno == EEXIST) return Error{"mailbox exists: " + to, EEXIST};
      return errnoError("link " + toPath);
    }
    if (auto st = fsyncDir(shared_->root); !st) return st;
    Plan plan;
    for (const auto& m : l->state().msgs) plan.drop.insert(m.uid);
    std::vector<Extra> none;
    auto r = l->rewrite(plan, none, [this] { return shared_->newValidity(); });
    if (!r) return r.error();
    return {};
  }

  std::map<std::string, std::string> specialUses() {
    std::map<std::string, std::string> out;
    auto text = readFile(shared_->meta() + "/" + kSpecialUse, kMaxSmallFile);
    if (!text) return out;
    for (auto line : lines(*text)) {
      size_t sp = line.find(' ');
      if (sp == std::string_view::npos) continue;
      std::string use(line.substr(0, sp));
      auto name = imap::mutf7Decode(line.substr(sp + 1));
      if (!name || !validSpecialUse(use) || use.empty()) continue;
      out[*name] = use;
    }
    return out;
  }

  Status setSpecialUse(const std::string& name, const std::string& use) {
    auto uses = specialUses();
    if (use.empty()) {
      if (!uses.erase(name)) return {};
    } else {
      uses[name] = use;
    }
    std::string text;
    for (const auto& [n, u] : uses)
      if (auto enc = imap::mutf7Encode(n)) text += u + " " + *enc + "\n";
    if (auto st = makeDirs(shared_->meta(), 0700); !st) return st;
    return atomicWrite(shared_->meta() + "/" + kSpecialUse, text, 0600);
  }

  std::shared_ptr<Shared> shared_;
};

}  // namespace

std::string mboxFolderRoot(const std::string& inbox) { return inbox + ".folders"; }

Result<std::string> mboxStorePath(const MboxStoreSettings& settings, const std::string& name) {
  Shared sh;
  sh.settings = settings;
  sh.root = settings.folderRoot.empty() ? mboxFolderRoot(settings.inbox) : settings.folderRoot;
  return sh.path(name);
}

Result<std::unique_ptr<MailStore>> openMboxStore(const MboxStoreSettings& settings) {
  auto sh = std::make_shared<Shared>();
  sh->settings = settings;
  sh->root = settings.folderRoot.empty() ? mboxFolderRoot(settings.inbox) : settings.folderRoot;
  sh->fs = settings.fs ? settings.fs : &realFs();
  sh->watches = settings.watches ? settings.watches : std::make_shared<WatchPool>();
  auto s = std::make_unique<MboxStore>(std::move(sh));
  if (auto st = s->init(); !st) return st.error();
  return std::unique_ptr<MailStore>(std::move(s));
}

}  // namespace yubin::store
