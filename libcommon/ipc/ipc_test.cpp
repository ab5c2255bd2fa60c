// Tests of the ipc vocabulary: exact wire bytes, round trips (whole and one
// byte at a time) and hostile frames.
#include <sys/socket.h>

#include <catch2/catch.hpp>
#include <thread>

#include "base/unique_fd.hpp"
#include "ipc/ipc.hpp"

using namespace yubin;
using namespace yubin::ipc;

namespace {

std::string bytes(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

constexpr uint16_t V = kVersion;

std::string header(uint32_t len, uint16_t version, uint16_t type) {
  return bytes({int(len >> 24), int(len >> 16 & 0xff), int(len >> 8 & 0xff), int(len & 0xff),
                version >> 8, version & 0xff, type >> 8, type & 0xff});
}

StatusReply sampleStatus() {
  StatusReply s;
  s.masterPid = 42;
  s.masterUptimeSeconds = 3600;
  s.version = "0.1.0";
  s.daemons.push_back({"mtad", 1234, DaemonState::Running, 60, 2, true, 7});
  s.daemons.push_back({"mdad", 0, DaemonState::Backoff, 0, 5, false, 0});
  return s;
}

QueueMessageInfo sampleMessage() {
  QueueMessageInfo m;
  m.id = "362j7yryy8pvkg00";
  m.state = QueueMsgState::Deferred;
  m.sender = "alice@example.org";
  m.arrival = 1700000000;
  m.size = 1500;
  m.envid = std::string("env\0id", 6);
  m.ret = 2;
  m.recipients.push_back({"bob@example.net", "rfc822", "bob@example.net", 6,
                          QueueRcptStatus::Deferred, 2, 1700000010, 1700000610,
                          "451 4.7.1 greylisted"});
  m.recipients.push_back({"carol@example.org", "", "", 0, QueueRcptStatus::Delivered, 1,
                          1700000010, 0, "250 2.0.0 ok"});
  return m;
}

std::vector<Message> allSamples() {
  return {StatusCommand{},
          ReloadCommand{},
          StopCommand{},
          OkReply{},
          OkReply{"reloaded"},
          ErrorReply{"/etc/yubin/yubin.conf:3: unknown key 'x' in [mtad]"},
          ErrorReply{std::string("nul\0inside", 10)},
          sampleStatus(),
          StatusReply{},
          StatusRequest{0xfffffffe},
          DaemonStatus{7, 99, 0x0102030405060708ull},
          QueueCommand{QueueAction::Flush, ""},
          QueueCommand{QueueAction::Show, "0123456789abcdef"},
          QueueCommand{QueueAction::Bounce, "../../etc/passwd"},  // mtad validates IDs
          QueueReply{},
          QueueReply{"held", {}},
          QueueReply{"", {sampleMessage(), QueueMessageInfo{}}},
          QueueRequest{0xffffffff, QueueAction::Delete, "x"},
          QueueResult{3, false, "no message x in the queue", {}},
          QueueResult{4, true, "", {sampleMessage()}}};
}

}  // namespace

TEST_CASE("ipc: exact wire bytes") {
  CHECK(encode(StatusCommand{}) == header(0, V, 1));
  CHECK(encode(StopCommand{}) == header(0, V, 3));
  CHECK(encode(OkReply{"hi"}) == header(6, V, 100) + bytes({0, 0, 0, 2, 'h', 'i'}));
  CHECK(encode(StatusRequest{0x01020304}) == header(4, V, 200) + bytes({1, 2, 3, 4}));
  CHECK(encode(DaemonStatus{1, 2, 3}) ==
        header(16, V, 201) + bytes({0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3}));
  StatusReply s;
  s.masterPid = 9;
  s.masterUptimeSeconds = 10;
  s.version = "v";
  s.daemons.push_back({"m", 5, DaemonState::Stopping, 11, 12, true, 13});
  std::string payload = bytes({0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, 10, 0, 0, 0, 1, 'v', 0, 0, 0, 1,
                               0, 0, 0, 1, 'm', 0, 0, 0, 5, 3, 0, 0, 0, 0, 0, 0, 0, 11, 0, 0, 0,
                               12, 1, 0, 0, 0, 0, 0, 0, 0, 13});
  CHECK(encode(s) == header(static_cast<uint32_t>(payload.size()), V, 102) + payload);
}

TEST_CASE("ipc: every message round-trips whole and byte by byte") {
  auto samples = allSamples();
  auto i = GENERATE_COPY(range(size_t{0}, samples.size()));
  const Message& m = samples[i];
  std::string frame = encode(m);
  INFO("type " << typeName(static_cast<uint16_t>(typeOf(m))));

  auto whole = decodeFrame(frame);
  REQUIRE(whole.ok());
  CHECK(*whole == m);

  FrameReader r;
  for (size_t k = 0; k < frame.size(); ++k) {
    auto none = r.next();
    REQUIRE(none.ok());
    CHECK_FALSE(none->has_value());
    r.feed(frame.substr(k, 1));
  }
  auto got = r.next();
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK(**got == m);
  CHECK(r.buffered() == 0);
  auto after = r.next();
  REQUIRE(after.ok());
  CHECK_FALSE(after->has_value());
}

TEST_CASE("ipc: several frames in one feed come out in order") {
  auto samples = allSamples();
  std::string all;
  for (const auto& m : samples) all += encode(m);
  // Feed in uneven chunks that cut frames anywhere.
  FrameReader r;
  std::vector<Message> out;
  size_t chunk = 1;
  for (size_t pos = 0; pos < all.size(); pos += chunk, chunk = chunk % 13 + 3) {
    r.feed(std::string_view(all).substr(pos, chunk));
    for (;;) {
      auto m = r.next();
      REQUIRE(m.ok());
      if (!*m) break;
      out.push_back(std::move(**m));
    }
  }
  CHECK(out == samples);
}

TEST_CASE("ipc: hostile frames are protocol errors") {
  struct Case {
    const char* what;
    std::string frame;
    std::string error;
  };
  std::string okPayload = bytes({0, 0, 0, 1, 'x'});
  // A StatusReply with one daemon whose state byte is at `stateAt`.
  StatusReply one;
  one.daemons.push_back({"a", 1, DaemonState::Running, 0, 0, false, 0});
  std::string good = encode(one);
  size_t stateAt = kHeaderSize + 4 + 8 + 4 + 4 + 4 + 1 + 4;
  size_t respondingAt = stateAt + 1 + 8 + 4;
  std::string badState = good, zeroState = good, badBool = good;
  badState[stateAt] = 9;
  zeroState[stateAt] = 0;
  badBool[respondingAt] = 2;

  // Queue messages with one bad byte each.
  std::string cmd = encode(QueueCommand{QueueAction::Hold, "a"});
  std::string action0 = cmd, action9 = cmd;
  action0[kHeaderSize] = 0;
  action9[kHeaderSize] = 9;
  std::string req = encode(QueueRequest{1, QueueAction::Retry, ""});
  std::string reqAction = req;
  reqAction[kHeaderSize + 4] = 42;
  QueueReply qr{"", {QueueMessageInfo{}}};
  qr.messages[0].recipients.push_back({});
  std::string qgood = encode(qr);
  size_t msgStateAt = kHeaderSize + 4 + 4 + 4;  // text, count, id
  size_t retAt = msgStateAt + 1 + 4 + 8 + 8 + 4;
  size_t notifyAt = retAt + 1 + 4 + 4 + 4 + 4;
  std::string badMsgState = qgood, badRet = qgood, badNotify = qgood, badRcptStatus = qgood;
  badMsgState[msgStateAt] = 4;
  badRet[retAt] = 3;
  badNotify[notifyAt] = 16;
  badRcptStatus[notifyAt + 1] = 5;
  std::string resultBool = encode(QueueResult{1, true, "", {}});
  resultBool[kHeaderSize + 4] = 7;
  std::string resultPayload = encode(QueueResult{}).substr(kHeaderSize);

  std::vector<Case> cases = {
      {"wrong version", header(0, 1, 1), "protocol version 1"},
      {"a later version", header(0, V + 1, 1), "protocol version " + std::to_string(V + 1)},
      {"version zero", header(0, 0, 1), "protocol version 0"},
      {"unknown type", header(0, V, 77), "unknown message type 77"},
      {"unknown type with payload", header(1, V, 65535) + "x", "unknown message type 65535"},
      {"leftover bytes after a command", header(1, V, 1) + "x", "1 bytes left over"},
      {"leftover bytes after a string", header(6, V, 100) + okPayload + "y", "1 bytes left over"},
      {"string longer than payload", header(5, V, 101) + bytes({0, 0, 0, 9, 'x'}),
       "truncated string"},
      {"string length huge", header(4, V, 101) + bytes({0xff, 0xff, 0xff, 0xff}),
       "truncated string"},
      {"missing string length", header(2, V, 100) + bytes({0, 0}), "truncated u32"},
      {"truncated DaemonStatus", header(8, V, 201) + std::string(8, '\0'), "truncated u32"},
      {"list count exceeds payload",
       header(4 + 8 + 4 + 4, V, 102) + std::string(16, '\0') + bytes({0, 1, 0, 0}),
       "list count 65536 exceeds"},
      {"unknown daemon state", badState, "unknown daemon state 9"},
      {"daemon state zero", zeroState, "unknown daemon state 0"},
      {"bool not 0 or 1", badBool, "bool field is 2"},
      {"frame over the limit", header(kMaxFrameSize + 1, V, 100), "exceeds the limit"},
      {"queue action 0", action0, "unknown queue action 0"},
      {"queue action 9", action9, "unknown queue action 9"},
      {"queue request action", reqAction, "unknown queue action 42"},
      {"queue command without its id", header(1, V, 16) + bytes({5}), "truncated u32"},
      {"message state", badMsgState, "unknown message state 4"},
      {"RET value", badRet, "unknown RET value 3"},
      {"NOTIFY bits", badNotify, "NOTIFY bits 16"},
      {"recipient status", badRcptStatus, "unknown recipient status 5"},
      {"result ok flag", resultBool, "bool field is 7"},
      {"message count exceeds payload", header(8, V, 103) + bytes({0, 0, 0, 0, 0, 0, 0, 1}),
       "list count 1 exceeds"},
      {"recipient count exceeds payload",
       header(4 + 4 + 34, V, 103) + bytes({0, 0, 0, 0, 0, 0, 0, 1}) + std::string(30, '\0') +
           bytes({0, 0, 0, 1}),
       "list count 1 exceeds"},
      {"leftover after a queue result",
       header(static_cast<uint32_t>(resultPayload.size() + 1), V, 203) + resultPayload + "z",
       "1 bytes left over"},
  };
  for (const auto& c : cases) {
    SECTION(c.what) {
      auto whole = decodeFrame(c.frame);
      REQUIRE_FALSE(whole.ok());
      CHECK_THAT(whole.error().message, Catch::Contains(c.error));

      // Fed one byte at a time, the reader fails with the same error at the
      // latest once the frame is complete, and keeps failing.
      FrameReader r;
      std::optional<Error> err;
      for (char ch : c.frame) {
        r.feed(std::string_view(&ch, 1));
        auto m = r.next();
        if (!m) {
          err = m.error();
          break;
        }
        CHECK_FALSE(m->has_value());
      }
      REQUIRE(err.has_value());
      CHECK_THAT(err->message, Catch::Contains(c.error));
      CHECK(r.failed());
      r.feed(encode(StatusCommand{}));
      auto again = r.next();
      REQUIRE_FALSE(again.ok());
      CHECK(again.error().message == err->message);
    }
  }
}

TEST_CASE("ipc: an oversized frame is refused from its header alone") {
  FrameReader r(64);
  r.feed(header(65, V, 100));
  auto m = r.next();
  REQUIRE_FALSE(m.ok());
  CHECK_THAT(m.error().message, Catch::Contains("65 bytes exceeds the limit of 64"));

  FrameReader ok(64);
  ok.feed(encode(OkReply{std::string(56, 'a')}));  // payload exactly 60
  auto fits = ok.next();
  REQUIRE(fits.ok());
  REQUIRE(fits->has_value());
  CHECK(std::get<OkReply>(**fits).text == std::string(56, 'a'));
}

TEST_CASE("ipc: decodeFrame wants exactly one frame") {
  std::string f = encode(StopCommand{});
  CHECK_THAT(decodeFrame(f + "z").error().message, Catch::Contains("1 bytes after the frame"));
  CHECK_THAT(decodeFrame(f.substr(0, 7)).error().message, Catch::Contains("truncated frame header"));
  std::string ok = encode(OkReply{"abc"});
  CHECK_THAT(decodeFrame(ok.substr(0, ok.size() - 1)).error().message,
             Catch::Contains("truncated frame"));
}

TEST_CASE("ipc: queue messages, exact wire bytes") {
  CHECK(encode(QueueCommand{QueueAction::Retry, "ab"}) ==
        header(7, V, 16) + bytes({4, 0, 0, 0, 2, 'a', 'b'}));
  CHECK(encode(QueueRequest{0x0a0b0c0d, QueueAction::Flush, ""}) ==
        header(9, V, 202) + bytes({10, 11, 12, 13, 3, 0, 0, 0, 0}));
  CHECK(encode(QueueResult{5, false, "no", {}}) ==
        header(15, V, 203) + bytes({0, 0, 0, 5, 0, 0, 0, 0, 2, 'n', 'o', 0, 0, 0, 0}));
  QueueReply r;
  r.messages.push_back({});
  r.messages[0].id = "i";
  r.messages[0].state = QueueMsgState::Held;
  r.messages[0].arrival = 0x0102;
  r.messages[0].size = 7;
  r.messages[0].ret = 1;
  r.messages[0].recipients.push_back({"a", "", "", 2, QueueRcptStatus::Bounced, 1, 3, 4, "5"});
  std::string payload = bytes({0, 0, 0, 0,                        // text
                               0, 0, 0, 1,                        // one message
                               0, 0, 0, 1, 'i', 2,                // id, state
                               0, 0, 0, 0,                        // sender <>
                               0, 0, 0, 0, 0, 0, 1, 2,            // arrival
                               0, 0, 0, 0, 0, 0, 0, 7,            // size
                               0, 0, 0, 0, 1,                     // envid, ret
                               0, 0, 0, 1,                        // one recipient
                               0, 0, 0, 1, 'a', 0, 0, 0, 0, 0, 0, 0, 0,  // address, orcpt
                               2, 3, 0, 0, 0, 1,                  // notify, status, attempts
                               0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4,  // times
                               0, 0, 0, 1, '5'});
  CHECK(encode(r) == header(static_cast<uint32_t>(payload.size()), V, 103) + payload);
}

TEST_CASE("ipc: queue names") {
  CHECK(std::string(queueActionName(QueueAction::Release)) == "release");
  CHECK(std::string(queueActionName(static_cast<QueueAction>(0))) == "unknown");
  CHECK(queueActionNeedsId(QueueAction::Show));
  CHECK(queueActionNeedsId(QueueAction::Bounce));
  CHECK_FALSE(queueActionNeedsId(QueueAction::List));
  CHECK_FALSE(queueActionNeedsId(QueueAction::Flush));
  CHECK(std::string(queueRcptStatusName(QueueRcptStatus::Deferred)) == "deferred");
  CHECK(std::string(queueMsgStateName(QueueMsgState::Active)) == "active");
  CHECK(std::string(typeName(203)) == "QueueResult");
  CHECK(typeOf(QueueCommand{}) == MsgType::QueueCommand);
}

TEST_CASE("ipc: names") {
  CHECK(std::string(typeName(102)) == "StatusReply");
  CHECK(std::string(typeName(5)) == "unknown");
  CHECK(std::string(stateName(DaemonState::Backoff)) == "backoff");
  CHECK(typeOf(DaemonStatus{}) == MsgType::DaemonStatus);
}

TEST_CASE("ipc: send and receive over a socketpair") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd a(sv[0]), b(sv[1]);

  // A big reply, larger than the socket buffer, forces partial writes.
  StatusReply big;
  for (int i = 0; i < 3000; ++i)
    big.daemons.push_back({std::string(100, 'd'), uint32_t(i), DaemonState::Running, 1, 2, true, 3});
  std::thread writer([&] {
    REQUIRE(sendMessage(a.get(), big).ok());
    REQUIRE(sendMessage(a.get(), OkReply{"done"}).ok());
  });
  FrameReader r;
  auto m1 = receiveMessage(b.get(), r, std::chrono::seconds(10));
  auto m2 = receiveMessage(b.get(), r, std::chrono::seconds(10));
  writer.join();
  REQUIRE(m1.ok());
  CHECK(std::get<StatusReply>(*m1) == big);
  REQUIRE(m2.ok());
  CHECK(std::get<OkReply>(*m2).text == "done");

  // Nothing more: a short timeout, then the peer closes.
  auto none = receiveMessage(b.get(), r, std::chrono::milliseconds(20));
  REQUIRE_FALSE(none.ok());
  CHECK(none.error().errnum == ETIMEDOUT);
  a.reset();
  auto closed = receiveMessage(b.get(), r, std::chrono::seconds(5));
  REQUIRE_FALSE(closed.ok());
  CHECK_THAT(closed.error().message, Catch::Contains("closed"));
}

TEST_CASE("ipc: sending to a closed peer is an error, not SIGPIPE") {
  int sv[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
  UniqueFd a(sv[0]);
  ::close(sv[1]);
  auto s = sendMessage(a.get(), StatusCommand{});
  REQUIRE_FALSE(s.ok());
  CHECK(s.error().errnum == EPIPE);
}
