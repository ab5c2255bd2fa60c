// Tests of mrad/imap/search (SEARCH key evaluation).
#include <catch2/catch.hpp>

#include "mrad/imap/search.hpp"

TEST_CASE("search: charset") {
  REQUIRE(yubin::mrad::imap::checkCharset(std::nullopt).ok());
}
