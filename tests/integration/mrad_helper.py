"""Helpers for the mrad integration tests: an instance with users (real
Argon2 passwords through `yubinctl user add`), Maildir and mbox mailboxes
written the way mdad writes them, and mrad run alone (`mrad -f -c CONF`,
binding its ports itself) or under yubin-master.

As root the login process runs as a fresh system user (it must not own
the mail) and the mail process as nobody, who owns the mail root."""

import os
import pwd
import socket
import ssl
import subprocess
import time

from conftest import wait_for
from standalone import Daemon

PASSWORD = 'correct horse'


def crlf(data):
    """LF -> CRLF, as a POP3 client receives a message."""
    return data.replace(b'\r\n', b'\n').replace(b'\n', b'\r\n')


class Pop3Setup:
    def __init__(self, inst, binary, free_port, login_user=None, users=None, **keys):
        self.inst = inst
        self.exe = binary('mrad/mrad')
        self.mail = inst.dir / 'mail'
        self.port = free_port()
        self.sport = free_port()
        self.daemon = Daemon(inst, self.exe, 'mrad', self._answers, timeout=20)
        cert, key = inst.dir / 'etc/cert.pem', inst.dir / 'etc/key.pem'
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
                        '-subj', '/CN=localhost', '-keyout', str(key), '-out', str(cert)],
                       check=True, capture_output=True)
        os.chmod(key, 0o600)
        inst.write_config({'global': {'tls_cert': str(cert), 'tls_key': str(key)}})
        self.keys = {'pop3_listen': f'127.0.0.1:{self.port}',
                     'pop3s_listen': f'127.0.0.1:{self.sport}',
                     # No IMAP unless asked for (imap_helper.ImapSetup): the
                     # defaults would bind 143 and 993 on every address.
                     'imap_listen': '', 'imaps_listen': '',
                     'lock_timeout': '2s'}
        self.keys.update(keys)
        self.mail_uid = self.mail_gid = None
        who = inst.run_as()
        if who:
            pw = pwd.getpwnam(who[0])
            self.mail_uid, self.mail_gid = pw.pw_uid, pw.pw_gid
            self.keys['mail_user'], self.keys['mail_group'] = who
            lu = login_user or who[0]
            self.keys['user'] = self.keys['group'] = lu
            self.login_uid = pwd.getpwnam(lu).pw_uid
            os.chown(self.mail, self.mail_uid, self.mail_gid)
            os.chmod(self.mail, 0o700)
        (inst.dir / 'etc/users').write_text('')
        (inst.dir / 'etc/aliases').write_text('')
        inst.write_config({'mrad': dict(self.keys)})
        for name, fmt in (users or {'bob': 'maildir', 'carol': 'mbox'}).items():
            r = inst.ctl('user', 'add', f'{name}@example.org', '--format', fmt,
                         input=PASSWORD + '\n')
            assert r.returncode == 0, r.stderr
        for f in ('users', 'aliases'):
            os.chmod(inst.dir / 'etc' / f, 0o644)

    def write(self, **extra):
        self.keys.update(extra)
        self.inst.write_config({'mrad': dict(self.keys)})

    # -- mailboxes ------------------------------------------------------------

    def _own(self, path):
        if self.mail_uid is not None:
            os.chown(path, self.mail_uid, self.mail_gid)

    def maildir(self, user):
        return self.mail / 'example.org' / user / 'Maildir'

    def add_maildir(self, user, data, n=[0]):
        """Writes a message as mdad does (LF line ends, ,S= in the name)."""
        root = self.maildir(user)
        for p in (root.parent.parent, root.parent, root, root / 'new', root / 'cur', root / 'tmp'):
            if not p.exists():
                p.mkdir(mode=0o700)
                self._own(p)
        n[0] += 1
        name = f'{int(time.time())}.M{n[0]:06d}P{os.getpid()}Q{n[0]}.test,S={len(data)}'
        # In tmp/ first, then renamed into new/ whole, as a deliverer does:
        # a session watching new/ may move the file to cur/ at once.
        tmp = root / 'tmp' / name
        tmp.write_bytes(data)
        os.chmod(tmp, 0o600)
        self._own(tmp)
        os.rename(tmp, root / 'new' / name)
        return name

    def maildir_files(self, user):
        root = self.maildir(user)
        return {sub: sorted(os.listdir(root / sub)) if (root / sub).exists() else []
                for sub in ('new', 'cur')}

    def mbox_path(self, user):
        return self.mail / 'example.org' / f'{user}.mbox'

    def add_mbox(self, user, data, sender='alice@example.net'):
        p = self.mbox_path(user)
        if not p.parent.exists():
            p.parent.mkdir(mode=0o700)
            self._own(p.parent)
        quoted = b''.join((b'>' + ln if ln.lstrip(b'>').startswith(b'From ') else ln)
                          for ln in data.splitlines(keepends=True))
        with open(p, 'ab') as f:
            f.write(b'From ' + sender.encode() + b' Thu Jan  1 00:00:00 1970\n' + quoted + b'\n')
        os.chmod(p, 0o600)
        self._own(p)

    # -- the daemon -------------------------------------------------------------

    def start(self):
        self.daemon.start()
        wait_for(lambda: self.mail_pid(), 10, 'the mail process')
        return self

    def _answers(self):
        with socket.create_connection(('127.0.0.1', self.port), timeout=5) as s:
            return s.recv(100).startswith(b'+OK')

    @property
    def proc(self):
        return self.daemon.proc

    def mail_pid(self):
        """Pid of the mail process (the child of the login process)."""
        try:
            kids = open(f'/proc/{self.proc.pid}/task/{self.proc.pid}/children').read().split()
        except OSError:
            return None
        for k in kids:
            self.inst.seen_pids.add(int(k))
        return int(kids[0]) if kids else None

    def stop(self):
        self.daemon.stop()

    def log(self):
        return self.daemon.log()

    def tls_context(self):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return ctx


def uids_of(pid):
    """(real, effective, saved, fs) uids and gids of a process."""
    out = {}
    for line in open(f'/proc/{pid}/status'):
        key, _, value = line.partition(':')
        if key in ('Uid', 'Gid'):
            out[key] = [int(v) for v in value.split()]
    return out


def can_open_as(uid, gid, path, groups=()):
    """Whether a process with these ids may open path for reading."""
    code = ('import os,sys\n'
            f'os.setgroups({list(groups)!r}); os.setgid({gid}); os.setuid({uid})\n'
            'try:\n'
            f'    os.open({str(path)!r}, os.O_RDONLY)\n'
            'except PermissionError:\n'
            '    sys.exit(3)\n')
    r = subprocess.run(['/usr/bin/python3', '-c', code], capture_output=True)
    assert r.returncode in (0, 3), r.stderr
    return r.returncode == 0
