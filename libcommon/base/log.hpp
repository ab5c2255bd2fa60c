// Logging: one line per event, "message key=value ...", to syslog in
// production or to stderr in the foreground. Never log a password.
#pragma once

#include <string>

namespace yubin {

enum class LogLevel { Debug, Info, Notice, Warning, Error };
enum class LogTarget { Stderr, Syslog };

// ident is the program name ("mtad"); called once at start, again after a
// reload if the target changes.
void logInit(const std::string& ident, LogTarget target, LogLevel minimum = LogLevel::Info);
// "debug", "info", "notice", "warning", "error" ([global] log_level); any
// other name is Info (the config schema already refused it).
LogLevel logLevelFromName(const std::string& name);
void logMessage(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define YLOG_DEBUG(...) ::yubin::logMessage(::yubin::LogLevel::Debug, __VA_ARGS__)
#define YLOG_INFO(...) ::yubin::logMessage(::yubin::LogLevel::Info, __VA_ARGS__)
#define YLOG_NOTICE(...) ::yubin::logMessage(::yubin::LogLevel::Notice, __VA_ARGS__)
#define YLOG_WARN(...) ::yubin::logMessage(::yubin::LogLevel::Warning, __VA_ARGS__)
#define YLOG_ERROR(...) ::yubin::logMessage(::yubin::LogLevel::Error, __VA_ARGS__)

// Aborts with a message: for states that cannot happen.
[[noreturn]] void fatal(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

}  // namespace yubin
