// Unit tests for base: strings and crash-safe files.
#include <catch2/catch.hpp>
#include <sys/stat.h>

#include <cstdlib>

#include "base/fs.hpp"
#include "base/strings.hpp"

using namespace yubin;

TEST_CASE("parseU64 is strict") {
  CHECK(parseU64("0") == 0u);
  CHECK(parseU64("18446744073709551615") == 18446744073709551615ull);
  CHECK_FALSE(parseU64("18446744073709551616"));
  CHECK_FALSE(parseU64(""));
  CHECK_FALSE(parseU64("-1"));
  CHECK_FALSE(parseU64("1 "));
}

TEST_CASE("base64 round trip and rejects garbage") {
  std::string s("\0\1\2hello\xff", 9);
  CHECK(base64Decode(base64Encode(s)) == s);
  CHECK(base64Encode("abc") == "YWJj");
  CHECK_FALSE(base64Decode("Y*Jj"));
}

TEST_CASE("lines splits at LF, keeps empty and CR-ended lines, no empty last line") {
  using V = std::vector<std::string_view>;
  CHECK(lines("") == V{});
  CHECK(lines("a") == V{"a"});
  CHECK(lines("a\n") == V{"a"});
  CHECK(lines("a\n\nb\r\nc") == V{"a", "", "b\r", "c"});
  CHECK(lines("\n\n") == V{"", ""});
}

TEST_CASE("splitAny, trim, iequals") {
  CHECK(splitAny("a, b,,c", ", ") == std::vector<std::string>{"a", "b", "c"});
  CHECK(trim("  x y \r\n") == "x y");
  CHECK(iequals("LocalHost", "localhost"));
  CHECK_FALSE(iequals("a", "ab"));
}

TEST_CASE("fnv1a64: the published FNV-1a 64 values") {
  CHECK(fnv1a64("") == 0xcbf29ce484222325ULL);
  CHECK(fnv1a64("a") == 0xaf63dc4c8601ec8cULL);
  CHECK(fnv1a64("foobar") == 0x85944171f73967e8ULL);
  CHECK(fnv1a64(std::string_view("\0", 1)) != fnv1a64(""));
}

TEST_CASE("atomicWrite replaces a file and leaves no temp file") {
  char tmpl[] = "/tmp/yubin-fs-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/f";
  REQUIRE(atomicWrite(path, "one", 0640).ok());
  REQUIRE(atomicWrite(path, "two", 0640).ok());
  auto r = readFile(path);
  REQUIRE(r.ok());
  CHECK(*r == "two");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0640);
  CHECK_FALSE(atomicWrite(dir + "/missing/f", "x").ok());
  std::system(("rm -rf " + dir).c_str());
}
