// Tests for mime/text: transfer decoding then charset conversion of a part,
// whole and one byte at a time.
// Trust: test code.
#include "mime/text.hpp"

#include <catch2/catch.hpp>

using namespace yubin::mime;

TEST_CASE("text of a part for search") {
  auto [header, body, text] = GENERATE(table<std::string, std::string, std::string>({
      {"Content-Type: text/plain; charset=iso-8859-1\r\n"
       "Content-Transfer-Encoding: quoted-printable\r\n",
       "caf=E9 =\r\nsoft\r\n", "caf\xC3\xA9 soft\r\n"},
      {"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n",
       "Y2Fmw6k=\r\n", "caf\xC3\xA9"},
      {"Content-Type: text/plain; charset=windows-1252\r\n", "\x93q\x94",
       "\xE2\x80\x9Cq\xE2\x80\x9D"},
      {"Content-Type: text/plain; charset*=us-ascii''iso-8859-15\r\n", "\xA4", "\xE2\x82\xAC"},
      {"Content-Type: text/plain; charset=x-unknown\r\n", "ok \xFF", "ok \xEF\xBF\xBD"},
      {"", "plain", "plain"},
  }));
  const std::string msg = header + "\r\n" + body;
  const Structure s = parseStructure(msg);
  const Part& p = s.parts[0];
  const std::string raw = msg.substr(p.bodyOffset, p.bodySize);
  std::string whole;
  PartTextDecoder d(p);
  d.decode(raw, whole);
  d.finish(whole);
  CHECK(whole == text);
  std::string pieces;
  PartTextDecoder b(p);
  for (char c : raw) b.decode(std::string_view(&c, 1), pieces);
  b.finish(pieces);
  CHECK(pieces == text);
}
