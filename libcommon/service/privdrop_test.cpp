// Unit tests for the privilege drop: name resolution and its errors, the plan
// read from a config section, the fixed order of the system calls and every
// failure (through a recording SysOps), and, when run as root, a real drop in
// a forked child.
#include "service/privdrop.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <map>

using namespace yubin;
using namespace yubin::service;

namespace {

config::Config parse(const std::string& text) {
  auto cfg = config::Config::parse(text, "t.conf");
  REQUIRE(cfg.ok());
  return std::move(*cfg);
}

// Records each call; `fail` names a call that returns -1 with EPERM.
struct FakeOps final : SysOps {
  std::vector<std::string> calls;
  std::string fail;
  bool rootRegainable = false;
  uid_t resuid[3] = {0, 0, 0};
  gid_t resgid[3] = {0, 0, 0};
  std::vector<gid_t> groups = {0, 4, 24};
  bool overrideIds = false;

  int result(const std::string& call) {
    calls.push_back(call);
    if (call.rfind(fail, 0) == 0 && !fail.empty()) {
      errno = EPERM;
      return -1;
    }
    return 0;
  }
  int chroot(const char* d) override { return result("chroot " + std::string(d)); }
  int chdir(const char* d) override { return result("chdir " + std::string(d)); }
  int setgroups(size_t n, const gid_t* g) override {
    std::string c = "setgroups";
    for (size_t i = 0; i < n; ++i) c += " " + std::to_string(g[i]);
    int rc = result(c);
    if (rc == 0) groups.assign(g, g + n);
    return rc;
  }
  int getgroups(std::vector<gid_t>& out) override {
    out = groups;
    return result("getgroups");
  }
  int setresgid(gid_t r, gid_t e, gid_t s) override {
    int rc = result("setresgid " + std::to_string(r) + " " + std::to_string(e) + " " +
                    std::to_string(s));
    if (rc == 0 && !overrideIds) resgid[0] = r, resgid[1] = e, resgid[2] = s;
    return rc;
  }
  int setresuid(uid_t r, uid_t e, uid_t s) override {
    int rc = result("setresuid " + std::to_string(r) + " " + std::to_string(e) + " " +
                    std::to_string(s));
    if (rc == 0 && !overrideIds) resuid[0] = r, resuid[1] = e, resuid[2] = s;
    return rc;
  }
  int getresgid(gid_t* r, gid_t* e, gid_t* s) override {
    *r = resgid[0], *e = resgid[1], *s = resgid[2];
    return result("getresgid");
  }
  int getresuid(uid_t* r, uid_t* e, uid_t* s) override {
    *r = resuid[0], *e = resuid[1], *s = resuid[2];
    return result("getresuid");
  }
  int setuid(uid_t u) override {
    calls.push_back("setuid " + std::to_string(u));
    if (rootRegainable) return 0;
    errno = EPERM;
    return -1;
  }
  int setgid(gid_t g) override {
    calls.push_back("setgid " + std::to_string(g));
    if (rootRegainable) return 0;
    errno = EPERM;
    return -1;
  }
};

DropPlan plan(const std::string& chroot = "") {
  DropPlan p;
  p.target = Identity{"mta", "mtagroup", 101, 102};
  p.chroot = chroot;
  return p;
}

const std::vector<std::string> kFullOrder = {
    "chroot /var/empty",
    "chdir /",
    "setgroups 102",
    "setresgid 102 102 102",
    "setresuid 101 101 101",
    "setuid 0",
    "setgid 0",
    "getresuid",
    "getresgid",
    "getgroups",
};

}  // namespace

TEST_CASE("resolveIdentity: names, errors, and no root") {
  struct Case {
    std::string user, group, error;
  };
  auto c = GENERATE(values<Case>({
      {"", "nogroup", "user is not set"},
      {"nobody", "", "group is not set"},
      {"yubin-no-such-user", "nogroup", "no such user 'yubin-no-such-user'"},
      {"nobody", "yubin-no-such-group", "no such group 'yubin-no-such-group'"},
      {"root", "nogroup", "user 'root' is root; name an unprivileged user"},
      {"nobody", "root", "group 'root' is gid 0; name an unprivileged group"},
      {"nobody\n", "nogroup", "no such user 'nobody\n'"},
  }));
  auto id = resolveIdentity(c.user, c.group);
  REQUIRE_FALSE(id.ok());
  CHECK(id.error().message == c.error);
}

TEST_CASE("resolveIdentity finds nobody:nogroup") {
  auto id = resolveIdentity("nobody", "nogroup");
  REQUIRE(id.ok());
  CHECK(id->user == "nobody");
  CHECK(id->group == "nogroup");
  CHECK(id->uid == 65534);
  CHECK(id->gid == 65534);
}

TEST_CASE("planDrop: dev mode when not root; errors point at file:line") {
  std::string base = "version = 1\n[global]\ndomains = example.org\n";
  auto cfg = parse(base + "[mtad]\nuser = yubin-no-such-user\nchroot = /var/empty\n");
  auto dev = planDrop(cfg, "mtad", 1000);
  REQUIRE(dev.ok());
  CHECK(dev->devMode);
  CHECK(dev->chroot == "/var/empty");
  CHECK(describe(*dev) == "dev mode chroot=/var/empty");

  auto root = planDrop(cfg, "mtad", 0);
  REQUIRE_FALSE(root.ok());
  CHECK(root.error().message == "t.conf:5: [mtad] user: no such user 'yubin-no-such-user'");

  auto badGroup = parse(base + "[mtad]\nuser = nobody\n\ngroup = yubin-no-such-group\n");
  auto r = planDrop(badGroup, "mtad", 0);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().message == "t.conf:7: [mtad] group: no such group 'yubin-no-such-group'");

  // The default user (yubin-mta) is not in the file: the error names the file.
  auto defaults = parse(base + "[mtad]\n");
  auto d = planDrop(defaults, "mtad", 0);
  if (!resolveIdentity("yubin-mta", "yubin-mta").ok()) {
    REQUIRE_FALSE(d.ok());
    CHECK(d.error().message == "t.conf: [mtad] user: no such user 'yubin-mta'");
  }

  auto ok = parse(base + "[mtad]\nuser = nobody\ngroup = nogroup\n");
  auto p = planDrop(ok, "mtad", 0);
  REQUIRE(p.ok());
  CHECK_FALSE(p->devMode);
  CHECK(p->chroot.empty());
  CHECK(describe(*p) == "nobody(uid 65534) nogroup(gid 65534)");

  // mdad's section has no chroot key at all.
  auto mdad = parse(base + "[mdad]\nuser = nobody\ngroup = nogroup\n");
  auto m = planDrop(mdad, "mdad", 0);
  REQUIRE(m.ok());
  CHECK(m->chroot.empty());
}

TEST_CASE("dropPrivileges: the fixed order, then the checks") {
  FakeOps ops;
  auto st = dropPrivileges(plan("/var/empty"), ops);
  REQUIRE(st.ok());
  CHECK(ops.calls == kFullOrder);

  FakeOps noChroot;
  REQUIRE(dropPrivileges(plan(), noChroot).ok());
  CHECK(noChroot.calls == std::vector<std::string>(kFullOrder.begin() + 2, kFullOrder.end()));
}

TEST_CASE("dropPrivileges: a failing step stops everything after it") {
  struct Case {
    std::string fail;
    std::string error;
  };
  auto c = GENERATE(values<Case>({
      {"chroot", "chroot /var/empty: Operation not permitted"},
      {"chdir", "chdir / in the chroot: Operation not permitted"},
      {"setgroups", "setgroups mtagroup: Operation not permitted"},
      {"setresgid", "setgid mtagroup: Operation not permitted"},
      {"setresuid", "setuid mta: Operation not permitted"},
      {"getresuid", "privilege drop: getres[ug]id: Operation not permitted"},
      {"getgroups", "privilege drop: getgroups: Operation not permitted"},
  }));
  FakeOps ops;
  ops.fail = c.fail;
  auto st = dropPrivileges(plan("/var/empty"), ops);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message == c.error);
  REQUIRE_FALSE(ops.calls.empty());
  CHECK(ops.calls.back().rfind(c.fail, 0) == 0);
  // Everything before the failing call happened in order.
  size_t n = ops.calls.size();
  CHECK(std::equal(ops.calls.begin(), ops.calls.end() - 1, kFullOrder.begin()));
  CHECK(kFullOrder[n - 1].rfind(c.fail, 0) == 0);
}

TEST_CASE("dropPrivileges: verification catches a drop that did not take") {
  SECTION("root can be regained") {
    FakeOps ops;
    ops.rootRegainable = true;
    auto st = dropPrivileges(plan(), ops);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "privilege drop failed: setuid(0) succeeded");
  }
  SECTION("a saved uid stayed 0") {
    FakeOps ops;
    ops.overrideIds = true;
    ops.resuid[0] = ops.resuid[1] = 101;
    ops.resgid[0] = ops.resgid[1] = ops.resgid[2] = 102;
    auto st = dropPrivileges(plan(), ops);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "privilege drop failed: uids are 101/101/0, want 101");
  }
  SECTION("the effective gid stayed 0") {
    FakeOps ops;
    ops.overrideIds = true;
    ops.resuid[0] = ops.resuid[1] = ops.resuid[2] = 101;
    ops.resgid[0] = ops.resgid[2] = 102;
    auto st = dropPrivileges(plan(), ops);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().message == "privilege drop failed: gids are 102/0/102, want 102");
  }
  SECTION("dev mode plans are refused") {
    FakeOps ops;
    DropPlan dev;
    dev.devMode = true;
    CHECK_FALSE(dropPrivileges(dev, ops).ok());
    CHECK(ops.calls.empty());
  }
}

TEST_CASE("dropPrivileges for real (root only, in a child)") {
  if (::geteuid() != 0) {
    WARN("not root: the real privilege drop is not tested");
    return;
  }
  char tmpl[] = "/tmp/yubin-chroot-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  std::string dir = tmpl;
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);  // nobody must be able to look inside
  REQUIRE(::close(::open((dir + "/inside").c_str(), O_CREAT | O_WRONLY, 0644)) == 0);
  auto id = resolveIdentity("nobody", "nogroup");
  REQUIRE(id.ok());
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    DropPlan p;
    p.target = *id;
    p.chroot = dir;
    auto st = dropPrivileges(p);
    std::string report = st.ok() ? "ok" : st.error().message;
    uid_t r, e, s;
    gid_t rg, eg, sg;
    ::getresuid(&r, &e, &s);
    ::getresgid(&rg, &eg, &sg);
    report += " " + std::to_string(r) + "/" + std::to_string(e) + "/" + std::to_string(s);
    report += " " + std::to_string(rg) + "/" + std::to_string(eg) + "/" + std::to_string(sg);
    report += ::access("/inside", F_OK) == 0 ? " chrooted" : " not-chrooted";
    report += ::setuid(0) == 0 ? " root-again" : " no-root";
    (void)!::write(fds[1], report.data(), report.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buf[512];
  ssize_t n;
  while ((n = ::read(fds[0], buf, sizeof buf)) > 0) got.append(buf, static_cast<size_t>(n));
  ::close(fds[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  (void)std::system(("rm -rf '" + dir + "'").c_str());
  CHECK(got == "ok 65534/65534/65534 65534/65534/65534 chrooted no-root");
}
