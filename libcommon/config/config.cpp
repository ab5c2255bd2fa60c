// Config file parser and typed getters; see config.hpp.
#include "config/config.hpp"

#include <unistd.h>

#include <algorithm>

#include "base/fs.hpp"
#include "base/log.hpp"
#include "base/strings.hpp"

namespace yubin::config {
namespace {

bool parseBool(std::string_view v, bool& out) {
  std::string l = toLower(v);
  if (l == "yes" || l == "true" || l == "on" || l == "1") return out = true, true;
  if (l == "no" || l == "false" || l == "off" || l == "0") return out = false, true;
  return false;
}

bool parseOctal(std::string_view v, unsigned& out) {
  if (v.empty() || v.size() > 4) return false;
  unsigned m = 0;
  for (char c : v) {
    if (c < '0' || c > '7') return false;
    m = m * 8 + static_cast<unsigned>(c - '0');
  }
  out = m;
  return true;
}

// Checks one value against its type; returns an error message or "".
std::string validate(const KeySpec& spec, std::string_view v) {
  switch (spec.type) {
    case Type::String:
      return "";
    case Type::Path:
    case Type::UnixListen:
      if (!v.empty() && v[0] != '/') return "must be an absolute path";
      return "";
    case Type::Bool: {
      bool b;
      return parseBool(v, b) ? "" : "must be yes or no";
    }
    case Type::Int:
      return parseU64(v) ? "" : "must be a non-negative integer";
    case Type::Size: {
      auto r = parseSize(v);
      return r ? "" : r.error().message;
    }
    case Type::Duration: {
      auto r = parseDuration(v);
      return r ? "" : r.error().message;
    }
    case Type::List:
      return "";
    case Type::Listen:
      for (const auto& item : splitAny(v, ", \t")) {
        auto r = parseEndpoint(item);
        if (!r) return r.error().message;
      }
      return "";
    case Type::Mode: {
      unsigned m;
      return parseOctal(v, m) ? "" : "must be an octal mode such as 0660";
    }
    case Type::Choice: {
      for (const auto& c : splitAny(spec.choices, " "))
        if (c == v) return "";
      return "must be one of: " + std::string(spec.choices);
    }
  }
  return "";
}

std::string unquote(std::string_view v, bool& ok) {
  ok = true;
  if (v.size() >= 1 && v.front() == '"') {
    if (v.size() < 2 || v.back() != '"') {
      ok = false;
      return {};
    }
    std::string out;
    for (size_t i = 1; i + 1 < v.size(); ++i) {
      if (v[i] == '\\' && i + 2 < v.size()) ++i;
      else if (v[i] == '"') {
        ok = false;
        return {};
      }
      out.push_back(v[i]);
    }
    return out;
  }
  return std::string(v);
}

}  // namespace

const KeySpec* findKey(std::string_view section, std::string_view key) {
  for (const auto& k : schema())
    if (k.section == section && k.key == key) return &k;
  return nullptr;
}

Result<Endpoint> parseEndpoint(std::string_view text) {
  Endpoint ep;
  std::string_view host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return Error{"bad address '" + std::string(text) + "': expected [ipv6]:port"};
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return Error{"bad address '" + std::string(text) + "': expected host:port"};
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return Error{"bad address '" + std::string(text) + "': put IPv6 addresses in brackets"};
  }
  auto p = parseU64(port);
  if (!p || *p == 0 || *p > 65535)
    return Error{"bad port in '" + std::string(text) + "': must be 1 to 65535"};
  if (host.empty()) return Error{"bad address '" + std::string(text) + "': missing host"};
  ep.host = host == "*" ? "" : std::string(host);
  ep.port = static_cast<uint16_t>(*p);
  return ep;
}

Result<uint64_t> parseSize(std::string_view text) {
  uint64_t mult = 1;
  std::string_view num = text;
  if (!text.empty()) {
    switch (text.back()) {
      case 'k': case 'K': mult = 1024; break;
      case 'm': case 'M': mult = 1024 * 1024; break;
      case 'g': case 'G': mult = 1024ull * 1024 * 1024; break;
      default: break;
    }
    if (mult != 1) num = text.substr(0, text.size() - 1);
  }
  auto n = parseU64(num);
  if (!n || *n > UINT64_MAX / mult)
    return Error{"bad size '" + std::string(text) + "': expected a number with optional k, M or G"};
  return *n * mult;
}

Result<uint64_t> parseDuration(std::string_view text) {
  uint64_t mult = 1;
  std::string_view num = text;
  if (!text.empty()) {
    switch (text.back()) {
      case 's': mult = 1; num = text.substr(0, text.size() - 1); break;
      case 'm': mult = 60; num = text.substr(0, text.size() - 1); break;
      case 'h': mult = 3600; num = text.substr(0, text.size() - 1); break;
      case 'd': mult = 86400; num = text.substr(0, text.size() - 1); break;
      default: break;
    }
  }
  auto n = parseU64(num);
  if (!n || *n > UINT64_MAX / mult)
    return Error{"bad duration '" + std::string(text) + "': expected a number with optional s, m, h or d"};
  return *n * mult;
}

Result<Config> Config::load(const std::string& path) {
  auto text = readFile(path, 1u << 20);
  if (!text) return Error{path + ": cannot read: " + text.error().message};
  return parse(*text, path);
}

Result<Config> Config::parse(std::string_view text, const std::string& filename) {
  Config cfg;
  cfg.file_ = filename;
  auto fail = [&](int line, const std::string& msg) -> Result<Config> {
    return Error{filename + ":" + std::to_string(line) + ": " + msg};
  };
  std::string section;
  bool sawVersion = false;
  int lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string_view line = text.substr(pos, nl == std::string_view::npos ? text.size() - pos : nl - pos);
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    ++lineno;
    if (line.find('\0') != std::string_view::npos) return fail(lineno, "NUL byte in line");
    std::string_view t = trim(line);
    if (t.empty() || t[0] == '#') continue;
    if (t[0] == '[') {
      if (t.back() != ']') return fail(lineno, "section header must end with ']'");
      std::string name(trim(t.substr(1, t.size() - 2)));
      bool known = std::any_of(schema().begin(), schema().end(),
                               [&](const KeySpec& k) { return k.section == name; });
      if (!known) return fail(lineno, "unknown section [" + name + "]");
      if (cfg.sectionLines_.count(name)) return fail(lineno, "section [" + name + "] appears twice");
      if (!sawVersion) return fail(lineno, "'version = " + std::to_string(kFormatVersion) + "' must come before the first section");
      section = name;
      cfg.sectionLines_[name] = lineno;
      cfg.sections_[name];
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string_view::npos) return fail(lineno, "expected 'key = value'");
    std::string key(trim(t.substr(0, eq)));
    bool ok;
    std::string value = unquote(trim(t.substr(eq + 1)), ok);
    if (!ok) return fail(lineno, "unbalanced quotes in value of '" + key + "'");
    if (key.empty()) return fail(lineno, "missing key before '='");
    if (section.empty()) {
      if (key != "version") return fail(lineno, "key '" + key + "' outside of any section");
      auto v = parseU64(value);
      if (!v) return fail(lineno, "version must be a number");
      if (*v != static_cast<uint64_t>(kFormatVersion))
        return fail(lineno, "unsupported config format version " + value + " (this release reads version " + std::to_string(kFormatVersion) + ")");
      sawVersion = true;
      continue;
    }
    const KeySpec* spec = findKey(section, key);
    if (!spec) return fail(lineno, "unknown key '" + key + "' in [" + section + "]");
    if (cfg.sections_[section].count(key)) return fail(lineno, "key '" + key + "' set twice in [" + section + "]");
    if (std::string msg = validate(*spec, value); !msg.empty())
      return fail(lineno, key + ": " + msg);
    cfg.sections_[section][key] = Value{value, lineno};
  }
  if (!sawVersion) return fail(std::max(lineno, 1), "missing 'version = " + std::to_string(kFormatVersion) + "'");
  for (const auto& spec : schema()) {
    if (spec.defaultValue) continue;
    std::string sec(spec.section);
    bool present = cfg.sections_.count(sec) > 0;
    if (sec == "global" && !present)
      return fail(lineno, "missing section [global] (it needs '" + std::string(spec.key) + "')");
    if (present && !cfg.sections_[sec].count(std::string(spec.key)))
      return fail(cfg.sectionLines_[sec], "[" + sec + "]: missing required key '" + std::string(spec.key) + "'");
  }
  return cfg;
}

bool Config::hasSection(std::string_view section) const { return sections_.count(std::string(section)) > 0; }

const Config::Value* Config::raw(std::string_view section, std::string_view key, Type type) const {
  const KeySpec* spec = findKey(section, key);
  if (!spec) fatal("config: key [%.*s] %.*s is not in the schema", int(section.size()), section.data(), int(key.size()), key.data());
  bool compatible = spec->type == type || (type == Type::String && (spec->type == Type::Path || spec->type == Type::Choice || spec->type == Type::UnixListen));
  if (!compatible) fatal("config: key [%.*s] %.*s read with the wrong type", int(section.size()), section.data(), int(key.size()), key.data());
  auto s = sections_.find(section);
  if (s != sections_.end()) {
    auto k = s->second.find(key);
    if (k != s->second.end()) return &k->second;
  }
  return nullptr;
}

const std::string& Config::str(std::string_view section, std::string_view key) const {
  if (const Value* v = raw(section, key, Type::String)) return v->text;
  static thread_local std::string def;
  def = findKey(section, key)->defaultValue ? findKey(section, key)->defaultValue : "";
  return def;
}

namespace {
std::string valueOr(const std::string* text, std::string_view section, std::string_view key) {
  if (text) return *text;
  const KeySpec* k = findKey(section, key);
  return k->defaultValue ? k->defaultValue : "";
}
}  // namespace

bool Config::boolean(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::Bool);
  bool b = false;
  parseBool(valueOr(v ? &v->text : nullptr, section, key), b);
  return b;
}

uint64_t Config::integer(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::Int);
  return parseU64(valueOr(v ? &v->text : nullptr, section, key)).value_or(0);
}

uint64_t Config::size(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::Size);
  auto r = parseSize(valueOr(v ? &v->text : nullptr, section, key));
  return r ? *r : 0;
}

std::chrono::seconds Config::duration(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::Duration);
  auto r = parseDuration(valueOr(v ? &v->text : nullptr, section, key));
  return std::chrono::seconds(r ? static_cast<int64_t>(*r) : 0);
}

std::vector<std::string> Config::list(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::List);
  return splitAny(valueOr(v ? &v->text : nullptr, section, key), ", \t");
}

std::vector<Endpoint> Config::endpoints(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::Listen);
  std::vector<Endpoint> out;
  for (const auto& item : splitAny(valueOr(v ? &v->text : nullptr, section, key), ", \t")) {
    auto ep = parseEndpoint(item);
    if (ep) out.push_back(*ep);
  }
  return out;
}

unsigned Config::mode(std::string_view section, std::string_view key) const {
  const Value* v = raw(section, key, Type::Mode);
  unsigned m = 0;
  parseOctal(valueOr(v ? &v->text : nullptr, section, key), m);
  return m;
}

std::string Config::hostname() const {
  const std::string& h = str("global", "hostname");
  if (!h.empty()) return h;
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) == 0 && buf[0]) return buf;
  return "localhost";
}

std::string Config::where(std::string_view section, std::string_view key) const {
  auto s = sections_.find(section);
  if (s != sections_.end()) {
    auto k = s->second.find(key);
    if (k != s->second.end()) return file_ + ":" + std::to_string(k->second.line);
  }
  return file_;
}

void Config::set(std::string_view section, std::string_view key, std::string value) {
  sections_[std::string(section)][std::string(key)] = Value{std::move(value), 0};
}

}  // namespace yubin::config
