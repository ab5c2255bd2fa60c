// libFuzzer target for the IMAP side of mbox (mbox_store.hpp): the input is
// a hostile mbox file used as a user's INBOX (header fields X-IMAPbase,
// X-IMAP, X-UID, Status, X-Status, X-Keywords in any shape, pseudo
// messages, broken From_ lines). mbox_fuzz.cpp covers the parser and the
// quoting; this one the state in the header fields and the rewrites.
// Checks, for arbitrary bytes:
//  - SELECT succeeds; every message reads back with exactly its
//    RFC822.SIZE (CRLF-counted) and without any of the hidden fields;
//  - UIDs ascend and are below UIDNEXT;
//  - a STORE rewrites the file without changing any message's bytes, UID
//    or count, and another session sees the same;
//  - POP3 (MboxFolder) over the same file sees the same messages and sizes;
//  - EXPUNGE of the first message leaves the others and their UIDs.
//
// Speed (it had 927 executions in its 16 s of CI, mostly waiting): runs in
// a private temporary directory on tmpfs (/dev/shm) when there is one,
// with the rewrites' fsync calls skipped (a NoSyncFs: the durability of a
// rewrite is mbox_store_test.cpp's business); without inotify (each
// selected mailbox opens an inotify instance, and closing one waits for a
// kernel SRCU grace period, 10-30 ms of wall time on a busy machine, three
// per input; the store works without it, and change notification is not
// what this target checks); inputs capped at kMaxInput (the invariants
// are about the shape of header fields and pseudo messages, which small
// files show, and every octet is parsed seven times per input).
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include "base/fs.hpp"
#include "store/folder.hpp"
#include "store/fs_ops.hpp"
#include "store/mbox_folder.hpp"
#include "store/mbox_store.hpp"

namespace {

using namespace yubin;
using namespace yubin::store;

constexpr size_t kMaxInput = 4096;

// Plain arrays: nothing to destroy before removeDir() runs at exit.
const char* dir() {
  static char shm[] = "/dev/shm/yubin-mbox-store-fuzz-XXXXXX";
  static char tmp[] = "/tmp/yubin-mbox-store-fuzz-XXXXXX";
  static const char* d = ::mkdtemp(shm) ? shm : ::mkdtemp(tmp);
  if (!d) abort();
  return d;
}

// Removes the directory when the fuzzer exits normally (a crash keeps it
// for a look).
void removeDir() {
  std::error_code ec;
  std::filesystem::remove_all(dir(), ec);
}

}  // namespace

// Replaces the C library's inotify_init1 for the whole target (the store
// is linked in statically): inotify is "not available".
extern "C" int inotify_init1(int) noexcept {
  errno = ENOSYS;
  return -1;
}

namespace {

// The real calls, without fsync.
class NoSyncFs : public Fs {
 public:
  int fsync(int) override { return 0; }
};

std::string readAll(ImapMailbox& mb, size_t i) {
  auto r = mb.open(i);
  if (!r) abort();
  std::string out;
  for (;;) {
    auto n = (*r)->read(out, 4096);
    if (!n) abort();
    if (*n == 0) break;
  }
  return out;
}

struct Seen {
  std::vector<uint32_t> uids;
  std::vector<std::string> bodies;
};

Seen look(ImapMailbox& mb) {
  Seen s;
  uint32_t prev = 0;
  for (size_t i = 0; i < mb.messages().size(); ++i) {
    const MessageInfo& m = mb.messages()[i];
    if (m.uid <= prev || m.uid >= mb.uidNext()) abort();
    prev = m.uid;
    std::string body = readAll(mb, i);
    if (crlfSize(body) != m.size) abort();
    if (mboxVisible(body) != body) abort();
    s.uids.push_back(m.uid);
    s.bodies.push_back(std::move(body));
  }
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) return 0;
  static NoSyncFs fs;
  [[maybe_unused]] static const bool cleanup = std::atexit(removeDir) == 0;
  const std::string inbox = std::string(dir()) + "/inbox";
  if (!atomicWrite(inbox, std::string_view(reinterpret_cast<const char*>(data), size), 0600))
    abort();
  MboxStoreSettings st;
  st.inbox = inbox;
  st.folderRoot = std::string(dir()) + "/folders";
  st.createDefaults = false;
  st.lock.dotLock = DotLock::Off;
  st.fs = &fs;
  auto store = openMboxStore(st);
  if (!store) abort();
  auto mb = (*store)->select("INBOX", false);
  if (!mb) abort();
  Seen before = look(**mb);

  std::vector<size_t> all;
  for (size_t i = 0; i < before.uids.size(); ++i) all.push_back(i);
  if (!(*mb)->setFlags(all, FlagOp::Add, {kFlagSeen | kFlagFlagged, {"$Fuzz"}})) abort();
  auto other = openMboxStore(st);
  if (!other) abort();
  auto mb2 = (*other)->select("INBOX", true);
  if (!mb2) abort();
  Seen after = look(**mb2);
  if (after.uids != before.uids || after.bodies != before.bodies) abort();
  for (const auto& m : (*mb2)->messages())
    if (!(m.flags.system & kFlagFlagged)) abort();

  auto pop = MboxFolder::open(inbox, st.lock);
  if (!pop) abort();
  if ((*pop)->messages().size() != before.uids.size()) abort();
  for (size_t i = 0; i < before.uids.size(); ++i)
    if ((*pop)->messages()[i].size != crlfSize(before.bodies[i])) abort();

  if (!before.uids.empty()) {
    if (!(*mb)->expunge({0})) abort();
    auto mb3 = (*other)->select("INBOX", true);
    if (!mb3) abort();
    Seen rest = look(**mb3);
    if (rest.uids != std::vector<uint32_t>(before.uids.begin() + 1, before.uids.end())) abort();
    if (rest.bodies != std::vector<std::string>(before.bodies.begin() + 1, before.bodies.end()))
      abort();
  }
  return 0;
}
