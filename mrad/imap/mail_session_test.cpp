// Tests of the IMAP mail session (mail_session.hpp) over MemoryStore.
#include "mrad/imap/mail_session.hpp"

#include <catch2/catch.hpp>

#include "store/memory_store.hpp"

namespace yubin::mrad::imap {
namespace {

TEST_CASE("login reply") {
  store::MemoryStore st;
  MailSession s(st, {});
  s.start("a1", "");
  CHECK(s.takeOutput().rfind("a1 OK [CAPABILITY IMAP4rev1", 0) == 0);
}

}  // namespace
}  // namespace yubin::mrad::imap
