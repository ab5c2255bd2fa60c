"""The integration harness: real binaries, throw-away instances, loopback only.

Run by meson (`meson test --suite integration`) with YUBIN_BUILD_DIR set to
the build root, or by hand:

    YUBIN_BUILD_DIR=build /usr/bin/python3 -m pytest -q -n auto tests/integration

Fixtures (function-scoped unless said otherwise):

  build_dir      Path of the meson build root (session).
  binary(rel)    Path of a built program, e.g. binary('master/yubin-master');
                 skips the test when it is not built.
  free_port()    A free loopback TCP port; unique among all tests running at
                 the same time (xdist workers included).
  instance       An Instance: a private folder with a yubin.conf written from
                 a dict, helpers to start yubin-master in the foreground, run
                 yubinctl, read the status; torn down (master stopped,
                 leftovers killed, folder removed) after the test.
  testd          Path of yubin-testd (the test daemon), or skip.
  system_user    (root only) a fresh system user + group, removed afterwards.

Helpers: wait_for(predicate, timeout, what), tcp_line(port or unix path),
read_line(sock), unix_connect(path), config_text(dict), is_root().
Daemons run alone, without the master: standalone.py.
No fixed sleeps: everything waits for a condition with a deadline.
"""

import grp
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# One lock folder per user: tests of one user share it; users do not mix.
PORT_LOCK_DIR = Path(tempfile.gettempdir()) / f'yubin-test-ports-{os.getuid()}'


def is_root():
    return os.geteuid() == 0


def wait_for(predicate, timeout=10.0, what='condition', interval=0.02):
    """Polls predicate() until it returns a true value (which is returned),
    or fails the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # the condition may raise while not ready
            last_exc = exc
        if time.monotonic() >= deadline:
            detail = f' (last error: {last_exc!r})' if last_exc else ''
            pytest.fail(f'timed out after {timeout}s waiting for {what}{detail}')
        time.sleep(interval)


def read_line(sock):
    """Reads from a connected socket until a line feed or the end of the
    stream; returns the first line without its CRLF, decoded ('' when the
    peer closed before sending anything)."""
    data = b''
    while b'\n' not in data:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.split(b'\n', 1)[0].rstrip(b'\r').decode('utf-8', 'replace')


def unix_connect(path, timeout=5.0):
    """A stream socket connected to the Unix socket at path."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        s.connect(str(path))
    except OSError:
        s.close()
        raise
    return s


def tcp_line(port, host='127.0.0.1', timeout=5.0):
    """Connects, returns the first line the server sends (without CRLF).
    port may also be the path of a Unix socket."""
    if isinstance(port, (str, Path)):
        s = unix_connect(port, timeout)
    else:
        s = socket.create_connection((host, port), timeout=timeout)
    with s:
        return read_line(s)


def config_text(sections):
    """{'global': {'domains': ['a', 'b']}, 'mtad': {...}} -> yubin.conf text.
    Values: str, int, bool (yes/no) or list (comma-separated). A section
    whose value is None is left out."""
    lines = ['version = 1']
    for name, keys in sections.items():
        if keys is None:
            continue
        lines.append(f'[{name}]')
        for key, value in keys.items():
            if value is None:
                continue
            if isinstance(value, bool):
                value = 'yes' if value else 'no'
            elif isinstance(value, (list, tuple)):
                value = ', '.join(str(v) for v in value)
            lines.append(f'{key} = {value}')
    return '\n'.join(lines) + '\n'


def _reachable_by_all(path):
    """True when every folder above `path` lets any user through (o+x)."""
    for d in Path(path).resolve().parents:
        if not os.stat(d).st_mode & 0o001:
            return False
    return True


def public_copy(path):
    """A path to the program `path` that any user can execute. A clone made
    in `mktemp -d` (mode 0700) hides its build tree from the throw-away
    users some tests switch to, so for those the program is copied once
    into a 0755 folder under the temp dir (per source path and mtime; the
    copy is renamed into place, so parallel workers never see half a file)."""
    path = Path(path).resolve()
    if _reachable_by_all(path):
        return path
    st = os.stat(path)
    key = uuid.uuid5(uuid.NAMESPACE_URL, f'{path}:{st.st_mtime_ns}:{st.st_size}').hex[:16]
    folder = Path(tempfile.gettempdir()) / f'yubin-test-bin-{os.getuid()}' / key
    target = folder / path.name
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder.parent, 0o755)
        os.chmod(folder, 0o755)
        tmp = folder / f'.{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}'
        shutil.copy2(path, tmp)
        os.chmod(tmp, 0o755)
        os.replace(tmp, target)
    return target


def _group_exists(name):
    try:
        grp.getgrnam(name)
        return True
    except KeyError:
        return False


@pytest.fixture(scope='session')
def build_dir():
    d = os.environ.get('YUBIN_BUILD_DIR')
    path = Path(d) if d else REPO / 'build'
    if not path.is_dir():
        pytest.skip(f'no build dir at {path}; set YUBIN_BUILD_DIR')
    return path.resolve()


@pytest.fixture(scope='session')
def binary(build_dir):
    def find(rel):
        p = build_dir / rel
        if not p.exists():
            pytest.skip(f'{rel} is not built')
        return p
    return find


def reserve_port():
    """A free loopback TCP port, reserved by a lock file in PORT_LOCK_DIR
    that keeps two concurrent tests from getting the same one between our
    probe and the program's bind. The caller removes the lock
    (release_port) when done; free_port does that for a test."""
    PORT_LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        try:
            fd = os.open(PORT_LOCK_DIR / str(port), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            continue
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        return port
    pytest.fail('no free port found')


def release_port(port):
    try:
        (PORT_LOCK_DIR / str(port)).unlink()
    except FileNotFoundError:
        pass


@pytest.fixture
def free_port():
    """Returns a function giving a new free loopback port on each call
    (reserve_port), released after the test."""
    held = []

    def get():
        held.append(reserve_port())
        return held[-1]

    yield get
    for port in held:
        release_port(port)


@pytest.fixture(scope='session')
def testd(build_dir):
    override = os.environ.get('YUBIN_TESTD')
    p = Path(override) if override else build_dir / 'tests/testd/yubin-testd'
    if not p.exists():
        pytest.skip('yubin-testd is not built')
    return p


class Instance:
    """One throw-away Yubin installation in a private folder.

    inst.config is a dict of sections (see config_text); the defaults put
    every path inside the folder. Change it, then inst.write_config()."""

    def __init__(self, root, build_dir):
        self.dir = Path(root)
        self.build_dir = build_dir
        self.conf = self.dir / 'yubin.conf'
        self.program_dir = self.dir / 'libexec'
        self.run_dir = self.dir / 'run'
        self.log_path = self.dir / 'master.log'
        for sub in ('libexec', 'run', 'spool', 'state', 'mail', 'etc'):
            (self.dir / sub).mkdir(mode=0o755)
        self.config = {
            'global': {
                'domains': ['example.org'],
                'hostname': 'mx.example.org',
                'users_file': str(self.dir / 'etc/users'),
                'aliases_file': str(self.dir / 'etc/aliases'),
                'mail_root': str(self.dir / 'mail'),
                'spool_dir': str(self.dir / 'spool'),
                'state_dir': str(self.dir / 'state'),
                'log': 'stderr',
                'log_level': 'debug',
            },
            'master': {
                'control_socket': str(self.run_dir / 'control'),
                'pid_file': str(self.run_dir / 'master.pid'),
                'program_dir': str(self.program_dir),
                'stop_timeout': '5s',
                'restart_delay_max': '4s',
            },
        }
        self.master = None
        self._log_file = None
        self._pgids = set()
        self.seen_pids = set()

    # -- files ------------------------------------------------------------

    def write_config(self, sections=None, text=None):
        """Writes yubin.conf from self.config (updated with `sections`), or
        the raw `text`. Readable by everyone, like /etc/yubin/yubin.conf,
        so daemons and tests running as other users can read it."""
        if sections:
            for name, keys in sections.items():
                if keys is None:
                    self.config.pop(name, None)
                else:
                    self.config.setdefault(name, {}).update(keys)
        self.conf.write_text(text if text is not None else config_text(self.config))
        self.conf.chmod(0o644)
        return self.conf

    def link_daemon(self, name, program):
        """Makes `program` the daemon of section `name` (program_dir/name)."""
        link = self.program_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(program)

    def run_as(self):
        """The user and group a daemon should run as here: when root, an
        unprivileged account that exists on every Debian system; otherwise
        None (dev mode keeps the invoking user)."""
        if not is_root():
            return None
        group = 'nogroup' if _group_exists('nogroup') else 'nobody'
        return ('nobody', group)

    def add_testd(self, testd, port=None, section='mtad', user=None, unix_socket=None):
        """Configures yubin-testd as the daemon of `section`: on TCP
        127.0.0.1:port (key `listen`), or on the Unix socket path
        `unix_socket` (key `lmtp_socket`, for [mdad]); as `user` and its
        group when given, else run_as(). Returns the section's keys."""
        self.link_daemon(section, testd)
        keys = {}
        if port is not None:
            keys['listen'] = f'127.0.0.1:{port}'
        if unix_socket is not None:
            keys['lmtp_socket'] = str(unix_socket)
        who = (user, user) if user else self.run_as()
        if who:
            keys['user'], keys['group'] = who
        self.write_config({section: keys})
        return keys

    def master_log(self):
        return self.log_path.read_text(errors='replace') if self.log_path.exists() else ''

    # -- programs ---------------------------------------------------------

    @property
    def master_bin(self):
        return self.build_dir / 'master/yubin-master'

    @property
    def ctl_bin(self):
        return self.build_dir / 'ctl/yubinctl'

    def start_master(self, *extra, wait=True, timeout=15):
        """Starts yubin-master -f in its own session, logging to
        master.log; with wait, returns once `yubinctl status` answers."""
        assert self.master is None or self.master.poll() is not None
        if not self.conf.exists():
            self.write_config()
        self._log_file = open(self.log_path, 'ab')
        self.master = subprocess.Popen(
            [str(self.master_bin), '-f', '-c', str(self.conf), *extra],
            stdin=subprocess.DEVNULL, stdout=self._log_file, stderr=subprocess.STDOUT,
            start_new_session=True)
        self._pgids.add(self.master.pid)
        if wait:
            self.wait_ready(timeout)
        return self.master

    def wait_ready(self, timeout=15):
        def ready():
            if self.master is not None and self.master.poll() is not None:
                pytest.fail(f'yubin-master exited with {self.master.returncode}:\n'
                            + self.master_log())
            return self.ctl('status', '--json').returncode == 0
        wait_for(ready, timeout, 'yubin-master to answer status')

    def ctl(self, *args, user=None, input=None, env=None, timeout=60):
        """Runs yubinctl -c <conf> args...; returns CompletedProcess (text).
        user: a user name to run as (needs root)."""
        ctl = self.ctl_bin if user is None else public_copy(self.ctl_bin)
        cmd = [str(ctl), '-c', str(self.conf), *args]
        full_env = dict(os.environ)
        full_env['YUBIN_MASTER'] = str(self.master_bin)
        if env:
            full_env.update(env)
        preexec = None
        if user is not None:
            pw = pwd.getpwnam(user)

            def preexec():
                os.setgroups([])
                os.setgid(pw.pw_gid)
                os.setuid(pw.pw_uid)
        return subprocess.run(cmd, input=input, capture_output=True, text=True,
                              env=full_env, preexec_fn=preexec, timeout=timeout)

    def status(self):
        """`yubinctl status --json`, parsed."""
        r = self.ctl('status', '--json')
        assert r.returncode == 0, r.stderr
        st = json.loads(r.stdout)
        for d in st['daemons']:
            if d.get('pid'):
                self.seen_pids.add(d['pid'])
        return st

    def daemon(self, name):
        """The status entry of daemon `name` (None when absent)."""
        for d in self.status()['daemons']:
            if d['name'] == name:
                return d
        return None

    def wait_daemon(self, name, timeout=15, not_pid=None, responding=True):
        """Waits until daemon `name` runs (with a pid other than not_pid)
        and, with responding, answers status requests; returns its entry."""
        def ok():
            d = self.daemon(name)
            if not d or d['state'] != 'running' or not d['pid'] or d['pid'] == not_pid:
                return None
            if responding and not d['responding']:
                return None
            return d
        return wait_for(ok, timeout, f'{name} to run')

    def stop_master(self, timeout=30):
        """Stops the master with SIGTERM; returns its exit status."""
        if self.master is None or self.master.poll() is not None:
            return None if self.master is None else self.master.returncode
        self.master.send_signal(signal.SIGTERM)
        try:
            return self.master.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def teardown(self):
        self.stop_master()
        # Whatever survived (a daemon the master lost, a master started by
        # `yubinctl start`): killed by process group and by pid.
        pid_file = self.run_dir / 'master.pid'
        if pid_file.exists():
            try:
                pid = int(pid_file.read_text().strip())
                self._pgids.add(os.getpgid(pid))
                self.seen_pids.add(pid)
            except (ValueError, ProcessLookupError):
                pass
        for pgid in self._pgids:
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in self.seen_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.master is not None:
            try:
                self.master.wait(5)
            except subprocess.TimeoutExpired:
                pass
        if self._log_file:
            self._log_file.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, 'rep_' + rep.when, rep)


@pytest.fixture
def instance(build_dir, request):
    # A folder everyone may traverse (daemons drop privileges; some tests
    # run yubinctl as another user); the name is unique per test.
    root = tempfile.mkdtemp(prefix='yubin-it-')
    os.chmod(root, 0o755)
    inst = Instance(root, build_dir)
    yield inst
    inst.teardown()
    failed = getattr(request.node, 'rep_call', None) is not None and request.node.rep_call.failed
    if failed:
        print(f'--- master.log ({root}) ---\n' + inst.master_log())
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def system_user():
    """A fresh system user with its own group (root only); removed after."""
    if not is_root():
        pytest.skip('needs root')
    if not shutil.which('useradd'):
        pytest.skip('no useradd')
    name = 'yit' + uuid.uuid4().hex[:10]
    subprocess.run(['useradd', '--system', '--user-group', '--no-create-home',
                    '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name],
                   check=True, capture_output=True)
    try:
        yield name
    finally:
        # --force: a daemon fixture set up before this one may still run
        # as the user (teardown is in reverse order); plain userdel then
        # refuses and the user would stay on the machine.
        subprocess.run(['userdel', '--force', name], capture_output=True)
        subprocess.run(['groupdel', name], capture_output=True)
