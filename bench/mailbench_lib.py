"""Shared by bench/pop3 and bench/imap: a private Dovecot instance (POP3 or
IMAP, Debian's defaults or its documented high-performance mode) beside a
private mrad, the processes the scripts start, and what they cost (CPU and
RSS/PSS summed over a process group).

Trust: a benchmark helper run as root on a test machine; it listens on
127.0.0.1 only and stops whatever it started (process groups), also on
failure. Protocols measured: POP3 (RFC 1939), IMAP (RFC 3501/9051).
"""

import os
import pwd
import grp
import shutil
import signal
import socket
import statistics
import subprocess
import time
from pathlib import Path

DOMAIN = 'example.org'


class Fail(Exception):
    pass


def log(msg=''):
    print(msg, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise Fail(f'timed out waiting for {what}')


def on_signal(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def trap_signals():
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, on_signal)


def ignore_signals():
    """During cleanup: a second Ctrl-C must not cut it short."""
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)


# --- processes: CPU and memory of a process group ---------------------------------------

def _stat_fields(pid):
    stat = Path(f'/proc/{pid}/stat').read_text()
    return stat[stat.rindex(')') + 2:].split()


def group_pids(pgid):
    out = []
    for d in Path('/proc').iterdir():
        if not d.name.isdigit():
            continue
        try:
            if int(_stat_fields(d.name)[2]) == pgid:
                out.append(int(d.name))
        except (OSError, ValueError, IndexError):
            continue
    return out


def group_cpu(pgid):
    """User + system CPU seconds of the processes in group pgid, children
    they reaped included (Dovecot's login processes that exited)."""
    ticks = 0
    for pid in group_pids(pgid):
        try:
            f = _stat_fields(pid)
        except OSError:
            continue
        ticks += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return ticks / os.sysconf('SC_CLK_TCK')


def group_memory(pgid):
    """(processes, RSS KiB, PSS KiB) summed over group pgid."""
    n = rss = pss = 0
    for pid in group_pids(pgid):
        try:
            for line in open(f'/proc/{pid}/smaps_rollup'):
                if line.startswith('Rss:'):
                    rss += int(line.split()[1])
                elif line.startswith('Pss:'):
                    pss += int(line.split()[1])
            n += 1
        except OSError:
            continue
    return n, rss, pss


def settle_memory(pgid, wait=1.0):
    """group_memory once the figures stop moving (sessions being set up in
    the server), at most a few seconds."""
    time.sleep(wait)
    last = group_memory(pgid)
    for _ in range(20):
        time.sleep(0.25)
        cur = group_memory(pgid)
        if cur == last:
            return cur
        last = cur
    return last


class Procs:
    """Every process the script starts, each in its own session, so that a
    kill of its process group reaches its children too."""

    def __init__(self):
        self.procs = []

    def start(self, argv, logfile, **kw):
        with open(logfile, 'ab') as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, start_new_session=True, **kw)
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p, timeout=10):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                pass
        try:  # the group may outlive its leader (Dovecot's children)
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            pass

    def stop_all(self):
        for p in reversed(self.procs):
            self.stop(p)
        self.procs.clear()


# --- Dovecot ------------------------------------------------------------------------------

def ensure_dovecot(protocol):
    """Installs dovecot-core and dovecot-<protocol>d when missing, keeping
    the package scripts from starting the system's Dovecot."""
    pkg = f'dovecot-{protocol}d'
    if shutil.which('dovecot') and Path(f'/usr/lib/dovecot/{protocol}').exists():
        return
    if os.geteuid() != 0:
        raise Fail(f'Dovecot is missing: install dovecot-core and {pkg} (needs root)')
    log(f'installing dovecot-core {pkg} (the system service is not started here)')
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    prc = Path('/usr/sbin/policy-rc.d')
    ours = not prc.exists()
    if ours:  # exit 101: invoke-rc.d starts nothing
        prc.write_text('#!/bin/sh\nexit 101\n')
        prc.chmod(0o755)
    try:
        cmd = ['apt-get', 'install', '-y', '--no-install-recommends', 'dovecot-core', pkg]
        if subprocess.run(cmd, env=env).returncode != 0:
            subprocess.run(['apt-get', 'update'], env=env)
            if subprocess.run(cmd, env=env).returncode != 0:
                raise Fail(f'apt-get install dovecot-core {pkg} failed')
    finally:
        if ours:
            prc.unlink()


def dovecot_version():
    r = subprocess.run(['dovecot', '--version'], capture_output=True, text=True)
    return r.stdout.strip() or '?'


HP_NOTE = ('high-performance mode: login processes serve many connections '
           '(service_count = 0, process_min_avail = CPUs, vsz_limit = 1G) and mail '
           'processes are reused (service_count = 0, process_min_avail = CPUs); '
           'successful logins cached (auth_cache_size = 10M, auth_cache_ttl = 1 hour, as '
           'Yubin\'s auth_cache does by default)')


class Dovecot:
    """A private Dovecot for one protocol ('pop3' or 'imap') on 127.0.0.1:
    its own base_dir, state_dir and log, a passwd-file passdb/userdb (the
    same Argon2id hashes as Yubin's users file when given), Maildirs under
    `mail` (mail/<domain>/<user>/Maildir, mdad's layout). With hp, the
    documented high-performance mode; with tls (cert, key), an implicit-TLS
    listener too (port `sport`)."""

    def __init__(self, top, procs, protocol, hp=False, who=None, tls=None, mail=None,
                 sessions=2000):
        self.protocol = protocol
        self.hp = hp
        self.name = 'Dovecot-hp' if hp else 'Dovecot'
        self.dir = Path(top) / ('dovecot-hp' if hp else 'dovecot')
        self.procs = procs
        self.port = free_port()
        self.sport = free_port() if tls else 0
        self.conf = self.dir / 'dovecot.conf'
        self.mail = Path(mail) if mail else self.dir / 'mail'
        self.users = self.dir / 'users'
        self.proc = None
        for sub in ('run', 'state'):
            (self.dir / sub).mkdir(parents=True, mode=0o755)
        self.mail.mkdir(parents=True, exist_ok=True, mode=0o755)
        if who:
            pw = pwd.getpwnam(who[0])
            self.uid, self.gid = pw.pw_uid, grp.getgrnam(who[1]).gr_gid
            internal, group, login = 'dovecot', 'dovecot', 'dovenull'
        else:
            self.uid, self.gid = os.getuid(), os.getgid()
            internal = login = pwd.getpwuid(os.getuid()).pw_name
            group = grp.getgrgid(self.gid).gr_name
        self.users.write_text('')
        self.users.chmod(0o644)
        cpus = os.cpu_count() or 2
        login_hp = (f'  service_count = 0\n  process_min_avail = {cpus}\n  vsz_limit = 1G\n'
                    if hp else '')
        mail_hp = f'  service_count = 0\n  process_min_avail = {cpus}\n' if hp else ''
        # Dovecot's own tuning advice; its default is no cache (auth_cache_size = 0).
        auth_cache = 'auth_cache_size = 10M\nauth_cache_ttl = 1 hour\n' if hp else ''
        ssl = 'no'
        ssl_lines = ''
        listeners = (f'  inet_listener {protocol} {{\n    address = 127.0.0.1\n'
                     f'    port = {self.port}\n  }}\n')
        if tls:
            ssl = 'yes'
            ssl_lines = f'ssl_cert = <{tls[0]}\nssl_key = <{tls[1]}\n'
            if Path('/usr/share/dovecot/dh.pem').exists():
                ssl_lines += 'ssl_dh = </usr/share/dovecot/dh.pem\n'
            listeners += (f'  inet_listener {protocol}s {{\n    address = 127.0.0.1\n'
                          f'    port = {self.sport}\n    ssl = yes\n  }}\n')
        else:
            listeners += f'  inet_listener {protocol}s {{\n    port = 0\n  }}\n'
        # Not root: no chroot for anvil and the login processes.
        extra = '' if who else ('service anvil {\n  chroot =\n}\n'
                                f'service {protocol}-login {{\n  chroot =\n}}\n')
        self.conf.write_text(f'''# private Dovecot instance of bench/{protocol}
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = yubin-bench-{protocol}-{self.dir.name}-{os.getpid()}
protocols = {protocol}
listen = 127.0.0.1
ssl = {ssl}
{ssl_lines}disable_plaintext_auth = no
auth_mechanisms = plain login
default_internal_user = {internal}
default_internal_group = {group}
default_login_user = {login}
default_process_limit = {sessions + 100}
default_client_limit = {2 * sessions + 200}
default_vsz_limit = 1G
mail_max_userip_connections = {sessions + 100}
log_path = {self.dir}/dovecot.log
info_log_path = {self.dir}/dovecot.log
first_valid_uid = 1
mail_location = maildir:{self.mail}/%d/%n/Maildir
{auth_cache}passdb {{
  driver = passwd-file
  args = {self.users}
}}
userdb {{
  driver = passwd-file
  args = {self.users}
  default_fields = uid={self.uid} gid={self.gid} home={self.mail}/%d/%n
}}
service {protocol}-login {{
{listeners}{login_hp}}}
service {protocol} {{
{mail_hp}}}
{extra}''')

    def note(self):
        return HP_NOTE if self.hp else 'defaults: one login process per connection, one mail process per session'

    def add_user(self, address, hashed=None, password=None):
        """A user with Yubin's Argon2id string (verified by Dovecot with the
        same libsodium call) or a plain password."""
        secret = '{ARGON2ID}' + hashed if hashed else '{PLAIN}' + password
        with open(self.users, 'a') as f:
            f.write(f'{address}:{secret}::::::\n')

    def maildir(self, local):
        return self.mail / DOMAIN / local / 'Maildir'

    def start(self, ready):
        self.proc = self.procs.start(['dovecot', '-F', '-c', str(self.conf)],
                                     self.dir / 'dovecot.out')

        def up():
            if self.proc.poll() is not None:
                raise Fail(f'dovecot exited with {self.proc.returncode}; see {self.dir}/dovecot.log'
                           f' and dovecot.out')
            return ready(self.port)
        wait_for(up, 30, f'{self.name} to serve {self.protocol}')
        self.pgid = self.proc.pid
        if self.hp:  # the prespawned processes
            time.sleep(1)

    def restart(self, ready):
        self.stop()
        self.start(ready)

    def stop(self):
        if self.proc:
            if self.proc.poll() is None:
                subprocess.run(['doveadm', '-c', str(self.conf), 'stop'],
                               capture_output=True, timeout=30)
                try:
                    self.proc.wait(15)
                except subprocess.TimeoutExpired:
                    pass
            Procs.stop(self.proc)
            self.proc = None


def yubin_hashes(users_file):
    """address -> Argon2id string from Yubin's users file."""
    out = {}
    for line in Path(users_file).read_text().splitlines():
        if not line or line.startswith('#') or ':' not in line:
            continue
        addr, rest = line.split(':', 1)
        h = rest.split(':', 1)[0]
        if h.startswith('$argon2'):
            out[addr.lower()] = h
    return out


def link_tree(src, dst, uid=None, gid=None):
    """A copy of the Maildir tree src at dst whose files are hard links (the
    servers only rename and unlink message files, never rewrite them), the
    folders owned by uid:gid."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(['cp', '-al', str(src), str(dst)], check=True)
    if uid is not None:
        for d, dirs, files in os.walk(dst):
            os.chown(d, uid, gid)
            for f in files:
                os.chown(os.path.join(d, f), uid, gid)


# --- figures --------------------------------------------------------------------------------

def fmt_cell(values, digits=0):
    med = statistics.median(values)
    if len(values) == 1:
        return f'{med:.{digits}f}'
    return f'{med:.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})'


def median_ratio(a, b):
    """Median of the ratios within each round (figures taken seconds apart)."""
    rs = [x / y for x, y in zip(a, b) if y]
    return statistics.median(rs) if rs else float('nan')


def machine_line():
    load = ' '.join(f'{x:.2f}' for x in os.getloadavg())
    return (f'{time.strftime("%Y-%m-%d %H:%M:%S %Z")}  host {socket.gethostname()}  '
            f'cpus {os.cpu_count()}  load average {load}')


def git_head(paths=('mrad', 'libcommon')):
    here = Path(__file__).resolve().parent
    r = subprocess.run(['git', '-C', str(here), 'log', '-1', '--format=%h %cs'],
                       capture_output=True, text=True)
    head = r.stdout.strip() or '?'
    r = subprocess.run(['git', '-C', str(here.parent), 'status', '--porcelain', '--', *paths],
                       capture_output=True, text=True)
    if r.stdout.strip():
        head += ' + uncommitted changes in ' + ', '.join(
            sorted({ln[3:].rsplit('/', 1)[0] for ln in r.stdout.splitlines()}))
    return head


def built_at(path):
    return time.strftime('%Y-%m-%d %H:%M', time.localtime(os.stat(path).st_mtime))
