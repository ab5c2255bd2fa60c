// yubinctl queue and mailq; see queue_cmd.hpp.
#include "ctl/queue_cmd.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <iostream>

#include "config/config.hpp"
#include "queue/listing.hpp"
#include "queue/queue_id.hpp"

namespace yubin::ctl {
namespace {

constexpr const char* kUsage =
    "usage: yubinctl queue list [--json]\n"
    "       yubinctl queue show ID [--json]\n"
    "       yubinctl queue flush\n"
    "       yubinctl queue retry|hold|release|delete|bounce ID\n";

// Length of the valid UTF-8 sequence at s[i], or 0.
size_t utf8Length(std::string_view s, size_t i) {
  auto c = static_cast<unsigned char>(s[i]);
  if (c < 0x80) return 1;
  size_t n;
  uint32_t cp;
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
    cp = cp << 6 | (cc & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff))
    return 0;
  return n;
}

// For a terminal: control characters and bytes that are not UTF-8 become
// \xNN, so a hostile reply or ENVID cannot move the cursor or hide text.
std::string printable(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t n = (c < 0x20 || c == 0x7f || c == '\\') ? 0 : utf8Length(s, i);
    if (n == 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
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
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
      ++i;
    } else if (size_t n = utf8Length(s, i)) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out += "\\ufffd";  // JSON must be UTF-8
      ++i;
    }
  }
  return out + "\"";
}

std::string utcTime(uint64_t t) {
  time_t tt = static_cast<time_t>(t);
  struct tm tm;
  if (!gmtime_r(&tt, &tm)) return "?";
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", &tm);
  return buf;
}

std::string notifyText(uint8_t n) {
  if (n == 0) return "(not given: FAILURE,DELAY)";
  if (n & queue::kNotifyNever) return "NEVER";
  std::string out;
  if (n & queue::kNotifySuccess) out += "SUCCESS,";
  if (n & queue::kNotifyFailure) out += "FAILURE,";
  if (n & queue::kNotifyDelay) out += "DELAY,";
  if (!out.empty()) out.pop_back();
  return out;
}

std::string notifyJson(uint8_t n) {
  std::string out = "[";
  auto add = [&](const char* w) { out += (out.size() > 1 ? ",\"" : "\"") + std::string(w) + "\""; };
  if (n & queue::kNotifyNever) add("NEVER");
  if (n & queue::kNotifySuccess) add("SUCCESS");
  if (n & queue::kNotifyFailure) add("FAILURE");
  if (n & queue::kNotifyDelay) add("DELAY");
  return out + "]";
}

const char* retText(uint8_t r) { return r == 1 ? "FULL" : r == 2 ? "HDRS" : ""; }

bool final(ipc::QueueRcptStatus s) {
  return s == ipc::QueueRcptStatus::Delivered || s == ipc::QueueRcptStatus::Bounced;
}

int usage(std::ostream& err, const std::string& why) {
  err << "yubinctl queue: " << why << "\n" << kUsage;
  return 2;
}

int list(const config::Config& cfg, const std::vector<std::string>& args, std::ostream& out,
         std::ostream& err, int64_t now) {
  bool json = false;
  for (const auto& a : args) {
    if (a == "--json")
      json = true;
    else
      return usage(err, "list: unknown argument '" + a + "'");
  }
  const std::string& spool = cfg.str("global", "spool_dir");
  // A spool that mtad has not created yet holds no mail; say so rather
  // than print an opendir error. Any other failure (EACCES: not run as
  // root) is an error.
  struct stat st;
  if (::stat((spool + "/queue").c_str(), &st) != 0 && errno == ENOENT &&
      ::stat(spool.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    out << (json ? queue::renderJson({}, now) : queue::renderMailq({}, now));
    return 0;
  }
  auto entries = queue::listQueue(spool);
  if (!entries) {
    err << "yubinctl queue list: cannot read the queue in " << spool
        << " ([global] spool_dir): " << entries.error().message << "\n";
    return 1;
  }
  out << (json ? queue::renderJson(*entries, now) : queue::renderMailq(*entries, now));
  return 0;
}

// The commands that go through the master to mtad.
struct Verb {
  const char* name;
  ipc::QueueAction action;
  bool json;  // takes --json
};
constexpr Verb kVerbs[] = {
    {"show", ipc::QueueAction::Show, true},        {"flush", ipc::QueueAction::Flush, false},
    {"retry", ipc::QueueAction::Retry, false},     {"hold", ipc::QueueAction::Hold, false},
    {"release", ipc::QueueAction::Release, false}, {"delete", ipc::QueueAction::Delete, false},
    {"bounce", ipc::QueueAction::Bounce, false},
};

Result<ipc::QueueReply> askQueue(const Asker& ask, ipc::QueueCommand cmd) {
  auto m = ask(cmd);
  if (!m) return m.error();
  if (auto* r = std::get_if<ipc::QueueReply>(&*m)) return std::move(*r);
  return Error{std::string("unexpected reply ") +
               ipc::typeName(static_cast<uint16_t>(ipc::typeOf(*m)))};
}

int remote(const Verb& v, const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err, int64_t now, const Asker& ask) {
  bool json = false;
  std::vector<std::string> words;
  for (const auto& a : args) {
    if (a == "--json" && v.json)
      json = true;
    else if (!a.empty() && a[0] == '-')
      return usage(err, std::string(v.name) + ": unknown option '" + printable(a) + "'");
    else
      words.push_back(a);
  }
  const bool needsId = ipc::queueActionNeedsId(v.action);
  if (needsId && words.size() != 1)
    return usage(err,
                 std::string(v.name) + (words.empty() ? ": missing queue ID" : ": one queue ID"));
  if (!needsId && !words.empty()) return usage(err, std::string(v.name) + " takes no argument");
  ipc::QueueCommand cmd{v.action, needsId ? words[0] : std::string()};
  // mtad checks the ID again; this is for a clear message without a round trip.
  if (needsId && !queue::QueueId::parse(cmd.id)) {
    err << "yubinctl queue " << v.name << ": invalid queue ID '" << printable(cmd.id)
        << "': a queue ID is 16 characters of 0-9 and a-z without i, l, o and u\n";
    return 1;
  }
  auto r = askQueue(ask, std::move(cmd));
  if (!r) {
    err << "yubinctl queue " << v.name << ": " << printable(r.error().message) << "\n";
    return 1;
  }
  if (v.action == ipc::QueueAction::Show) {
    if (r->messages.size() != 1) {
      err << "yubinctl queue show: mtad sent " << r->messages.size() << " messages\n";
      return 1;
    }
    out << (json ? renderShowJson(r->messages[0]) : renderShow(r->messages[0], now));
    return 0;
  }
  out << (needsId ? words[0] + ": " : std::string()) << printable(r->text) << "\n";
  return 0;
}

}  // namespace

std::string renderMailq(const std::vector<ipc::QueueMessageInfo>& messages) {
  if (messages.empty()) return "Mail queue is empty\n";
  std::string o;
  char line[512];
  std::snprintf(line, sizeof line, "%-17s %8s %-20s %s\n", "-Queue ID-", "--Size--",
                "----Arrival Time----", "-Sender/Recipient-------");
  o += line;
  const std::string indent(48, ' ');
  uint64_t total = 0;
  for (const auto& m : messages) {
    total += m.size;
    char mark = m.state == ipc::QueueMsgState::Active ? '*'
                : m.state == ipc::QueueMsgState::Held ? '!'
                                                      : ' ';
    time_t t = static_cast<time_t>(m.arrival);
    struct tm tm;
    char when[32] = "?";
    if (localtime_r(&t, &tm)) std::strftime(when, sizeof when, "%a %b %e %H:%M:%S", &tm);
    std::snprintf(line, sizeof line, "%-16s%c %8llu %-20.20s %s\n", m.id.c_str(), mark,
                  static_cast<unsigned long long>(m.size), when,
                  m.sender.empty() ? "MAILER-DAEMON" : printable(m.sender).c_str());
    o += line;
    std::string lastReason;
    for (const auto& r : m.recipients) {
      if (final(r.status)) continue;
      if (r.status == ipc::QueueRcptStatus::Deferred && !r.reply.empty() && r.reply != lastReason) {
        o += indent + "(" + printable(r.reply) + ")\n";
        lastReason = r.reply;
      }
      o += indent + printable(r.address) + "\n";
    }
    o += "\n";
  }
  std::snprintf(line, sizeof line, "-- %llu Kbytes in %zu Request%s.\n",
                static_cast<unsigned long long>((total + 1023) / 1024), messages.size(),
                messages.size() == 1 ? "" : "s");
  return o + line;
}

std::string renderShow(const ipc::QueueMessageInfo& m, int64_t now) {
  std::string o;
  auto field = [&](const char* name, const std::string& value) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%-14s", name);
    o += buf + value + "\n";
  };
  field("id:", m.id);
  field("state:", ipc::queueMsgStateName(m.state));
  field("sender:", m.sender.empty() ? "<>" : printable(m.sender));
  int64_t age = now - static_cast<int64_t>(m.arrival);
  field("arrival:", utcTime(m.arrival) + " (" + queue::formatAge(age) + " ago)");
  field("size:", std::to_string(m.size));
  if (!m.envid.empty()) field("envid:", printable(m.envid));
  if (m.ret) field("ret:", retText(m.ret));
  for (const auto& r : m.recipients) {
    field("recipient:", printable(r.address));
    auto sub = [&](const char* name, const std::string& value) {
      char buf[32];
      std::snprintf(buf, sizeof buf, "  %-15s", name);
      o += buf + value + "\n";
    };
    if (!r.orcptType.empty()) sub("orcpt:", printable(r.orcptType) + ";" + printable(r.orcpt));
    sub("notify:", notifyText(r.notify));
    sub("status:", ipc::queueRcptStatusName(r.status));
    sub("attempts:", std::to_string(r.attempts));
    sub("last attempt:", r.lastAttempt ? utcTime(r.lastAttempt) : "never");
    if (r.status == ipc::QueueRcptStatus::Deferred)
      sub("next attempt:", r.nextAttempt ? utcTime(r.nextAttempt) : "as soon as possible");
    else if (r.status == ipc::QueueRcptStatus::Pending)
      sub("next attempt:", "as soon as possible");
    if (!r.reply.empty()) sub("last reply:", printable(r.reply));
  }
  return o;
}

std::string renderShowJson(const ipc::QueueMessageInfo& m) {
  std::string o = "{\"version\":1,\"message\":{\"id\":" + jsonString(m.id);
  o += ",\"state\":" + jsonString(ipc::queueMsgStateName(m.state));
  o += ",\"sender\":" + jsonString(m.sender);
  o += ",\"arrival\":" + std::to_string(m.arrival);
  o += ",\"size\":" + std::to_string(m.size);
  o += ",\"envid\":" + (m.envid.empty() ? std::string("null") : jsonString(m.envid));
  o += ",\"ret\":" + (m.ret ? jsonString(retText(m.ret)) : std::string("null"));
  o += ",\"recipients\":[";
  bool first = true;
  for (const auto& r : m.recipients) {
    if (!first) o += ',';
    first = false;
    o += "{\"address\":" + jsonString(r.address);
    o += ",\"orcpt_type\":" + (r.orcptType.empty() ? std::string("null") : jsonString(r.orcptType));
    o += ",\"orcpt\":" + (r.orcptType.empty() ? std::string("null") : jsonString(r.orcpt));
    o += ",\"notify\":" + notifyJson(r.notify);
    o += ",\"status\":" + jsonString(ipc::queueRcptStatusName(r.status));
    o += ",\"attempts\":" + std::to_string(r.attempts);
    o += ",\"last_attempt\":" + std::to_string(r.lastAttempt);
    o += ",\"next_attempt\":" + std::to_string(r.nextAttempt);
    o += ",\"reply\":" + jsonString(r.reply) + "}";
  }
  o += "]}}\n";
  return o;
}

int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, int64_t now, const Asker& ask) {
  size_t first = !args.empty() && args[0] == "queue" ? 1 : 0;
  if (args.size() <= first) return usage(err, "missing subcommand");
  const std::string& verb = args[first];
  std::vector<std::string> rest(args.begin() + static_cast<ptrdiff_t>(first) + 1, args.end());
  if (verb == "list") return list(cfg, rest, out, err, now);
  for (const auto& v : kVerbs)
    if (verb == v.name) return remote(v, rest, out, err, now, ask);
  return usage(err, "unknown subcommand '" + printable(verb) + "'");
}

int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, int64_t now) {
  return runQueueCommand(cfg, args, out, err, now, [](const ipc::Message&) -> Result<ipc::Message> {
    return Error{"not connected to yubin-master"};
  });
}

int runQueueCommand(const config::Config& cfg, const std::vector<std::string>& args,
                    std::ostream& out, std::ostream& err, const Asker& ask) {
  return runQueueCommand(cfg, args, out, err, static_cast<int64_t>(::time(nullptr)), ask);
}

int runMailq(const std::vector<std::string>& args, std::ostream& out, std::ostream& err,
             const Asker& ask) {
  if (!args.empty()) {
    err << "mailq: unknown argument '" << printable(args[0]) << "'\nusage: mailq [-c file]\n";
    return 2;
  }
  auto r = askQueue(ask, ipc::QueueCommand{ipc::QueueAction::List, ""});
  if (!r) {
    err << "mailq: " << printable(r.error().message) << "\n";
    return 1;
  }
  out << renderMailq(r->messages);
  if (!r->text.empty()) err << "mailq: " << printable(r->text) << "\n";
  return 0;
}

}  // namespace yubin::ctl
