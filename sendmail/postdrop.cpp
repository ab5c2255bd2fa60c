// yubin-postdrop: the set-group-ID yubin-drop program that writes one
// message into the maildrop for a user who cannot write there (every user
// but root). yubin-sendmail runs it as `yubin-postdrop MAILDROP_DIR` with
// a complete drop file (maildrop.hpp) on stdin.
//
// SECURITY: this program runs with the group yubin-drop, whose one power
// is writing into the maildrop folder (mode 1730: no listing, no reading,
// no removing another's file). So it: reads no configuration and no
// environment variable; sets its umask; accepts a folder only when it is
// a real directory (not a symlink) named "maildrop", of its effective
// group, with mode 1730 (so it can only ever write where the group may
// write anyway); reads at most kMaxDropFile octets; accepts only input
// that parses as a drop file; creates its file O_EXCL|O_NOFOLLOW. The file
// belongs to the invoking user (real uid): that, not anything the user
// wrote, is what mtad's pickup trusts.
// Standards: none.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "mtad/maildrop.hpp"

// Sanitizer builds only (tests): a set-group-ID process cannot read its own
// /proc/self/environ, so the sanitizers never see ASAN_OPTIONS, and
// LeakSanitizer cannot stop a non-dumpable process to look for leaks (it
// fails the exit). Leak checking is therefore off for this one program; in
// ordinary builds nothing calls this function.
extern "C" __attribute__((used, visibility("default"))) const char* __asan_default_options() {
  return "detect_leaks=0";
}

namespace {

// sysexits.h
constexpr int kExUsage = 64, kExDataErr = 65, kExNoPerm = 77, kExTempFail = 75, kExOsErr = 71;

int fail(int code, const std::string& what) {
  fprintf(stderr, "yubin-postdrop: %s\n", what.c_str());
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  // Descriptors 0-2 closed by the caller would be reused by the files this
  // program opens: hold them with /dev/null first.
  for (int fd = 0; fd <= 2; ++fd)
    if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd) return 71;
  umask(077);
  // No core file with the message in it.
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  if (argc != 2) return fail(kExUsage, "usage: yubin-postdrop MAILDROP_DIR < dropfile");
  std::string dir = argv[1];
  if (dir.empty() || dir[0] != '/' || dir.size() < 9 ||
      dir.compare(dir.size() - 9, 9, "/maildrop") != 0)
    return fail(kExUsage, "not a maildrop folder: " + dir);
  struct stat st;
  if (lstat(dir.c_str(), &st) != 0) return fail(kExTempFail, dir + ": " + strerror(errno));
  if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 01730 || st.st_gid != getegid())
    return fail(kExNoPerm, dir + " is not a mode 1730 folder of this program's group");

  std::string data;
  char buf[65536];
  while (true) {
    ssize_t n = read(0, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(kExOsErr, std::string("read: ") + strerror(errno));
    if (n == 0) break;
    if (data.size() + static_cast<size_t>(n) > yubin::mtad::kMaxDropFile)
      return fail(kExDataErr, "message too large");
    data.append(buf, static_cast<size_t>(n));
  }
  if (auto p = yubin::mtad::parseDrop(data); !p) return fail(kExDataErr, p.error().message);
  auto name = yubin::mtad::writeDropFile(dir, data);
  if (!name) return fail(kExTempFail, name.error().message);
  printf("%s\n", name->c_str());
  return 0;
}
