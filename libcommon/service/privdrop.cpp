// Privilege drop; see privdrop.hpp.
#include <algorithm>
#include "service/privdrop.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace yubin::service {
namespace {

class RealSysOps final : public SysOps {
 public:
  int chroot(const char* dir) override { return ::chroot(dir); }
  int chdir(const char* dir) override { return ::chdir(dir); }
  int setgroups(size_t n, const gid_t* groups) override { return ::setgroups(n, groups); }
  int getgroups(std::vector<gid_t>& out) override {
    int n = ::getgroups(0, nullptr);
    if (n < 0) return -1;
    out.resize(static_cast<size_t>(n));
    n = ::getgroups(n, out.data());
    if (n < 0) return -1;
    out.resize(static_cast<size_t>(n));
    return 0;
  }
  int setresgid(gid_t r, gid_t e, gid_t s) override { return ::setresgid(r, e, s); }
  int setresuid(uid_t r, uid_t e, uid_t s) override { return ::setresuid(r, e, s); }
  int getresgid(gid_t* r, gid_t* e, gid_t* s) override { return ::getresgid(r, e, s); }
  int getresuid(uid_t* r, uid_t* e, uid_t* s) override { return ::getresuid(r, e, s); }
  int setuid(uid_t uid) override { return ::setuid(uid); }
  int setgid(gid_t gid) override { return ::setgid(gid); }
};

// getpwnam_r / getgrnam_r with a buffer that grows on ERANGE.
template <class Entry, class Fn>
int lookup(const std::string& name, Entry& entry, std::string& buf, Fn fn) {
  buf.resize(1024);
  for (;;) {
    Entry* found = nullptr;
    int rc = fn(name.c_str(), &entry, buf.data(), buf.size(), &found);
    if (rc == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (rc != 0) return rc;
    return found ? 0 : ENOENT;
  }
}

std::string keyOr(const config::Config& cfg, std::string_view section, const char* key) {
  return config::findKey(section, key) ? cfg.str(section, key) : std::string();
}

}  // namespace

SysOps& realSysOps() {
  static RealSysOps ops;
  return ops;
}

namespace {

Result<uid_t> userId(const std::string& user) {
  if (user.empty()) return Error{"user is not set"};
  std::string buf;
  passwd pw{};
  int rc = lookup(user, pw, buf, ::getpwnam_r);
  if (rc == ENOENT) return Error{"no such user '" + user + "'"};
  if (rc != 0) return errnoError("looking up user '" + user + "'", rc);
  if (pw.pw_uid == 0) return Error{"user '" + user + "' is root; name an unprivileged user"};
  return pw.pw_uid;
}

Result<gid_t> groupId(const std::string& group) {
  if (group.empty()) return Error{"group is not set"};
  std::string buf;
  struct group gr {};
  int rc = lookup(group, gr, buf, ::getgrnam_r);
  if (rc == ENOENT) return Error{"no such group '" + group + "'"};
  if (rc != 0) return errnoError("looking up group '" + group + "'", rc);
  if (gr.gr_gid == 0) return Error{"group '" + group + "' is gid 0; name an unprivileged group"};
  return gr.gr_gid;
}

}  // namespace

Result<Identity> resolveIdentity(const std::string& user, const std::string& group) {
  auto uid = userId(user);
  if (!uid) return uid.error();
  auto gid = groupId(group);
  if (!gid) return gid.error();
  return Identity{user, group, *uid, *gid};
}

Result<DropPlan> planDrop(const config::Config& cfg, std::string_view section, uid_t euid) {
  DropPlan plan;
  plan.chroot = keyOr(cfg, section, "chroot");
  if (euid != 0) {
    plan.devMode = true;
    return plan;
  }
  auto fail = [&](const char* key, const Error& e) -> Result<DropPlan> {
    return Error{cfg.where(section, key) + ": [" + std::string(section) + "] " + key + ": " +
                 e.message};
  };
  plan.target.user = keyOr(cfg, section, "user");
  plan.target.group = keyOr(cfg, section, "group");
  auto uid = userId(plan.target.user);
  if (!uid) return fail("user", uid.error());
  auto gid = groupId(plan.target.group);
  if (!gid) return fail("group", gid.error());
  plan.target.uid = *uid;
  plan.target.gid = *gid;
  if (config::findKey("global", "users_group")) {
    plan.usersGroup = cfg.str("global", "users_group");
    if (!plan.usersGroup.empty()) {
      auto ug = groupId(plan.usersGroup);
      if (!ug)
        return Error{cfg.where("global", "users_group") + ": [global] users_group: " +
                     ug.error().message};
      plan.usersGid = *ug;
    }
  }
  return plan;
}

Status dropPrivileges(const DropPlan& plan, SysOps& ops) {
  if (plan.devMode) return Error{"privilege drop: not root"};
  const Identity& t = plan.target;
  if (!plan.chroot.empty()) {
    if (ops.chroot(plan.chroot.c_str()) != 0) return errnoError("chroot " + plan.chroot);
    if (ops.chdir("/") != 0) return errnoError("chdir / in the chroot");
  }
  // Supplementary groups first, while we still may: root's groups (0 and
  // friends) must not survive. Then gid before uid: after setuid we could no
  // longer change the gid. setres*id sets real, effective and saved ids at
  // once, so nothing is left to regain root with.
  std::vector<gid_t> keep{t.gid};
  if (!plan.usersGroup.empty() && plan.usersGid != t.gid) keep.push_back(plan.usersGid);
  if (ops.setgroups(keep.size(), keep.data()) != 0) return errnoError("setgroups " + t.group);
  if (ops.setresgid(t.gid, t.gid, t.gid) != 0) return errnoError("setgid " + t.group);
  if (ops.setresuid(t.uid, t.uid, t.uid) != 0) return errnoError("setuid " + t.user);

  // Verify: trust nothing above.
  if (ops.setuid(0) == 0) return Error{"privilege drop failed: setuid(0) succeeded"};
  if (ops.setgid(0) == 0) return Error{"privilege drop failed: setgid(0) succeeded"};
  uid_t ru, eu, su;
  gid_t rg, eg, sg;
  if (ops.getresuid(&ru, &eu, &su) != 0 || ops.getresgid(&rg, &eg, &sg) != 0)
    return errnoError("privilege drop: getres[ug]id");
  if (ru != t.uid || eu != t.uid || su != t.uid)
    return Error{"privilege drop failed: uids are " + std::to_string(ru) + "/" +
                 std::to_string(eu) + "/" + std::to_string(su) + ", want " + std::to_string(t.uid)};
  if (rg != t.gid || eg != t.gid || sg != t.gid)
    return Error{"privilege drop failed: gids are " + std::to_string(rg) + "/" +
                 std::to_string(eg) + "/" + std::to_string(sg) + ", want " + std::to_string(t.gid)};
  std::vector<gid_t> groups;
  if (ops.getgroups(groups) != 0) return errnoError("privilege drop: getgroups");
  for (gid_t g : groups)
    if (std::find(keep.begin(), keep.end(), g) == keep.end())
      return Error{"privilege drop failed: supplementary group " + std::to_string(g) + " kept"};
  return {};
}

std::string describe(const DropPlan& plan) {
  std::string out;
  if (plan.devMode) {
    out = "dev mode";
  } else {
    out = plan.target.user + "(uid " + std::to_string(plan.target.uid) + ") " + plan.target.group +
          "(gid " + std::to_string(plan.target.gid) + ")";
    if (!plan.usersGroup.empty()) out += " +" + plan.usersGroup;
  }
  if (!plan.chroot.empty()) out += " chroot=" + plan.chroot;
  return out;
}

}  // namespace yubin::service
