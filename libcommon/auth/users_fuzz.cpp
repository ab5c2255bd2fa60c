// libFuzzer target for the users file parser: any bytes must give a table or
// an Error "fuzz.users:LINE: ...". A parsed table must hold only users of the
// configured domain with absolute mailbox paths free of '..' components, and
// every user must be found again under its own address.
// Trust: test code.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "auth/users.hpp"

using namespace yubin::auth;

namespace {

const UserDbSettings& settings() {
  static const UserDbSettings s = [] {
    UserDbSettings v;
    v.path = "fuzz.users";
    v.domains = LocalDomains({"example.org"});
    v.mailRoot = "/var/mail/yubin";
    return v;
  }();
  return s;
}

bool hasDotDotComponent(const std::string& path) {
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string::npos) slash = path.size();
    if (path.compare(start, slash - start, "..") == 0 && slash - start == 2) return true;
    start = slash + 1;
  }
  return false;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto t = parseUsers(text, "fuzz.users", settings());
  if (!t) {
    if (t.error().message.rfind("fuzz.users:", 0) != 0) std::abort();
    return 0;
  }
  for (const User& u : t->users()) {
    if (u.domain != "example.org") std::abort();
    if (u.address != u.local + "@" + u.domain) std::abort();
    if (u.mailbox.empty() || u.mailbox[0] != '/' || hasDotDotComponent(u.mailbox)) std::abort();
    if (u.line <= 0) std::abort();
    if (t->find(u.address) != &u) std::abort();
  }
  if (t->dummyHash().empty()) std::abort();
  (void)t->find("postmaster@example.org");
  (void)t->find("nobody@EXAMPLE.ORG");
  return 0;
}
