// Unit tests for the config parser: good files and every kind of bad file.
#include <catch2/catch.hpp>

#include "config/config.hpp"

using namespace yubin::config;

namespace {
const char* kGood = R"(# a comment
version = 1

[global]
domains = example.org, localhost
hostname = "mx.example.org"
log = stderr

[mtad]
listen = 127.0.0.1:2525, [::1]:2525, *:26
max_message_size = 10M
command_timeout = 2m
bare_lf = normalize
tls = no
)";

std::string errorOf(const char* text) {
  auto r = Config::parse(text, "t.conf");
  REQUIRE_FALSE(r.ok());
  return r.error().message;
}
}  // namespace

TEST_CASE("a good file parses and getters apply defaults") {
  auto r = Config::parse(kGood, "t.conf");
  REQUIRE(r.ok());
  const Config& c = *r;
  CHECK(c.hasSection("mtad"));
  CHECK_FALSE(c.hasSection("mdad"));
  CHECK(c.list("global", "domains") == std::vector<std::string>{"example.org", "localhost"});
  CHECK(c.str("global", "hostname") == "mx.example.org");
  CHECK(c.hostname() == "mx.example.org");
  CHECK(c.size("mtad", "max_message_size") == 10u * 1024 * 1024);
  CHECK(c.duration("mtad", "command_timeout").count() == 120);
  CHECK(c.integer("mtad", "max_recipients") == 1000);  // default
  CHECK_FALSE(c.boolean("mtad", "tls"));
  CHECK(c.str("mtad", "bare_lf") == "normalize");
  auto eps = c.endpoints("mtad", "listen");
  REQUIRE(eps.size() == 3);
  CHECK(eps[0].host == "127.0.0.1");
  CHECK(eps[0].port == 2525);
  CHECK(eps[1].host == "::1");
  CHECK(eps[2].host.empty());
  CHECK(eps[2].port == 26);
  CHECK(c.where("mtad", "listen") == "t.conf:10");
  CHECK(c.mode("mdad", "lmtp_socket_mode") == 0660);
}

TEST_CASE("bad files are refused with file:line") {
  CHECK(errorOf("version = 1\n[global]\ndomains = x\nbogus = 1\n") == "t.conf:4: unknown key 'bogus' in [global]");
  CHECK(errorOf("version = 1\n[nosuch]\n") == "t.conf:2: unknown section [nosuch]");
  CHECK(errorOf("[global]\ndomains = x\n") == "t.conf:1: 'version = 1' must come before the first section");
  CHECK(errorOf("version = 2\n") == "t.conf:1: unsupported config format version 2 (this release reads version 1)");
  CHECK(errorOf("version = 1\n[global]\nlog = stderr\n") == "t.conf:2: [global]: missing required key 'domains'");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\nlisten = 127.0.0.1\n") ==
        "t.conf:5: listen: bad address '127.0.0.1': expected host:port");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\nlisten = ::1:25\n") ==
        "t.conf:5: listen: bad address '::1:25': put IPv6 addresses in brackets");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\nlisten = 1.2.3.4:70000\n") ==
        "t.conf:5: listen: bad port in '1.2.3.4:70000': must be 1 to 65535");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\nmax_recipients = -1\n") ==
        "t.conf:5: max_recipients: must be a non-negative integer");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\nmax_message_size = 10X\n").find("t.conf:5: max_message_size: bad size") == 0);
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\ncommand_timeout = soon\n").find("t.conf:5: command_timeout: bad duration") == 0);
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mtad]\ntls = maybe\n") == "t.conf:5: tls: must be yes or no");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\nlog = both\n") == "t.conf:4: log: must be one of: syslog stderr");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\nusers_file = relative\n") == "t.conf:4: users_file: must be an absolute path");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\ndomains = y\n") == "t.conf:4: key 'domains' set twice in [global]");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[global]\n") == "t.conf:4: section [global] appears twice");
  CHECK(errorOf("version = 1\n[global]\ndomains = \"x\n") == "t.conf:3: unbalanced quotes in value of 'domains'");
  CHECK(errorOf("version = 1\n[global\n") == "t.conf:2: section header must end with ']'");
  CHECK(errorOf("version = 1\n[global]\njust words\n") == "t.conf:3: expected 'key = value'");
  CHECK(errorOf("version = 1\nlog = x\n") == "t.conf:2: key 'log' outside of any section");
  CHECK(errorOf("") == "t.conf:1: missing 'version = 1'");
  CHECK(errorOf("version = 1\n") == "t.conf:1: missing section [global] (it needs 'domains')");
  CHECK(errorOf("version = 1\n[global]\ndomains = x\n[mdad]\nlmtp_socket_mode = 999\n") ==
        "t.conf:5: lmtp_socket_mode: must be an octal mode such as 0660");
  const char kNul[] = "version = 1\n[global]\ndomains = x\0y\n";
  std::string withNul(kNul, sizeof kNul - 1);
  auto r = Config::parse(withNul, "t.conf");
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "t.conf:3: NUL byte in line");
}

TEST_CASE("the schema has no duplicate keys and every default validates") {
  for (const auto& k : schema()) {
    int n = 0;
    for (const auto& o : schema())
      if (o.section == k.section && o.key == k.key) ++n;
    CHECK(n == 1);
    if (k.defaultValue && k.type != Type::Choice) {
      std::string text = "version = 1\n[global]\ndomains = x\n";
      if (k.section != "global") text += "[" + std::string(k.section) + "]\n";
      if (k.key != "domains") text += std::string(k.key) + " = \"" + k.defaultValue + "\"\n";
      auto r = Config::parse(text, "d.conf");
      INFO(k.section << "." << k.key);
      CHECK(r.ok());
    }
  }
}
