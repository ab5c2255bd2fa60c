// Tests of the master's pure decisions: control access, restart backoff,
// exit causes.
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>

#include "master/policy.hpp"

using namespace yubin::master;
using namespace std::chrono_literals;

TEST_CASE("mayControl: root, admin group, dev-mode owner; nobody else") {
  AccessPolicy rootMaster{false, 0, gid_t{900}};
  AccessPolicy devMaster{true, 1000, std::nullopt};
  struct Case {
    const char* what;
    PeerCred peer;
    AccessPolicy policy;
    bool allowed;
  };
  Case cases[] = {
      {"root", {1, 0, 0, {}}, rootMaster, true},
      {"root in dev mode", {1, 0, 0, {}}, devMaster, true},
      {"admin as primary group", {1, 1001, 900, {}}, rootMaster, true},
      {"admin as supplementary group", {1, 1001, 100, {100, 900}}, rootMaster, true},
      {"other user", {1, 1001, 100, {100, 27}}, rootMaster, false},
      {"master's uid without dev mode", {1, 1000, 100, {}}, AccessPolicy{false, 1000, gid_t{900}}, false},
      {"dev mode: the master's own user", {1, 1000, 1000, {}}, devMaster, true},
      {"dev mode: another user", {1, 1001, 1001, {}}, devMaster, false},
      {"no admin group exists", {1, 1001, 900, {900}}, AccessPolicy{false, 0, std::nullopt}, false},
  };
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK(mayControl(c.peer, c.policy) == c.allowed);
  }
}

TEST_CASE("Backoff: 1 s doubling to the cap, reset after a stable run") {
  Backoff b(10s);
  CHECK(b.next(0s) == 1s);
  CHECK(b.next(2s) == 2s);
  CHECK(b.next(1s) == 4s);
  CHECK(b.next(1s) == 8s);
  CHECK(b.next(1s) == 10s);
  CHECK(b.next(9s) == 10s);
  CHECK(b.stableAfter() == 10s);
  CHECK(b.next(10s) == 1s);  // ran long enough: start over
  CHECK(b.next(0s) == 2s);

  Backoff big(60s);
  CHECK(big.stableAfter() == 60s);
  for (int i = 0; i < 10; ++i) (void)big.next(0s);
  CHECK(big.next(59s) == 60s);
  CHECK(big.next(60s) == 1s);

  Backoff zero(0s);  // a cap of 0 still waits 1 s: no busy loop
  CHECK(zero.next(0s) == 1s);
  CHECK(zero.next(0s) == 1s);
}

namespace {
int statusOf(void (*fn)()) {
  pid_t pid = fork();
  if (pid == 0) {
    fn();
    _exit(0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return st;
}
}  // namespace

TEST_CASE("describeExit names the exit code or the signal") {
  CHECK(describeExit(statusOf([] { _exit(3); })) == "exit code 3");
  CHECK(describeExit(statusOf([] {})) == "exit code 0");
  CHECK(describeExit(statusOf([] { kill(getpid(), SIGKILL); })) == "signal SIGKILL");
  CHECK(describeExit(statusOf([] {
          signal(SIGTERM, SIG_DFL);  // Catch2 catches it otherwise
          kill(getpid(), SIGTERM);
        })) == "signal SIGTERM");
}
