// The configuration: one declarative file (/etc/yubin/yubin.conf, or -c PATH)
// in sections, one per program, validated against the schema in schema.cpp.
// Trust: the file is written by the admin; still, every error is reported as
// "file:line: what is wrong" and nothing in it is taken on trust.
//
//   # comment
//   version = 1          format version, required, before any section
//   [global]
//   domains = example.org, localhost
//   [mtad]               a daemon's section present = that daemon runs
//   listen = 0.0.0.0:25, [::]:25
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"

namespace yubin::config {

inline constexpr int kFormatVersion = 1;

enum class Type {
  String,
  Path,      // absolute path, or empty where the default is empty
  Bool,      // yes/no, true/false, on/off, 1/0
  Int,       // non-negative decimal
  Size,      // bytes with optional k/M/G suffix (powers of 1024)
  Duration,  // seconds with optional s/m/h/d suffix
  List,      // comma- or space-separated words
  Listen,    // list of TCP endpoints: host:port, [v6]:port, *:port
  UnixListen,  // a Unix socket path the master binds for the daemon
  Mode,      // octal file mode, e.g. 0660
  Choice,    // one of the words in KeySpec::choices (space-separated)
};

struct KeySpec {
  std::string_view section;
  std::string_view key;
  Type type;
  const char* defaultValue;  // nullptr: required when the section is present
  std::string_view doc;      // one line, for yubinctl check --keys
  std::string_view choices = {};
};

// Every key every program accepts; the man page check compares against it.
std::span<const KeySpec> schema();
// Sections that name a daemon the master can start (section present = enabled).
std::span<const std::string_view> daemonSections();
const KeySpec* findKey(std::string_view section, std::string_view key);

struct Endpoint {
  std::string host;  // "" for any address (*:port); IPv6 without brackets
  uint16_t port = 0;
};
Result<Endpoint> parseEndpoint(std::string_view text);
Result<uint64_t> parseSize(std::string_view text);
Result<uint64_t> parseDuration(std::string_view text);

class Config {
 public:
  static Result<Config> load(const std::string& path);
  static Result<Config> parse(std::string_view text, const std::string& filename);

  const std::string& file() const { return file_; }
  bool hasSection(std::string_view section) const;
  // Typed getters: the value from the file, else the schema default. Asking
  // for a key that is not in the schema, or with the wrong type, aborts.
  const std::string& str(std::string_view section, std::string_view key) const;
  bool boolean(std::string_view section, std::string_view key) const;
  uint64_t integer(std::string_view section, std::string_view key) const;
  uint64_t size(std::string_view section, std::string_view key) const;
  std::chrono::seconds duration(std::string_view section, std::string_view key) const;
  std::vector<std::string> list(std::string_view section, std::string_view key) const;
  std::vector<Endpoint> endpoints(std::string_view section, std::string_view key) const;
  unsigned mode(std::string_view section, std::string_view key) const;
  // [global] hostname, or the system's host name when it is empty.
  std::string hostname() const;
  // "file:line" where the key was set, or the file name for defaults.
  std::string where(std::string_view section, std::string_view key) const;
  // Overrides a value (used by tests and by scripts/dev); not validated.
  void set(std::string_view section, std::string_view key, std::string value);

 private:
  struct Value {
    std::string text;
    int line = 0;
  };
  const Value* raw(std::string_view section, std::string_view key, Type type) const;

  std::string file_;
  std::map<std::string, std::map<std::string, Value, std::less<>>, std::less<>> sections_;
  std::map<std::string, int, std::less<>> sectionLines_;
};

}  // namespace yubin::config
