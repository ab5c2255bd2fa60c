// dns-lookup: runs the Resolver once from the command line, for tests (the
// resolver against tests/integration/dns_server.py) and for looking at what
// mtad would see. Not installed.
//   dns-lookup [--server ADDR[:PORT]]... [--timeout-ms N] [--tries N]
//              (mx|addresses|route) NAME...
// Prints one JSON object per NAME, in order:
//   {"query":"mx","name":"x","status":"ok","records":[[10,"mx.x"]],"error":""}
//   {"query":"addresses","name":"x","status":"ok","addresses":["::1"],"error":""}
//   {"query":"route","name":"x","kind":"hosts","hosts":[[10,"mx.x"]],"error":""}
// Trust: operator or test input; queries only the servers it is given (or the
// system's resolv.conf when none is).
#include <cstdio>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "dns/resolver.hpp"
#include "event/event.hpp"

namespace {

using namespace yubin;

std::string json(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string records(const std::vector<dns::MxRecord>& rs) {
  std::string out = "[";
  for (size_t i = 0; i < rs.size(); ++i) {
    if (i) out += ",";
    out += "[" + std::to_string(rs[i].preference) + "," + json(rs[i].host) + "]";
  }
  return out + "]";
}

std::string_view kindName(dns::Route::Kind k) {
  switch (k) {
    case dns::Route::Kind::Hosts:
      return "hosts";
    case dns::Route::Kind::NullMx:
      return "nullmx";
    case dns::Route::Kind::NoSuchDomain:
      return "nosuchdomain";
    case dns::Route::Kind::TempFail:
      return "tempfail";
  }
  return "?";
}

int usage() {
  std::fprintf(stderr,
               "usage: dns-lookup [--server ADDR[:PORT]]... [--timeout-ms N] [--tries N] "
               "(mx|addresses|route) NAME...\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  dns::ResolverSettings settings;
  int i = 1;
  for (; i + 1 < argc && std::strncmp(argv[i], "--", 2) == 0; i += 2) {
    std::string opt = argv[i];
    if (opt == "--server") {
      settings.servers.emplace_back(argv[i + 1]);
    } else if (opt == "--timeout-ms") {
      settings.timeout = std::chrono::milliseconds(std::atoi(argv[i + 1]));
    } else if (opt == "--tries") {
      settings.tries = std::atoi(argv[i + 1]);
    } else {
      return usage();
    }
  }
  if (argc - i < 2) return usage();
  std::string what = argv[i++];
  if (what != "mx" && what != "addresses" && what != "route") return usage();

  auto base = yubin::event::newEventBase();
  if (!base) {
    std::fprintf(stderr, "dns-lookup: %s\n", base.error().message.c_str());
    return 1;
  }
  auto resolver = dns::Resolver::create(base->get(), settings);
  if (!resolver) {
    std::fprintf(stderr, "dns-lookup: %s\n", resolver.error().message.c_str());
    return 1;
  }
  std::mt19937 rng(std::random_device{}());
  std::map<int, std::string> lines;  // printed in argument order
  for (int n = 0; i < argc; ++i, ++n) {
    std::string name = argv[i];
    std::string head = "{\"query\":" + json(what) + ",\"name\":" + json(name) + ",";
    if (what == "addresses") {
      (*resolver)->addresses(name, [&lines, n, head](dns::AddressAnswer a) {
        std::string list = "[";
        for (size_t k = 0; k < a.addresses.size(); ++k) {
          list += (k ? "," : "") + json(a.addresses[k]);
        }
        lines[n] = head + "\"status\":" + json(dns::statusName(a.status)) +
                   ",\"addresses\":" + list + "],\"error\":" + json(a.error) + "}";
      });
    } else {
      (*resolver)->mx(name, [&lines, &rng, n, head, name, what](dns::MxAnswer a) {
        if (what == "mx") {
          lines[n] = head + "\"status\":" + json(dns::statusName(a.status)) +
                     ",\"records\":" + records(a.records) + ",\"error\":" + json(a.error) + "}";
          return;
        }
        dns::Route r = dns::route(a, name, rng);
        lines[n] = head + "\"kind\":" + json(kindName(r.kind)) + ",\"hosts\":" + records(r.hosts) +
                   ",\"error\":" + json(r.error) + "}";
      });
    }
  }
  while ((*resolver)->pending() > 0) event_base_loop(base->get(), EVLOOP_ONCE);
  for (const auto& [n, line] : lines) std::printf("%s\n", line.c_str());
  return 0;
}
