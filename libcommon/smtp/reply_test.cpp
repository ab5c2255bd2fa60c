// Tests for the reply catalogue and renderer: every entry renders, its
// enhanced code agrees with its code, multi-line replies and sanitising.
#include "smtp/reply.hpp"

#include <catch2/catch.hpp>

using namespace yubin::smtp;

TEST_CASE("every catalogue entry renders consistently", "[reply]") {
  const int last = static_cast<int>(ReplyId::TemporaryFailure);
  for (int i = 0; i <= last; ++i) {
    const Reply r = reply(static_cast<ReplyId>(i), "arg");
    INFO("reply id " << i << ": " << r.code << " " << r.enhanced << " " << r.text);
    CHECK(r.code >= 200);
    CHECK(r.code <= 599);
    CHECK_FALSE(r.text.empty());
    CHECK(r.text.find("{}") == std::string::npos);
    if (r.code / 100 == 3) CHECK(r.enhanced.empty());
    if (!r.enhanced.empty()) {
      CHECK(r.enhanced[0] == static_cast<char>('0' + r.code / 100));
    }
    const std::string wire = render(r);
    CHECK(wire.substr(0, 4) == std::to_string(r.code) + " ");
    CHECK(wire.size() >= 6);
    CHECK(wire.substr(wire.size() - 2) == "\r\n");
    CHECK(wire.find('\n') == wire.size() - 1);
  }
}

TEST_CASE("enhanced codes where RFC 2034 wants them", "[reply]") {
  CHECK(render(reply(ReplyId::GreetingSmtp, "mx.test")) == "220 mx.test ESMTP Yubin\r\n");
  CHECK(render(reply(ReplyId::GreetingLmtp, "mx.test")) == "220 mx.test LMTP Yubin\r\n");
  CHECK(render(reply(ReplyId::HeloOk, "mx.test")) == "250 mx.test\r\n");
  CHECK(render(reply(ReplyId::StartData)) == "354 End data with <CR><LF>.<CR><LF>\r\n");
  CHECK(render(reply(ReplyId::SenderOk)) == "250 2.1.0 Ok\r\n");
  CHECK(render(reply(ReplyId::Queued, "ABC123")) == "250 2.0.0 Ok: queued as ABC123\r\n");
  CHECK(render(reply(ReplyId::Timeout, "mx.test")) ==
        "421 4.4.2 mx.test Error: timeout exceeded\r\n");
  CHECK(render(reply(ReplyId::UnknownParameter)) ==
        "555 5.5.4 Error: MAIL/RCPT parameter not supported\r\n");
}

TEST_CASE("an empty argument takes its joint with it", "[reply]") {
  CHECK(reply(ReplyId::BadRecipient).text == "Error: bad recipient address");
  CHECK(reply(ReplyId::ShuttingDown).text == "Service shutting down");
  CHECK(reply(ReplyId::HeloOk).text.empty());
  CHECK(reply(ReplyId::TooManyConnections, "mx.test").text ==
        "mx.test Error: too many connections, try again later");
  CHECK(reply(ReplyId::Ok, "ignored").text == "Ok");
}

TEST_CASE("multi-line replies", "[reply]") {
  CHECK(render(capabilityReply("mx.test", {"PIPELINING", "SIZE 100", "8BITMIME"})) ==
        "250-mx.test\r\n250-PIPELINING\r\n250-SIZE 100\r\n250 8BITMIME\r\n");
  CHECK(render(capabilityReply("mx.test", {})) == "250 mx.test\r\n");
  CHECK(render(Reply{550, "5.7.1", "first\nsecond"}) == "550-5.7.1 first\r\n550 5.7.1 second\r\n");
}

TEST_CASE("reply text can never split a reply", "[reply]") {
  CHECK(render(reply(ReplyId::Queued,
                     "a\rb\x01"
                     "c")) == "250 2.0.0 Ok: queued as a?b?c\r\n");
  CHECK(render(Reply{451, "4.3.0", std::string("x\0y", 3)}) == "451 4.3.0 x?y\r\n");
  CHECK(render(Reply{250, "", ""}) == "250 \r\n");
}
