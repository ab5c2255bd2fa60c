// libFuzzer target for the yubin.conf parser: any bytes must give a Config or
// an Error whose message starts with "fuzz.conf:" (file:line). A parsed
// Config is then read through the typed getter of every schema key, which
// must not abort on anything the parser accepted.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "config/config.hpp"

using namespace yubin::config;

namespace {

void readEveryKey(const Config& cfg) {
  for (const KeySpec& k : schema()) {
    switch (k.type) {
      case Type::String:
      case Type::Path:
      case Type::UnixListen:
      case Type::Choice:
        (void)cfg.str(k.section, k.key);
        break;
      case Type::Bool:
        (void)cfg.boolean(k.section, k.key);
        break;
      case Type::Int:
        (void)cfg.integer(k.section, k.key);
        break;
      case Type::Size:
        (void)cfg.size(k.section, k.key);
        break;
      case Type::Duration:
        (void)cfg.duration(k.section, k.key);
        break;
      case Type::List:
        (void)cfg.list(k.section, k.key);
        break;
      case Type::Listen:
        (void)cfg.endpoints(k.section, k.key);
        break;
      case Type::Mode:
        (void)cfg.mode(k.section, k.key);
        break;
    }
    if (cfg.where(k.section, k.key).rfind("fuzz.conf", 0) != 0) std::abort();
  }
  for (std::string_view s : daemonSections()) (void)cfg.hasSection(s);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto cfg = Config::parse(text, "fuzz.conf");
  if (cfg) {
    if (cfg->file() != "fuzz.conf") std::abort();
    readEveryKey(*cfg);
  } else if (cfg.error().message.rfind("fuzz.conf:", 0) != 0) {
    std::abort();
  }
  return 0;
}
