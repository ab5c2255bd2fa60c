// Tests of the login -> mail process vocabulary: round trip, strict
// decoding (every truncation, bytes left over, other version or type, bad
// bool or enum), and the real thing over a SOCK_SEQPACKET pair with a
// descriptor attached.
#include <catch2/catch.hpp>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "mrad/handoff.hpp"

using namespace yubin;
using namespace yubin::mrad;

namespace {

Handoff sample() {
  Handoff h;
  h.protocol = Protocol::Pop3;
  h.user = "bob@example.org";
  h.mailbox = "/var/mail/yubin/example.org/bob/Maildir";
  h.kind = MailboxKind::Mbox;
  h.sessionId = "1f.2";
  h.clientIp = "2001:db8::1";
  h.tls = true;
  h.method = "scram-sha-256";
  h.pending = std::string("STAT\r\nRETR 1\r\n\0x", 16);
  return h;
}

Handoff imapSample() {
  Handoff h = sample();
  h.protocol = Protocol::Imap;
  h.kind = MailboxKind::Maildir;
  h.tag = "A0001";
  h.pending = "A0002 SELECT INBOX\r\n";
  return h;
}

}  // namespace

TEST_CASE("handoff round trip") {
  Handoff h = sample();
  auto d = decodeHandoff(encodeHandoff(h));
  REQUIRE(d);
  CHECK(*d == h);
  Handoff empty;
  auto e = decodeHandoff(encodeHandoff(empty));
  REQUIRE(e);
  CHECK(*e == empty);
  auto i = decodeHandoff(encodeHandoff(imapSample()));
  REQUIRE(i);
  CHECK(i->tag == "A0001");
  CHECK(*i == imapSample());
  // IMAP needs the tag the mail process answers.
  Handoff untagged = imapSample();
  untagged.tag.clear();
  auto u = decodeHandoff(encodeHandoff(untagged));
  REQUIRE_FALSE(u);
  CHECK(u.error().message.find("tag") != std::string::npos);
}

TEST_CASE("handoff decoding is strict") {
  std::string good = encodeHandoff(sample());
  for (size_t n = 0; n < good.size(); ++n) {
    INFO("truncated to " << n);
    CHECK_FALSE(decodeHandoff(good.substr(0, n)));
  }
  std::string longer = good + "x";
  CHECK_FALSE(decodeHandoff(longer));  // length field does not match
  // The same with the length field fixed: bytes left over.
  longer[3] = static_cast<char>(longer[3] + 1);
  auto left = decodeHandoff(longer);
  REQUIRE_FALSE(left);
  CHECK(left.error().message.find("left over") != std::string::npos);
  std::string v = good;
  v[5] = 1;  // the version before the tag
  CHECK(decodeHandoff(v).error().message.find("version") != std::string::npos);
  std::string t = good;
  t[7] = 1;
  CHECK(decodeHandoff(t).error().message.find("type") != std::string::npos);
  std::string p = good;
  p[8] = 9;  // protocol
  CHECK_FALSE(decodeHandoff(p));
  // The tls bool: find it after the fixed fields. Flip it to 2.
  Handoff h = sample();
  size_t boolAt = 8 + 1 + 4 + h.user.size() + 4 + h.mailbox.size() + 1 + 4 + h.sessionId.size() +
                  4 + h.clientIp.size();
  std::string b = good;
  REQUIRE(b[boolAt] == 1);
  b[boolAt] = 2;
  CHECK_FALSE(decodeHandoff(b));
}

TEST_CASE("handoff over a SEQPACKET pair carries one descriptor") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int pipefd[2];
  REQUIRE(::pipe(pipefd) == 0);
  UniqueFd r(pipefd[0]), w(pipefd[1]);

  auto none = receiveHandoff(b.get());
  REQUIRE_FALSE(none);
  CHECK(none.error().errnum == EAGAIN);

  REQUIRE(sendHandoff(a.get(), sample(), w.get()));
  auto got = receiveHandoff(b.get());
  REQUIRE(got);
  CHECK(got->handoff == sample());
  REQUIRE(got->fd);
  // The descriptor is the pipe's write end.
  REQUIRE(::write(got->fd.get(), "z", 1) == 1);
  char c = 0;
  REQUIRE(::read(r.get(), &c, 1) == 1);
  CHECK(c == 'z');

  // A record without a descriptor is a protocol error.
  std::string rec = encodeHandoff(sample());
  REQUIRE(::send(a.get(), rec.data(), rec.size(), 0) == static_cast<ssize_t>(rec.size()));
  auto bare = receiveHandoff(b.get());
  REQUIRE_FALSE(bare);
  CHECK(bare.error().errnum == EPROTO);

  // A garbage record with a descriptor: error, and the descriptor is closed.
  REQUIRE(sendHandoff(a.get(), sample(), w.get()));
  (void)receiveHandoff(b.get());
  a.reset();
  auto closed = receiveHandoff(b.get());
  REQUIRE_FALSE(closed);
  CHECK(closed.error().errnum == 0);
}

TEST_CASE("a direct handoff carries the client's socket as a second descriptor") {
  Handoff h = sample();
  h.tls = false;
  h.direct = true;
  auto d = decodeHandoff(encodeHandoff(h));
  REQUIRE(d);
  CHECK(d->direct);
  CHECK(*d == h);
  // TLS stays in the login process: a direct TLS session is refused.
  Handoff tls = h;
  tls.tls = true;
  auto t = decodeHandoff(encodeHandoff(tls));
  REQUIRE_FALSE(t);
  CHECK(t.error().message.find("TLS") != std::string::npos);
  // The flag is a strict bool too.
  std::string rec = encodeHandoff(h);
  REQUIRE(rec.back() == 1);
  rec.back() = 2;
  CHECK_FALSE(decodeHandoff(rec));

  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);
  int link[2], client[2];
  REQUIRE(::pipe(link) == 0);
  REQUIRE(::pipe(client) == 0);
  UniqueFd lr(link[0]), lw(link[1]), cr(client[0]), cw(client[1]);

  // The sender checks the flag against the descriptors it is given.
  CHECK_FALSE(sendHandoff(a.get(), h, lw.get()));
  CHECK_FALSE(sendHandoff(a.get(), sample(), lw.get(), cw.get()));

  REQUIRE(sendHandoff(a.get(), h, lw.get(), cw.get()));
  auto got = receiveHandoff(b.get());
  REQUIRE(got);
  CHECK(got->handoff == h);
  REQUIRE(got->fd);
  REQUIRE(got->client);
  // Each descriptor is the one sent, in its place.
  REQUIRE(::write(got->fd.get(), "l", 1) == 1);
  REQUIRE(::write(got->client.get(), "c", 1) == 1);
  char c = 0;
  REQUIRE(::read(lr.get(), &c, 1) == 1);
  CHECK(c == 'l');
  REQUIRE(::read(cr.get(), &c, 1) == 1);
  CHECK(c == 'c');

  // A proxied session has no client descriptor.
  REQUIRE(sendHandoff(a.get(), sample(), lw.get()));
  auto proxied = receiveHandoff(b.get());
  REQUIRE(proxied);
  CHECK_FALSE(proxied->client);

  // The record and its descriptors must agree: a direct record with one
  // descriptor, or a proxied one with two, is a protocol error.
  auto rawSend = [&](const std::string& record, std::vector<int> fds) {
    iovec iov{const_cast<char*>(record.data()), record.size()};
    alignas(cmsghdr) char ctl[CMSG_SPACE(sizeof(int) * 2)] = {};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = ctl;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cm), fds.data(), sizeof(int) * fds.size());
    return ::sendmsg(a.get(), &msg, 0) == static_cast<ssize_t>(record.size());
  };
  REQUIRE(rawSend(encodeHandoff(h), {lw.get()}));
  auto one = receiveHandoff(b.get());
  REQUIRE_FALSE(one);
  CHECK(one.error().errnum == EPROTO);
  CHECK(one.error().message.find("two descriptors") != std::string::npos);
  REQUIRE(rawSend(encodeHandoff(sample()), {lw.get(), cw.get()}));
  auto two = receiveHandoff(b.get());
  REQUIRE_FALSE(two);
  CHECK(two.error().errnum == EPROTO);
  CHECK(two.error().message.find("one descriptor") != std::string::npos);
}
