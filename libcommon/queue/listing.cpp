// Queue listing and its renderings; see listing.hpp.
#include "queue/listing.hpp"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <ctime>

namespace yubin::queue {
namespace {

std::string utcTime(int64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  if (!gmtime_r(&tt, &tm)) return "?";
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0.
size_t utf8Length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  size_t n;
  uint32_t cp;
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf)
    n = 2, cp = c & 0x1f;
  else if (c >= 0xe0 && c <= 0xef)
    n = 3, cp = c & 0x0f;
  else if (c >= 0xf0 && c <= 0xf4)
    n = 4, cp = c & 0x07;
  else
    return 0;
  if (i + n > s.size()) return 0;
  for (size_t k = 1; k < n; ++k) {
    auto cc = static_cast<unsigned char>(s[i + k]);
    if ((cc & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (cc & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

std::string jsonString(std::string_view s) {
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
      ++i;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
    } else if (size_t n = utf8Length(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";  // not UTF-8: JSON must be
      ++i;
    }
  }
  out += '"';
  return out;
}

// Text for a terminal: anything that is not printable ASCII or UTF-8 becomes
// '?'. The parser already refuses control characters; this is for errors.
std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = (c < 0x20 || c == 0x7f) ? 0 : utf8Length(s, i);
    if (n == 0) {
      out += '?';
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string rcptDetail(const RcptState& r) {
  std::string out = rcptStatusName(r.status);
  if (r.attempts > 0)
    out += ", " + std::to_string(r.attempts) + (r.attempts == 1 ? " attempt" : " attempts");
  if (r.status == RcptStatus::Deferred && r.nextAttempt > 0)
    out += ", next " + utcTime(r.nextAttempt);
  if (!r.reply.empty()) out += ": " + printable(r.reply);
  return out;
}

}  // namespace

std::string QueueEntry::status() const {
  if (area == Area::Corrupt || !error.empty()) return "corrupt";
  if (area == Area::Hold) return "held";
  for (const RcptState& r : state.rcpts)
    if (r.status == RcptStatus::Deferred) return "deferred";
  return "queued";
}

std::string formatAge(int64_t s) {
  if (s < 0) s = 0;
  char buf[32];
  if (s < 60)
    snprintf(buf, sizeof buf, "%llds", static_cast<long long>(s));
  else if (s < 3600)
    snprintf(buf, sizeof buf, "%lldm", static_cast<long long>(s / 60));
  else if (s < 86400)
    snprintf(buf, sizeof buf, "%lldh%02lldm", static_cast<long long>(s / 3600),
             static_cast<long long>(s % 3600 / 60));
  else
    snprintf(buf, sizeof buf, "%lldd%02lldh", static_cast<long long>(s / 86400),
             static_cast<long long>(s % 86400 / 3600));
  return buf;
}

Result<std::vector<QueueEntry>> listQueue(const std::string& spoolDir, Fs& fs) {
  std::vector<QueueEntry> out;
  for (Area area : {Area::Queue, Area::Hold, Area::Corrupt}) {
    auto names = fs.listDir(areaPath(spoolDir, area));
    if (!names) return names.error();
    std::vector<QueueId> ids;
    for (const std::string& n : *names)
      if (auto id = QueueId::parse(n)) ids.push_back(*id);  // corrupt/ also holds <id>.state
    std::sort(ids.begin(), ids.end());
    for (const QueueId& id : ids) {
      QueueEntry e{id, area, {}, {}, {}};
      auto file = QueueFile::open(filePath(spoolDir, area, id), fs);
      if (!file) {
        if (file.error().errnum == ENOENT) continue;  // delivered or moved meanwhile
        e.error = file.error().message;
      } else {
        e.envelope = file->envelope();
        if (area != Area::Corrupt) {
          auto st = readState(fs, spoolDir, id, e.envelope.recipients.size());
          if (st)
            e.state = std::move(*st);
          else
            e.error = st.error().message;
        }
        if (e.state.rcpts.size() != e.envelope.recipients.size())
          e.state.rcpts.assign(e.envelope.recipients.size(), {});
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

std::string renderJson(const std::vector<QueueEntry>& entries, int64_t now) {
  std::string o = "{\"version\":1,\"messages\":[";
  bool first = true;
  for (const QueueEntry& e : entries) {
    if (!first) o += ',';
    first = false;
    o += "{\"id\":" + jsonString(e.id.str());
    o += ",\"area\":" + jsonString(areaName(e.area));
    o += ",\"status\":" + jsonString(e.status());
    if (!e.error.empty()) {
      o += ",\"error\":" + jsonString(e.error) + "}";
      continue;
    }
    const Envelope& env = e.envelope;
    o += ",\"size\":" + std::to_string(env.size);
    o += ",\"sender\":" + jsonString(env.sender);
    o += ",\"arrival\":" + std::to_string(env.arrivalTime);
    o += ",\"age\":" + std::to_string(std::max<int64_t>(0, now - env.arrivalTime));
    if (!env.authUser.empty()) o += ",\"auth_user\":" + jsonString(env.authUser);
    if (!env.clientAddress.empty()) o += ",\"client\":" + jsonString(env.clientAddress);
    o += ",\"recipients\":[";
    for (size_t i = 0; i < env.recipients.size(); ++i) {
      const RcptState& r = e.state.rcpts[i];
      if (i) o += ',';
      o += "{\"address\":" + jsonString(env.recipients[i].address);
      o += ",\"status\":" + jsonString(rcptStatusName(r.status));
      o += ",\"attempts\":" + std::to_string(r.attempts);
      o += ",\"last_attempt\":" + std::to_string(r.lastAttempt);
      o += ",\"next_attempt\":" + std::to_string(r.nextAttempt);
      o += ",\"reply\":" + jsonString(r.reply) + "}";
    }
    o += "]}";
  }
  o += "]}\n";
  return o;
}

std::string renderMailq(const std::vector<QueueEntry>& entries, int64_t now) {
  if (entries.empty()) return "Mail queue is empty\n";
  std::string o;
  char line[256];
  snprintf(line, sizeof line, "%-17s %10s %-19s %6s  %s\n", "-Queue ID-", "--Size--",
           "----Arrival Time---", "-Age-", "-Sender/Recipient-------");
  o += line;
  const std::string indent(57, ' ');  // under the sender column
  uint64_t total = 0;
  for (const QueueEntry& e : entries) {
    // Like mailq: '!' marks a held message, '#' a corrupt one.
    std::string id = e.id.str();
    std::string status = e.status();
    if (status == "held")
      id += '!';
    else if (status == "corrupt")
      id += '#';
    if (!e.error.empty()) {
      snprintf(line, sizeof line, "%-17s %10s %-19s %6s  ", id.c_str(), "?", "?", "?");
      o += line;
      // In three steps: GCC 12 at -O3 warns (-Wrestrict, falsely) on
      // "(" + string + ")".
      o += '(';
      o += printable(e.error);
      o += ")\n\n";
      continue;
    }
    const Envelope& env = e.envelope;
    total += env.size;
    snprintf(line, sizeof line, "%-17s %10llu %-19s %6s  ", id.c_str(),
             static_cast<unsigned long long>(env.size), utcTime(env.arrivalTime).c_str(),
             formatAge(now - env.arrivalTime).c_str());
    o += line;
    o += env.nullSender ? "<>" : printable(env.sender);
    o += '\n';
    for (size_t i = 0; i < env.recipients.size(); ++i) {
      const RcptState& r = e.state.rcpts[i];
      o += indent + printable(env.recipients[i].address) + '\n';
      if (r.status != RcptStatus::Pending || r.attempts > 0)
        o += indent + "  (" + rcptDetail(r) + ")\n";
    }
    o += '\n';
  }
  snprintf(line, sizeof line, "-- %llu Kbytes in %zu %s.\n",
           static_cast<unsigned long long>((total + 1023) / 1024), entries.size(),
           entries.size() == 1 ? "Request" : "Requests");
  o += line;
  return o;
}

}  // namespace yubin::queue
