"""Privilege checks (issue 10, item 7), as root only.

One instance runs every daemon that is built and configurable (mtad and
mdad always; mrad and msad when their binaries exist and their sections
are in the config schema) under yubin-master, each as its own fresh system
user, with [global] users_group and [master] admin_group set to fresh
groups. Then, reading /proc and probing with child processes that carry
exactly a daemon's credentials (its uid, gid and supplementary groups as
/proc/<pid>/status shows them):

  * each daemon's real, effective, saved and filesystem uid and gid are the
    configured ones, its supplementary groups are its group and
    users_group, and it holds no capability;
  * mtad's user (and msad's, and mrad's login process) cannot open, list
    or create a mailbox file, Maildir or mbox;
  * mdad's user (and mrad's processes, and msad) cannot list or write the
    queue;
  * the control socket refuses a daemon's user and admits a member of
    admin_group.

Positive controls (mdad reads the mailbox, mtad lists its queue) show the
probe really runs with the daemon's rights. The mailbox and queue folders
under the test folder are left 0755, as created, so what keeps the others
out is the modes mdad and mtad give to what they create.

Trust: a test; runs as root, only on loopback.
"""

import json
import os
import shutil
import smtplib
import stat
import subprocess
import tempfile
import uuid

import pytest

from conftest import Instance, is_root, release_port, reserve_port, wait_for

pytestmark = pytest.mark.skipif(not is_root(), reason='needs root')

PROBE = r'''
import errno, json, os, sys
out = []
for kind, path in json.loads(sys.argv[1]):
    try:
        if kind == 'read':
            os.close(os.open(path, os.O_RDONLY))
        elif kind == 'append':
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        elif kind == 'create':
            os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            os.unlink(path)
        elif kind == 'list':
            os.listdir(path)
        out.append('ok')
    except OSError as e:
        out.append(errno.errorcode.get(e.errno, str(e.errno)))
print(json.dumps(out))
'''


def proc_status(pid):
    fields = {}
    with open(f'/proc/{pid}/status') as f:
        for line in f:
            key, _, value = line.partition(':')
            fields[key] = value.strip()
    return fields


def creds(pid):
    st = proc_status(pid)
    return {
        'uid': [int(v) for v in st['Uid'].split()],
        'gid': [int(v) for v in st['Gid'].split()],
        'groups': sorted(int(v) for v in st['Groups'].split()),
        'cap_eff': int(st['CapEff'], 16),
        'cap_prm': int(st['CapPrm'], 16),
    }


def children(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            return [int(k) for k in f.read().split()]
    except OSError:
        return []


def probe(pid, ops):
    """Runs the ops as a process with exactly the credentials of `pid`;
    returns 'ok' or the errno name of each."""
    c = creds(pid)
    uid, gid, groups = c['uid'][0], c['gid'][0], c['groups']

    def drop():
        os.setgroups(groups)
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    r = subprocess.run(['/usr/bin/python3', '-c', PROBE, json.dumps([[k, str(p)] for k, p in ops])],
                       capture_output=True, text=True, preexec_fn=drop, cwd='/', timeout=60)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


class Users:
    """Fresh system users, each with its own group; removed afterwards."""

    def __init__(self):
        self.names = []

    def make(self, role):
        import pwd
        name = f'ypv{role[:3]}{uuid.uuid4().hex[:8]}'
        subprocess.run(['useradd', '--system', '--user-group', '--no-create-home',
                        '--home-dir', '/nonexistent', '--shell', '/usr/sbin/nologin', name],
                       check=True, capture_output=True)
        self.names.append(name)
        return pwd.getpwnam(name)

    def remove(self):
        for name in self.names:
            subprocess.run(['userdel', name], capture_output=True)
            subprocess.run(['groupdel', name], capture_output=True)


def schema_keys(inst):
    r = inst.ctl('check', '--keys')
    assert r.returncode == 0, r.stderr
    return {tuple(line.split('\t')[:2]) for line in r.stdout.splitlines()}


class Layout:
    """The instance, its users and the daemons that run."""

    def __init__(self, build_dir):
        self.users = Users()
        self.ports = []
        self.root = tempfile.mkdtemp(prefix='yubin-priv-')
        os.chmod(self.root, 0o755)
        self.inst = Instance(self.root, build_dir)
        self.daemons = ['mtad', 'mdad']

    def port(self):
        p = reserve_port()
        self.ports.append(p)
        return p

    def setup(self):
        inst = self.inst
        for name in ('master/yubin-master', 'ctl/yubinctl', 'mtad/mtad', 'mdad/mdad'):
            if not (inst.build_dir / name).exists():
                pytest.skip(f'{name} is not built')
        inst.write_config()
        keys = schema_keys(inst)
        for d in ('mrad', 'msad'):
            if (inst.build_dir / d / d).exists() and (d, 'user') in keys:
                self.daemons.append(d)
        if 'msad' in self.daemons and ('mtad', 'submission_socket') not in keys:
            self.daemons.remove('msad')  # no way to connect it to mtad yet

        self.mta = self.users.make('mta')
        self.mail = self.users.make('mail')
        self.admin = self.users.make('adm')
        self.ugroup = self.users.make('usr')  # its group is users_group
        etc = inst.dir / 'etc'
        (etc / 'users').write_text('bob@example.org:*:::maildir:\ncarol@example.org:*:::mbox:\n')
        (etc / 'aliases').write_text('')
        for f in ('users', 'aliases'):
            os.chown(etc / f, 0, self.ugroup.pw_gid)
            os.chmod(etc / f, 0o640)
        os.chown(inst.dir / 'spool', self.mta.pw_uid, self.mta.pw_gid)
        os.chown(inst.dir / 'mail', self.mail.pw_uid, self.mail.pw_gid)

        self.smtp_port = self.port()
        lmtp = inst.run_dir / 'lmtp'
        sections = {
            'global': {'users_group': self.ugroup.pw_name},
            'master': {'admin_group': self.admin.pw_name},
            'mtad': {'listen': f'127.0.0.1:{self.smtp_port}', 'lmtp_socket': str(lmtp),
                     'user': self.mta.pw_name, 'group': self.mta.pw_name,
                     'retry_min': '1s', 'retry_max': '2s'},
            'mdad': {'lmtp_socket': str(lmtp), 'lmtp_socket_group': self.mta.pw_name,
                     'user': self.mail.pw_name, 'group': self.mail.pw_name},
        }
        if 'mrad' in self.daemons or 'msad' in self.daemons:
            cert, key = etc / 'cert.pem', etc / 'key.pem'
            subprocess.run(['openssl', 'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
                            '-days', '2', '-subj', '/CN=localhost', '-keyout', str(key),
                            '-out', str(cert)], check=True, capture_output=True)
            os.chmod(key, 0o600)
            sections['global'].update({'tls_cert': str(cert), 'tls_key': str(key)})
        if 'mrad' in self.daemons:
            self.login = self.users.make('login')
            sections['mrad'] = {'user': self.login.pw_name, 'group': self.login.pw_name,
                                'mail_user': self.mail.pw_name, 'mail_group': self.mail.pw_name,
                                'pop3_listen': f'127.0.0.1:{self.port()}',
                                'pop3s_listen': f'127.0.0.1:{self.port()}',
                                'imap_listen': f'127.0.0.1:{self.port()}',
                                'imaps_listen': f'127.0.0.1:{self.port()}'}
        if 'msad' in self.daemons:
            self.msa = self.users.make('msa')
            sub = inst.run_dir / 'submission'
            sections['mtad'].update({'submission_socket': str(sub),
                                     'submission_socket_group': self.msa.pw_name})
            sections['msad'] = {'user': self.msa.pw_name, 'group': self.msa.pw_name,
                                'listen': f'127.0.0.1:{self.port()}',
                                'listen_tls': f'127.0.0.1:{self.port()}',
                                'mtad_socket': str(sub)}
        inst.write_config(sections)
        for d in self.daemons:
            inst.link_daemon(d, inst.build_dir / d / d)
        inst.start_master()
        self.pids = {d: inst.wait_daemon(d, timeout=30)['pid'] for d in self.daemons}
        if 'mrad' in self.daemons:
            self.mrad_mail_pid = wait_for(lambda: (children(self.pids['mrad']) or [None])[0],
                                          10, "mrad's mail process")
            inst.seen_pids.add(self.mrad_mail_pid)

        # One message to a Maildir user and an mbox user, through mtad and mdad.
        with smtplib.SMTP('127.0.0.1', self.smtp_port, timeout=30) as s:
            s.sendmail('someone@client.example.net', ['bob@example.org', 'carol@example.org'],
                       b'Subject: privileges\r\n\r\nhello\r\n')
        md = inst.dir / 'mail/example.org/bob/Maildir'
        self.maildir = md
        self.maildir_file = wait_for(lambda: next(iter(sorted((md / 'new').iterdir())), None),
                                     30, "bob's message")
        self.mbox = inst.dir / 'mail/example.org/carol.mbox'
        wait_for(lambda: self.mbox.exists() and b'hello' in self.mbox.read_bytes(), 30,
                 "carol's message")
        self.spool = inst.dir / 'spool'

    def mailbox_ops(self):
        return [('read', self.maildir_file), ('list', self.maildir / 'new'),
                ('create', self.maildir / 'new' / 'forged'), ('create', self.maildir / 'tmp' / 'x'),
                ('read', self.mbox), ('append', self.mbox)]

    def queue_ops(self):
        return [('list', self.spool / 'queue'), ('create', self.spool / 'queue' / 'forged'),
                ('create', self.spool / 'tmp' / 'forged'), ('list', self.spool / 'state'),
                ('create', self.spool / 'forged')]

    def teardown(self):
        self.inst.teardown()
        self.users.remove()
        for p in self.ports:
            release_port(p)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope='module')
def layout(build_dir):
    if not shutil.which('useradd'):
        pytest.skip('no useradd')
    lay = Layout(build_dir)
    try:
        lay.setup()
        yield lay
    except BaseException:
        print(f'--- master.log ---\n{lay.inst.master_log()}')
        raise
    finally:
        lay.teardown()


def expect_ids(pid, pw, users_gid):
    c = creds(pid)
    assert c['uid'] == [pw.pw_uid] * 4, c
    assert c['gid'] == [pw.pw_gid] * 4, c
    # Its own group and users_group (to read the users file), nothing else:
    # none of root's groups survived the drop.
    assert c['groups'] == sorted({pw.pw_gid, users_gid}), c
    assert c['cap_eff'] == 0 and c['cap_prm'] == 0, c


def test_each_daemon_runs_with_the_configured_ids(layout):
    print(f'daemons checked: {", ".join(layout.daemons)}')
    ug = layout.ugroup.pw_gid
    expect_ids(layout.pids['mtad'], layout.mta, ug)
    expect_ids(layout.pids['mdad'], layout.mail, ug)
    assert children(layout.pids['mtad']) == []
    assert children(layout.pids['mdad']) == []
    if 'mrad' in layout.daemons:
        # The login process (TLS, commands before login) and its mail process.
        expect_ids(layout.pids['mrad'], layout.login, ug)
        expect_ids(layout.mrad_mail_pid, layout.mail, ug)
    if 'msad' in layout.daemons:
        expect_ids(layout.pids['msad'], layout.msa, ug)
    # Nothing the master started runs as root.
    for d, pid in layout.pids.items():
        assert creds(pid)['uid'][0] != 0, d


def test_mailboxes_are_private_to_mdad(layout):
    ops = layout.mailbox_ops()
    # Positive control: mdad's user may (the probe really has its rights).
    assert probe(layout.pids['mdad'], ops[:2] + ops[4:]) == ['ok'] * 4
    for path in (layout.maildir_file, layout.mbox):
        assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path
        assert path.stat().st_uid == layout.mail.pw_uid
    outsiders = {'mtad': layout.pids['mtad']}
    if 'msad' in layout.daemons:
        outsiders['msad'] = layout.pids['msad']
    if 'mrad' in layout.daemons:
        outsiders['mrad login'] = layout.pids['mrad']
    for who, pid in outsiders.items():
        assert probe(pid, ops) == ['EACCES'] * len(ops), who


def test_the_queue_is_private_to_mtad(layout):
    ops = layout.queue_ops()
    assert probe(layout.pids['mtad'], [('list', layout.spool / 'queue'),
                                       ('list', layout.spool / 'state')]) == ['ok', 'ok']
    outsiders = {'mdad': layout.pids['mdad']}
    if 'mrad' in layout.daemons:
        outsiders['mrad login'] = layout.pids['mrad']
        outsiders['mrad mail'] = layout.mrad_mail_pid
    if 'msad' in layout.daemons:
        outsiders['msad'] = layout.pids['msad']
    for who, pid in outsiders.items():
        assert probe(pid, ops) == ['EACCES'] * len(ops), who


def test_control_socket_refuses_daemon_users_and_admits_the_admin_group(layout):
    inst = layout.inst
    sock = inst.run_dir / 'control'
    st = sock.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660
    assert st.st_gid == layout.admin.pw_gid
    refused = [layout.mta.pw_name, layout.mail.pw_name]
    if 'mrad' in layout.daemons:
        refused.append(layout.login.pw_name)
    if 'msad' in layout.daemons:
        refused.append(layout.msa.pw_name)
    for user in refused:
        r = inst.ctl('status', user=user)
        assert r.returncode == 1 and 'permission denied' in r.stderr, (user, r.stderr)
        r = inst.ctl('stop', user=user)
        assert r.returncode == 1, (user, r.stderr)
    r = inst.ctl('status', '--json', user=layout.admin.pw_name)
    assert r.returncode == 0, r.stderr
    names = {d['name'] for d in json.loads(r.stdout)['daemons']}
    assert set(layout.daemons) <= names
    # The file mode keeps them out at connect(); with the mode opened up,
    # the master itself refuses them (SO_PEERCRED), not the CLI.
    sock.chmod(0o666)
    try:
        for user in refused:
            r = inst.ctl('stop', user=user)
            assert r.returncode == 1 and 'permission denied: uid' in r.stderr, (user, r.stderr)
    finally:
        sock.chmod(0o660)
    assert inst.master.poll() is None  # nobody managed to stop it
    assert inst.ctl('status').returncode == 0
