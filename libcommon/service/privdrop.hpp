// Privilege drop: a daemon's section names the user, group and chroot it runs
// with; the skeleton applies them in one fixed order before any network input
// is read: resolve the names -> chroot (if set) -> setgroups({gid}) ->
// setresgid(gid) -> setresuid(uid) -> verify that root cannot be regained and
// that the real, effective and saved ids are all the target ones.
// The system calls go through SysOps so a test can check the order and
// inject failures without being root.
// Trust: runs as root, before anything untrusted is read.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "base/result.hpp"
#include "config/config.hpp"

namespace yubin::service {

struct Identity {
  std::string user;
  std::string group;
  uid_t uid = 0;
  gid_t gid = 0;
};

// Looks both names up (NSS: before the chroot). Refuses uid 0 and gid 0: a
// daemon's section must name an unprivileged account.
Result<Identity> resolveIdentity(const std::string& user, const std::string& group);

// What the skeleton will do about privileges, decided from the config and the
// effective uid; no system call changes anything here.
struct DropPlan {
  bool devMode = false;  // not root: run as the invoking user, no chroot
  Identity target;       // when !devMode
  std::string chroot;    // "" for none
  // [global] users_group: the one supplementary group a daemon keeps, so it
  // can read the users and aliases files (root:<users_group> 0640).
  std::string usersGroup;
  gid_t usersGid = 0;  // valid when !usersGroup.empty()
};
// Reads `user`, `group` and `chroot` of the section, and [global] users_group (a key the schema lacks
// counts as empty). Errors are "file:line: [mtad] user: ...".
Result<DropPlan> planDrop(const config::Config& cfg, std::string_view section, uid_t euid);

// The system calls dropPrivileges makes; realSysOps() is the real thing.
class SysOps {
 public:
  virtual ~SysOps() = default;
  virtual int chroot(const char* dir) = 0;
  virtual int chdir(const char* dir) = 0;
  virtual int setgroups(size_t n, const gid_t* groups) = 0;
  virtual int getgroups(std::vector<gid_t>& out) = 0;
  virtual int setresgid(gid_t r, gid_t e, gid_t s) = 0;
  virtual int setresuid(uid_t r, uid_t e, uid_t s) = 0;
  virtual int getresgid(gid_t* r, gid_t* e, gid_t* s) = 0;
  virtual int getresuid(uid_t* r, uid_t* e, uid_t* s) = 0;
  virtual int setuid(uid_t uid) = 0;
  virtual int setgid(gid_t gid) = 0;
};
SysOps& realSysOps();

// Applies a plan that is not devMode, in the fixed order above; the first
// failing step ends it with an error naming the step. Any error is fatal for
// the daemon: it must exit rather than run half-dropped.
Status dropPrivileges(const DropPlan& plan, SysOps& ops = realSysOps());

// "yubin-mta(uid 101) yubin-mta(gid 102) chroot=/var/spool/yubin": for logs.
std::string describe(const DropPlan& plan);

}  // namespace yubin::service
