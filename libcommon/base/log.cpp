// Logging to syslog or stderr; see log.hpp.
#include "base/log.hpp"

#include <syslog.h>
#include <unistd.h>

#include <atomic>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>

namespace yubin {
namespace {

// Worker threads log while the main thread may run logInit() again (a
// reload): the level and target are atomics, the ident is only read or
// written under the mutex. openlog() keeps a pointer to the ident, so it
// lives in a fixed buffer, never reallocated.
struct LogState {
  std::mutex mutex;
  char ident[64] = "yubin";
  std::atomic<LogTarget> target{LogTarget::Stderr};
  std::atomic<LogLevel> minimum{LogLevel::Info};
};

LogState& state() {
  static LogState s;
  return s;
}

int syslogPriority(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return LOG_DEBUG;
    case LogLevel::Info: return LOG_INFO;
    case LogLevel::Notice: return LOG_NOTICE;
    case LogLevel::Warning: return LOG_WARNING;
    case LogLevel::Error: return LOG_ERR;
  }
  return LOG_INFO;
}

const char* levelName(LogLevel l) {
  switch (l) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Notice: return "notice";
    case LogLevel::Warning: return "warning";
    case LogLevel::Error: return "error";
  }
  return "info";
}

void vlog(LogLevel level, const char* fmt, va_list ap) {
  LogState& s = state();
  if (level < s.minimum) return;
  char buf[2048];
  vsnprintf(buf, sizeof buf, fmt, ap);
  // One event, one line: never let a logged value start a new line.
  for (char* p = buf; *p; ++p)
    if (*p == '\n' || *p == '\r') *p = ' ';
  if (s.target.load() == LogTarget::Syslog) {
    syslog(syslogPriority(level), "%s", buf);
  } else {
    char ts[32];
    time_t now = time(nullptr);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%SZ", &tm);
    std::lock_guard<std::mutex> lock(s.mutex);
    fprintf(stderr, "%s %s[%d]: %s: %s\n", ts, s.ident, static_cast<int>(getpid()),
            levelName(level), buf);
  }
}

}  // namespace

void logInit(const std::string& ident, LogTarget target, LogLevel minimum) {
  LogState& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (std::strncmp(s.ident, ident.c_str(), sizeof s.ident) != 0)
    std::snprintf(s.ident, sizeof s.ident, "%s", ident.c_str());
  s.target = target;
  s.minimum = minimum;
  if (target == LogTarget::Syslog) openlog(s.ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
}

LogLevel logLevelFromName(const std::string& name) {
  if (name == "debug") return LogLevel::Debug;
  if (name == "notice") return LogLevel::Notice;
  if (name == "warning") return LogLevel::Warning;
  if (name == "error") return LogLevel::Error;
  return LogLevel::Info;
}

void logMessage(LogLevel level, const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(level, fmt, ap);
  va_end(ap);
}

void fatal(const char* fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vlog(LogLevel::Error, fmt, ap);
  va_end(ap);
  abort();
}

}  // namespace yubin
