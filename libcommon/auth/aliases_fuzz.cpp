// libFuzzer target for the aliases file parser and the expansion: any bytes
// must give a table or an Error "fuzz.aliases:LINE: ...". A parsed table is
// then used to expand a few fixed addresses and each alias key: an expansion
// is a loop/depth error or a list of distinct addresses no longer than
// kMaxAliasExpansion.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <unordered_set>

#include "auth/aliases.hpp"

using namespace yubin::auth;

namespace {

const LocalDomains& domains() {
  static const LocalDomains d({"example.org"});
  return d;
}

bool isUser(std::string_view address) {
  return address == "user@example.org" || address == "postmaster@example.org";
}

void checkExpansion(const AliasTable& t, std::string_view address) {
  auto r = t.expand(address, isUser);
  if (!r) return;
  if (r->empty() || r->size() > kMaxAliasExpansion) std::abort();
  std::unordered_set<std::string> seen;
  for (const auto& a : *r) {
    if (a.find('@') == std::string::npos) std::abort();
    if (!seen.insert(a).second) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = parseAliases(text, "fuzz.aliases", domains());
  if (!t) {
    if (t.error().message.rfind("fuzz.aliases:", 0) != 0) std::abort();
    return 0;
  }
  for (std::string_view a : {"postmaster@example.org", "user@example.org", "root@example.org",
                             "Root@EXAMPLE.org", "nobody@example.org", "x@elsewhere.test"})
    checkExpansion(*t, a);
  size_t n = 0;
  for (const auto& e : t->entries()) {
    if (t->find(e.key) != &e || e.targets.empty()) std::abort();
    if (e.key[0] != '@') checkExpansion(*t, e.key);
    if (++n == 64) break;  // keeps one input cheap
  }
  if (t->entries().size() <= 64) (void)t->reverse("user@example.org", isUser);
  return 0;
}
