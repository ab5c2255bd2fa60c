// mbox <-> Maildir converters; see convert.hpp.
#include "store/convert.hpp"

#include "base/strings.hpp"
#include "store/mailbox.hpp"

namespace yubin::store {
namespace {

struct Line {
  std::string_view text;  // with its line end
  bool blank;             // "\n" or "\r\n": the end of the header block
};

// Calls fn for each line of the header block, then returns the offset
// where the empty line ending it starts (msg.size() if there is none).
template <class Fn>
size_t forEachHeaderLine(std::string_view msg, Fn fn) {
  size_t pos = 0;
  while (pos < msg.size()) {
    size_t nl = msg.find('\n', pos);
    size_t end = nl == std::string_view::npos ? msg.size() : nl + 1;
    std::string_view line = msg.substr(pos, end - pos);
    if (line == "\n" || line == "\r\n") return pos;
    fn(line);
    pos = end;
  }
  return msg.size();
}

std::string_view fieldValue(std::string_view line, size_t nameLen) {
  return trim(line.substr(nameLen));
}

}  // namespace

std::string stripStatusHeaders(std::string_view msg, std::string* status, std::string* xstatus) {
  std::string out;
  out.reserve(msg.size());
  bool inRemoved = false, gotStatus = false, gotX = false;
  size_t end = forEachHeaderLine(msg, [&](std::string_view line) {
    if (inRemoved && (line[0] == ' ' || line[0] == '\t')) return;
    inRemoved = false;
    if (istartsWith(line, "Status:")) {
      if (!gotStatus && status) *status = std::string(fieldValue(line, 7));
      gotStatus = inRemoved = true;
    } else if (istartsWith(line, "X-Status:")) {
      if (!gotX && xstatus) *xstatus = std::string(fieldValue(line, 9));
      gotX = inRemoved = true;
    } else {
      out.append(line);
    }
  });
  out.append(msg.substr(end));
  return out;
}

std::string insertStatusHeaders(std::string_view msg, std::string_view status,
                                std::string_view xstatus) {
  if (status.empty() && xstatus.empty()) return std::string(msg);
  std::string_view eol = "\n";
  size_t at = forEachHeaderLine(msg, [](std::string_view) {});
  std::string out(msg.substr(0, at));
  if (at < msg.size()) {
    if (msg.substr(at, 2) == "\r\n") eol = "\r\n";
  } else if (!out.empty() && out.back() != '\n') {
    out += '\n';
  }
  if (!status.empty()) out.append("Status: ").append(status).append(eol);
  if (!xstatus.empty()) out.append("X-Status: ").append(xstatus).append(eol);
  out.append(msg.substr(at));
  return out;
}

MaildirPlacement maildirFlagsFromMbox(std::string_view status, std::string_view xstatus) {
  MaildirPlacement p;
  if (status.find('R') != std::string_view::npos) p.flags += 'S';
  for (char c : xstatus) {
    switch (c) {
      case 'A':
        p.flags += 'R';
        break;
      case 'F':
        p.flags += 'F';
        break;
      case 'T':
        p.flags += 'D';
        break;
      case 'D':
        p.flags += 'T';
        break;
      default:
        break;
    }
  }
  p.flags = maildirNormaliseFlags(p.flags);
  p.intoCur = status.find('O') != std::string_view::npos || !p.flags.empty();
  return p;
}

std::pair<std::string, std::string> mboxStatusFromMaildir(std::string_view flags, bool inCur) {
  auto has = [&](char c) { return flags.find(c) != std::string_view::npos; };
  std::string status, x;
  if (has('S')) status += 'R';
  if (inCur) status += 'O';
  if (has('R')) x += 'A';
  if (has('F')) x += 'F';
  if (has('D')) x += 'T';
  if (has('T')) x += 'D';
  return {status, x};
}

std::string returnPathOf(std::string_view msg) {
  std::string out;
  bool found = false;
  forEachHeaderLine(msg, [&](std::string_view line) {
    if (found || !istartsWith(line, "Return-Path:")) return;
    found = true;
    std::string_view v = fieldValue(line, 12);
    size_t lt = v.find('<'), gt = v.rfind('>');
    if (lt != std::string_view::npos && gt != std::string_view::npos && gt > lt)
      v = v.substr(lt + 1, gt - lt - 1);
    out = std::string(trim(v));
  });
  return out;
}

Result<ConvertStats> mboxToMaildir(const std::string& mboxPath, const std::string& root,
                                   std::string_view folder, MaildirNameGenerator& names, Fs& fs) {
  auto dir = ensureMaildirFolder(fs, root, folder);
  if (!dir) return dir.error();
  MaildirDeliverer deliverer(fs, names);
  ConvertStats stats;
  auto st = readMbox(mboxPath, [&](MboxMessage&& m) -> Status {
    std::string status, xstatus;
    std::string data = stripStatusHeaders(m.data, &status, &xstatus);
    MaildirPlacement place = maildirFlagsFromMbox(status, xstatus);
    MaildirDeliverOptions o;
    o.lineEndings = LineEndings::Keep;
    o.intoCur = place.intoCur;
    o.flags = place.flags;
    o.mtime = m.from.date;
    auto r = deliverer.deliverToDir(*dir, "", MemorySource(std::move(data)), o);
    if (!r) return r.error();
    ++stats.messages;
    stats.bytes += r->size;
    return {};
  });
  if (!st) {
    return Error{st.error().message + " (after " + std::to_string(stats.messages) + " messages)",
                 st.error().errnum};
  }
  return stats;
}

Result<ConvertStats> maildirToMbox(const std::string& root, std::string_view folder,
                                   const std::string& mboxPath, const MboxLockSettings& lock,
                                   Fs& fs) {
  auto dir = maildirFolderPath(root, folder);
  if (!dir) return dir.error();
  MaildirMailbox box(*dir, fs);
  auto list = box.list();
  if (!list) return list.error();
  auto w = MboxWriter::open(mboxPath, lock, fs);
  if (!w) return w.error();
  ConvertStats stats;
  auto fail = [&](const Error& e) {
    return Error{e.message + " (after " + std::to_string(stats.messages) + " messages)", e.errnum};
  };
  for (const MailboxEntry& e : *list) {
    auto src = box.open(e.id);
    if (!src) return fail(src.error());
    auto bytes = readAll(**src);
    if (!bytes) return fail(bytes.error());
    std::string data = stripStatusHeaders(*bytes, nullptr, nullptr);
    auto [status, xstatus] = mboxStatusFromMaildir(e.flags, !e.isNew);
    data = insertStatusHeaders(data, status, xstatus);
    MboxAppendOptions o;
    o.lineEndings = LineEndings::Keep;
    o.sync = false;
    const std::string sender = returnPathOf(data);
    if (auto s = w->append(sender, e.mtime, "", MemorySource(std::move(data)), o); !s)
      return fail(s.error());
    ++stats.messages;
    stats.bytes += bytes->size();
  }
  if (auto s = w->sync(); !s) return fail(s.error());
  if (auto s = w->close(); !s) return fail(s.error());
  return stats;
}

}  // namespace yubin::store
