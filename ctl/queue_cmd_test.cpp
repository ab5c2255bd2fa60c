// Unit tests for yubinctl's `queue` command (ctl/queue_cmd.cpp): the text
// and JSON listings of a spool written with the real queue writer, a spool
// mtad has not created yet, a symlink planted in queue/, and usage errors.
#include "ctl/queue_cmd.hpp"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "config/config.hpp"
#include "queue/queue.hpp"
#include "queue/test_util.hpp"

using namespace yubin;
using yubin::queue::testing::TempDir;

namespace {

constexpr int64_t kArrival = 1700000000;

struct Run {
  int rc;
  std::string out;
  std::string err;
};

struct Fixture {
  TempDir dir;
  std::string spool = dir.path() + "/spool";
  config::Config cfg = *config::Config::parse(
      "version = 1\n[global]\ndomains = example.org\nspool_dir = " + spool + "\n", "test.conf");

  Run run(std::vector<std::string> args, int64_t now = kArrival + 125) {
    std::ostringstream out, err;
    int rc = ctl::runQueueCommand(cfg, args, out, err, now);
    return {rc, out.str(), err.str()};
  }

  // Queues one message the way mtad does; returns its ID.
  std::string queueMessage(const std::string& from, std::vector<std::string> to,
                           const std::string& body) {
    auto q = queue::Queue::open({.spoolDir = spool});
    REQUIRE(q.ok());
    queue::Envelope env;
    env.sender = from;
    env.nullSender = from.empty();
    for (auto& t : to) {
      queue::Recipient r;
      r.address = t;
      env.recipients.push_back(r);
    }
    env.arrivalTime = kArrival;
    env.clientAddress = "192.0.2.7";
    env.heloName = "client.example.net";
    auto m = (*q)->begin(env);
    REQUIRE(m.ok());
    REQUIRE(m->append(body).ok());
    auto id = (*q)->commitNow(std::move(*m));
    REQUIRE(id.ok());
    return id->str();
  }
};

}  // namespace

TEST_CASE("queue list: mailq text and JSON of committed messages") {
  Fixture f;
  std::string a =
      f.queueMessage("alice@example.net", {"bob@example.org"}, "Subject: a\r\n\r\nhi\r\n");
  std::string b =
      f.queueMessage("", {"postmaster@example.org", "carol@example.org"}, std::string(3000, 'x'));

  Run text = f.run({"list"});
  CHECK(text.rc == 0);
  CHECK(text.err.empty());
  CHECK(text.out.find("-Queue ID-") == 0);
  CHECK(text.out.find(a + "          18 2023-11-14 22:13:20     2m  alice@example.net\n") !=
        std::string::npos);
  CHECK(text.out.find("bob@example.org\n") != std::string::npos);
  CHECK(text.out.find(b) != std::string::npos);
  CHECK(text.out.find("  <>\n") != std::string::npos);
  CHECK(text.out.find("carol@example.org\n") != std::string::npos);
  CHECK(text.out.find("-- 3 Kbytes in 2 Requests.\n") != std::string::npos);

  Run json = f.run({"queue", "list", "--json"});  // a leading "queue" is skipped
  CHECK(json.rc == 0);
  CHECK(json.out ==
        "{\"version\":1,\"messages\":["
        "{\"id\":\"" +
            a +
            "\",\"area\":\"queue\",\"status\":\"queued\",\"size\":18,"
            "\"sender\":\"alice@example.net\",\"arrival\":1700000000,\"age\":125,"
            "\"client\":\"192.0.2.7\",\"recipients\":[{\"address\":\"bob@example.org\","
            "\"status\":\"pending\",\"attempts\":0,\"last_attempt\":0,\"next_attempt\":0,"
            "\"reply\":\"\"}]},"
            "{\"id\":\"" +
            b +
            "\",\"area\":\"queue\",\"status\":\"queued\",\"size\":3000,"
            "\"sender\":\"\",\"arrival\":1700000000,\"age\":125,"
            "\"client\":\"192.0.2.7\",\"recipients\":[{\"address\":\"postmaster@example.org\","
            "\"status\":\"pending\",\"attempts\":0,\"last_attempt\":0,\"next_attempt\":0,"
            "\"reply\":\"\"},{\"address\":\"carol@example.org\","
            "\"status\":\"pending\",\"attempts\":0,\"last_attempt\":0,\"next_attempt\":0,"
            "\"reply\":\"\"}]}]}\n");
}

TEST_CASE("queue list: a spool mtad has not created yet is empty") {
  Fixture f;
  REQUIRE(::mkdir(f.spool.c_str(), 0700) == 0);
  Run text = f.run({"list"});
  CHECK(text.rc == 0);
  CHECK(text.out == "Mail queue is empty\n");
  Run json = f.run({"list", "--json"});
  CHECK(json.rc == 0);
  CHECK(json.out == "{\"version\":1,\"messages\":[]}\n");
}

TEST_CASE("queue list: a missing spool_dir is an error naming it") {
  Fixture f;
  Run r = f.run({"list"});
  CHECK(r.rc == 1);
  CHECK(r.out.empty());
  CHECK(r.err.find("cannot read the queue in " + f.spool) != std::string::npos);
}

TEST_CASE("queue list: a symlink planted in queue/ is shown corrupt, not followed") {
  Fixture f;
  std::string good = f.queueMessage("alice@example.net", {"bob@example.org"}, "x\r\n");
  // An ID-shaped name pointing at a file the admin may read but mtad's user
  // may not: the listing must not read through it.
  std::string secret = f.dir.path() + "/secret";
  std::ofstream(secret) << "yubin-queue 1 not really\n";
  std::string planted = "0000000000000000";
  REQUIRE(::symlink(secret.c_str(), (f.spool + "/queue/" + planted).c_str()) == 0);
  Run r = f.run({"list", "--json"});
  CHECK(r.rc == 0);
  CHECK(r.out.find("{\"id\":\"" + planted +
                   "\",\"area\":\"queue\",\"status\":\"corrupt\",\"error\":") != std::string::npos);
  CHECK(r.out.find("not really") == std::string::npos);
  CHECK(r.out.find("\"id\":\"" + good + "\",\"area\":\"queue\",\"status\":\"queued\"") !=
        std::string::npos);
}

TEST_CASE("queue: usage errors") {
  Fixture f;
  Run none = f.run({});
  CHECK(none.rc == 2);
  CHECK(none.err.find("missing subcommand") != std::string::npos);
  CHECK(none.err.find("usage: yubinctl queue list [--json]") != std::string::npos);
  Run bad = f.run({"flush"});
  CHECK(bad.rc == 2);
  CHECK(bad.err.find("unknown subcommand 'flush'") != std::string::npos);
  Run arg = f.run({"list", "--xml"});
  CHECK(arg.rc == 2);
  CHECK(arg.err.find("unknown argument '--xml'") != std::string::npos);
}
