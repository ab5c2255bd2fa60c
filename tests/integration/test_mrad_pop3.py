"""mrad end to end: POP3 with Python's poplib (plain on a trusted loopback
listener, STLS, POP3_SSL on the implicit TLS port), AUTH PLAIN, Maildir and
mbox mailboxes, byte-exact messages ('.' and 'From ' lines), DELE only at
QUIT, [IN-USE] between sessions, a client gone mid-RETR deletes nothing,
the mail process killed with -9 (mrad exits 70; under yubin-master it is
restarted and serves again), fetchmail with
--mda, and (as root) the privilege split: the two processes' users, the
login process unable to open a mailbox, the mail process unable to open
the queue.
"""

import base64
import os
import poplib
import shutil
import signal
import socket
import ssl
import subprocess

import pytest

from conftest import is_root, wait_for
from mrad_helper import PASSWORD, Pop3Setup, can_open_as, crlf, uids_of

TRICKY = (b'Subject: tricky\n'
          b'From: alice@example.net\n'
          b'\n'
          b'.\n'
          b'..two\n'
          b'.leading dot\n'
          b'From the start of a line\n'
          b'>From already quoted\n'
          b'end\n')


def msg(n, body=b'hello'):
    return b'Subject: message %d\nFrom: alice@example.net\n\n%s %d\n' % (n, body, n)


@pytest.fixture
def pop(instance, binary, free_port, request):
    login_user = None
    if is_root():
        login_user = request.getfixturevalue('system_user')
    setup = Pop3Setup(instance, binary, free_port, login_user=login_user)
    yield setup
    # Before system_user's teardown: userdel refuses a user whose processes
    # still run (the login process), and the user was left behind.
    setup.stop()


def login(setup, user='bob', tls=False):
    if tls:
        c = poplib.POP3_SSL('127.0.0.1', setup.sport, context=setup.tls_context(), timeout=20)
    else:
        c = poplib.POP3('127.0.0.1', setup.port, timeout=20)
    c.user(f'{user}@example.org')
    c.pass_(PASSWORD)
    return c


def retr(c, n):
    resp, lines, octets = c.retr(n)
    return b''.join(line + b'\r\n' for line in lines), octets


def test_maildir_plain_loopback(pop):
    names = [pop.add_maildir('bob', msg(1)), pop.add_maildir('bob', TRICKY),
             pop.add_maildir('bob', msg(3, b'x' * 5000))]
    pop.start()
    c = login(pop)
    assert c.stat() == (3, sum(len(crlf(m)) for m in (msg(1), TRICKY, msg(3, b'x' * 5000))))
    _, listing, _ = c.list()
    assert listing == [b'%d %d' % (i + 1, len(crlf(m)))
                       for i, m in enumerate((msg(1), TRICKY, msg(3, b'x' * 5000)))]
    _, uidl, _ = c.uidl()
    assert uidl == [b'%d %s' % (i + 1, n.split(',')[0].encode()) for i, n in enumerate(names)]
    body, octets = retr(c, 2)
    assert body == crlf(TRICKY)
    assert octets == len(crlf(TRICKY))
    _, top, _ = c.top(3, 0)
    assert top == [b'Subject: message 3', b'From: alice@example.net', b'']
    assert c.dele(1).startswith(b'+OK')
    with pytest.raises(poplib.error_proto):
        c.retr(1)
    # Not removed before QUIT.
    assert len(pop.maildir_files('bob')['new']) == 2
    assert c.quit().startswith(b'+OK')
    files = pop.maildir_files('bob')
    assert files['new'] == [names[2]]
    assert files['cur'] == [names[1] + ':2,S']  # read: moved to cur/ with S
    # The next session sees the two left, with the same uids.
    c = login(pop)
    _, uidl, _ = c.uidl()
    assert uidl == [b'1 ' + names[1].split(',')[0].encode(), b'2 ' + names[2].split(',')[0].encode()]
    c.quit()


def test_stls_pop3s_and_auth_plain(pop):
    pop.write(loopback_plaintext=False)
    pop.add_maildir('bob', TRICKY)
    pop.start()
    c = poplib.POP3('127.0.0.1', pop.port, timeout=20)
    caps = c.capa()
    assert 'STLS' in caps and 'USER' not in caps
    with pytest.raises(poplib.error_proto, match=r'\[AUTH\]'):
        c.user('bob@example.org')
    c.stls(context=pop.tls_context())
    caps = c.capa()
    assert 'USER' in caps and 'STLS' not in caps and 'PLAIN' in caps['SASL']
    c.user('bob@example.org')
    c.pass_(PASSWORD)
    assert retr(c, 1)[0] == crlf(TRICKY)
    c.quit()

    c = login(pop, tls=True)
    assert retr(c, 1)[0] == crlf(TRICKY)
    c.quit()

    # AUTH PLAIN with an initial response, over implicit TLS; a wrong
    # password first.
    raw = socket.create_connection(('127.0.0.1', pop.sport), timeout=20)
    s = pop.tls_context().wrap_socket(raw)
    f = s.makefile('rwb')
    assert f.readline().startswith(b'+OK')
    bad = base64.b64encode(b'\0bob@example.org\0wrong')
    f.write(b'AUTH PLAIN ' + bad + b'\r\n')
    f.flush()
    assert f.readline() == b'-ERR [AUTH] Authentication failed\r\n'
    good = base64.b64encode(b'\0bob@example.org\0' + PASSWORD.encode())
    f.write(b'AUTH PLAIN ' + good + b'\r\nSTAT\r\nQUIT\r\n')  # pipelined
    f.flush()
    assert f.readline().startswith(b'+OK')
    assert f.readline() == b'+OK 1 %d\r\n' % len(crlf(TRICKY))
    assert f.readline().startswith(b'+OK')
    s.close()
    assert 'authentication failed' in pop.log() and 'ip=127.0.0.1' in pop.log()
    assert PASSWORD not in pop.log()


def read_to_close(sock):
    chunks = []
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            return b''.join(chunks)
        chunks.append(chunk)


def tcp_owner(local_port, pids):
    """Which of pids holds the server's end of the loopback TCP connection
    whose client end is local_port (None when none of them does)."""
    inodes = set()
    for line in open('/proc/net/tcp').read().splitlines()[1:]:
        f = line.split()
        if int(f[2].split(':')[1], 16) == local_port:  # remote = the client
            inodes.add(f[9])
    owners = []
    for pid in pids:
        for fd in os.listdir(f'/proc/{pid}/fd'):
            try:
                target = os.readlink(f'/proc/{pid}/fd/{fd}')
            except OSError:
                continue
            if target.startswith('socket:[') and target[8:-1] in inodes:
                owners.append(pid)
    assert len(owners) <= 1, owners
    return owners[0] if owners else None


def test_plaintext_session_handed_over_direct(pop):
    """A plaintext session's socket goes to the mail process itself (no
    proxy hop); a TLS one stays with the login process. Either way the
    session counts against the connection limits until it ends."""
    pop.write(max_connections_per_ip=2)
    pop.add_maildir('bob', TRICKY)
    pop.add_maildir('bob', msg(2))
    pop.add_mbox('carol', msg(3))
    pop.start()
    wait_for(lambda: 'reason="client closed"' in pop.log(), 10, 'the probe to close')
    login_pid, mail_pid = pop.proc.pid, pop.mail_pid()

    # Everything in one write: the commands behind PASS travel with the
    # hand-over and are answered on the client's own socket.
    raw = socket.create_connection(('127.0.0.1', pop.port), timeout=20)
    f = raw.makefile('rb')
    assert f.readline().startswith(b'+OK')
    raw.sendall(f'USER bob@example.org\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\n'.encode())
    assert f.readline().startswith(b'+OK')
    assert f.readline().startswith(b'+OK Logged in')
    size = len(crlf(TRICKY))
    assert f.readline() == b'+OK 2 %d\r\n' % (size + len(crlf(msg(2))))
    assert f.readline() == b'+OK %d octets\r\n' % size
    body = b''
    while not body.endswith(b'\r\n.\r\n'):
        body += f.readline()
    assert body == crlf(TRICKY).replace(b'\r\n.', b'\r\n..') + b'.\r\n'
    assert tcp_owner(raw.getsockname()[1], [login_pid, mail_pid]) == mail_pid

    tls = login(pop, user='carol', tls=True)
    assert tls.stat()[0] == 1
    assert tcp_owner(tls.sock.getsockname()[1], [login_pid, mail_pid]) == login_pid

    # Both count: a third connection from this address is refused.
    third = socket.create_connection(('127.0.0.1', pop.port), timeout=10)
    assert third.recv(200).startswith(b'-ERR [SYS/TEMP] Too many connections')
    third.close()

    # The direct session ends: the login process hears it over the link and
    # frees the place.
    raw.sendall(b'RETR 2\r\nQUIT\r\n')
    rest = read_to_close(raw)
    assert rest.startswith(b'+OK') and rest.endswith(b'.\r\n+OK Bye\r\n')
    raw.close()
    wait_for(lambda: 'reason="session ended"' in pop.log(), 10, 'the login process to see the end')
    again = login(pop)
    assert again.stat()[0] == 2
    again.quit()
    tls.quit()
    assert 'reason=closed' in pop.log()


def test_pipelined_answers_before_login_come_first(pop):
    """A client pipelines 3 MB worth of CAPA answers and its login before
    reading anything: the login process feeds it under its bound (64 KiB
    of answers waiting), and the answers still queued at the login reach
    the client before the mail process's first byte (the direct hand-over
    waits for them; whether any are left then depends on timing)."""
    pop.add_maildir('bob', msg(1))
    pop.start()
    raw = socket.create_connection(('127.0.0.1', pop.port), timeout=60)
    n = 20000
    raw.sendall(b'CAPA\r\n' * n + f'USER bob@example.org\r\nPASS {PASSWORD}\r\n'.encode()
                + b'STAT\r\nQUIT\r\n')
    data = read_to_close(raw)
    raw.close()
    greeting = b'+OK Yubin POP3 server ready\r\n'
    assert data.startswith(greeting)
    data = data[len(greeting):]
    capa = data[:data.index(b'.\r\n') + 3]
    assert capa.startswith(b'+OK') and data.count(capa) == n
    tail = data[len(capa) * n:]
    lines = tail.split(b'\r\n')
    assert lines[0].startswith(b'+OK') and lines[1].startswith(b'+OK Logged in')
    assert lines[2] == b'+OK 1 %d' % len(crlf(msg(1)))
    assert lines[3] == b'+OK Bye' and lines[4:] == [b'']


def test_mbox_expunge_keeps_mail_delivered_meanwhile(pop):
    pop.add_mbox('carol', msg(1))
    pop.add_mbox('carol', TRICKY)
    pop.add_mbox('carol', msg(3))
    pop.start()
    c = login(pop, 'carol')
    assert c.stat()[0] == 3
    assert retr(c, 2)[0] == crlf(TRICKY)
    _, uidl1, _ = c.uidl()
    c.dele(1)
    c.dele(3)
    pop.add_mbox('carol', msg(4))  # delivered during the session
    c.quit()
    c = login(pop, 'carol')
    assert c.stat()[0] == 2
    assert retr(c, 1)[0] == crlf(TRICKY)
    assert retr(c, 2)[0] == crlf(msg(4))
    _, uidl2, _ = c.uidl()
    assert uidl2[0].split()[1] == uidl1[1].split()[1]  # same uid as before
    c.quit()
    data = pop.mbox_path('carol').read_bytes()
    assert b'>From the start' in data  # still quoted on disk
    assert not [p for p in os.listdir(pop.mbox_path('carol').parent) if 'yubin' in p or p.endswith('.lock')]


def test_in_use_and_client_gone_mid_retr(pop):
    big = b'Subject: big\n\n' + (b'y' * 999 + b'\n') * 4000
    pop.add_maildir('bob', big)
    pop.add_maildir('bob', msg(2))
    pop.start()
    c = login(pop)
    c.dele(2)
    second = poplib.POP3('127.0.0.1', pop.port, timeout=20)
    second.user('bob@example.org')
    with pytest.raises(poplib.error_proto, match=r'\[IN-USE\]'):
        second.pass_(PASSWORD)
    # The first client vanishes in the middle of a RETR.
    c.sock.sendall(b'RETR 1\r\n')
    c.sock.recv(1000)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b'\x01\x00\x00\x00\x00\x00\x00\x00')
    c.file.close()  # poplib's file holds the socket open otherwise
    c.sock.close()
    try:
        # The mail process's line: the login process also logs
        # reason="session ended", for the refused second client, earlier.
        wait_for(lambda: 'session ended session=' in pop.log(), 20, 'the session to end')
    except BaseException:
        print(pop.log())
        raise
    files = pop.maildir_files('bob')
    assert len(files['new']) == 2  # nothing deleted, nothing marked read
    # The lock went with the session.
    c = login(pop)
    assert c.stat()[0] == 2
    c.quit()


def test_mail_process_killed(pop):
    pop.add_maildir('bob', msg(1))
    pop.start()
    c = login(pop)
    c.dele(1)
    os.kill(pop.mail_pid(), signal.SIGKILL)
    assert pop.proc.wait(20) == 70
    assert 'mail process ended' in pop.log()
    assert len(pop.maildir_files('bob')['new']) == 1


def test_limits_and_bad_input(pop):
    pop.write(max_connections_per_ip=2)
    pop.start()
    # start() probed the port: wait until that connection is forgotten.
    wait_for(lambda: 'reason="client closed"' in pop.log(), 10, 'the probe to close')
    a = socket.create_connection(('127.0.0.1', pop.port), timeout=10)
    b = socket.create_connection(('127.0.0.1', pop.port), timeout=10)
    assert a.recv(100).startswith(b'+OK') and b.recv(100).startswith(b'+OK')
    third = socket.create_connection(('127.0.0.1', pop.port), timeout=10)
    assert third.recv(200).startswith(b'-ERR [SYS/TEMP] Too many connections')
    a.sendall(b'A' * 5000 + b'\r\n' + b'\x00\xff garbage\r\n' * 10)
    data = read_to_close(a)
    assert data.startswith(b'-ERR Line too long\r\n')
    assert data.endswith(b'-ERR Too many bad commands, closing connection\r\n')
    b.sendall(b'QUIT\r\n')
    assert b.recv(100) == b'+OK Bye\r\n'


@pytest.mark.skipif(not shutil.which('fetchmail'), reason='fetchmail not installed')
def test_fetchmail_keep_and_delete(pop, tmp_path):
    pop.add_maildir('bob', msg(1))
    pop.add_maildir('bob', TRICKY)
    pop.start()
    out = tmp_path / 'out'
    rc = tmp_path / 'fetchmailrc'
    rc.write_text(f'poll 127.0.0.1 service {pop.sport} protocol pop3 timeout 20\n'
                  f'  user "bob@example.org" password "{PASSWORD}" ssl no sslcertck\n')
    os.chmod(rc, 0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))

    def fetch(*extra):
        # Its own lock file: as root, fetchmail's default is the shared
        # /var/run/fetchmail.pid, and a parallel test's run holds it.
        return subprocess.run(['fetchmail', '-f', str(rc), '--nosyslog', '-v',
                               '--pidfile', str(tmp_path / 'fetchmail.pid'), '--mda',
                               f'sh -c "cat >> {out}; echo ==== >> {out}"', *extra],
                              capture_output=True, text=True, env=env, timeout=60)
    r = fetch('--keep')
    assert r.returncode == 0, r.stdout + r.stderr
    got = out.read_bytes()
    assert b'\n\n.\n..two\n.leading dot\nFrom the start of a line\n>From already quoted\nend\n' in got
    assert len(pop.maildir_files('bob')['new']) + len(pop.maildir_files('bob')['cur']) == 2
    out.unlink()
    r = fetch('--all', '--nokeep')
    assert r.returncode == 0, r.stdout + r.stderr
    assert out.read_bytes().count(b'====') == 2
    assert pop.maildir_files('bob') == {'new': [], 'cur': []}


def open_files(pid):
    """What the descriptors of a process point at ('socket:[inode]', paths)."""
    return [os.readlink(f'/proc/{pid}/fd/{fd}') for fd in os.listdir(f'/proc/{pid}/fd')]


def listening_sockets():
    """'socket:[inode]' of every listening TCP socket (state 0A)."""
    out = set()
    for table in ('/proc/net/tcp', '/proc/net/tcp6'):
        try:
            rows = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if cols[3] == '0A':
                out.add(f'socket:[{cols[9]}]')
    return out


@pytest.mark.skipif(not is_root(), reason='needs root')
def test_privilege_split(pop, instance):
    name = pop.add_maildir('bob', msg(1))
    spool = instance.dir / 'spool'
    os.chmod(spool, 0o700)  # as mtad keeps its queue: its own user only
    pop.start()

    # The mail process is forked (as root) and drops its privileges after
    # exec and reading the config: wait until it is past that point (it may
    # lag behind the login process's listeners, slowly under ASan). A mail
    # process that never leaves root fails here.
    def dropped():
        pid = pop.mail_pid()
        if pid is None:
            return None
        ids = uids_of(pid)
        return (pid, ids) if ids['Uid'][0] != 0 else None
    mail_pid, m = wait_for(dropped, timeout=30, what='the mail process past its privilege drop')
    assert m['Uid'] == [pop.mail_uid] * 4
    assert m['Gid'] == [pop.mail_gid] * 4
    login_ids = uids_of(pop.proc.pid)
    assert login_ids['Uid'] == [pop.login_uid] * 4
    mailbox_file = pop.maildir('bob') / 'new' / name
    assert not can_open_as(pop.login_uid, login_ids['Gid'][0], mailbox_file)
    assert can_open_as(pop.mail_uid, pop.mail_gid, mailbox_file)
    assert not can_open_as(pop.mail_uid, pop.mail_gid, spool)
    # The mail process holds no listening socket and no TLS key file; the
    # login process holds the listeners (the check sees them).
    fds = open_files(mail_pid)
    assert not any('key.pem' in f for f in fds)
    listening = listening_sockets()
    assert len(listening & set(open_files(pop.proc.pid))) >= 2  # POP3 and POP3S
    assert not listening & set(fds), fds
    c = login(pop)
    assert retr(c, 1)[0] == crlf(msg(1))
    c.quit()


def test_under_master_restarted_after_mail_process_dies(pop, instance):
    pop.add_maildir('bob', msg(1))
    instance.link_daemon('mrad', pop.exe)
    instance.start_master()
    d = instance.wait_daemon('mrad', timeout=30)
    c = login(pop)
    assert c.stat()[0] == 1
    kids = open(f'/proc/{d["pid"]}/task/{d["pid"]}/children').read().split()
    assert len(kids) >= 1  # [mrad] mail_processes may be more than one
    os.kill(int(kids[0]), signal.SIGKILL)
    instance.wait_daemon('mrad', timeout=30, not_pid=d['pid'])
    c = wait_for(lambda: login(pop), 20, 'a login on the restarted mrad')
    assert retr(c, 1)[0] == crlf(msg(1))
    c.quit()
    assert 'mail process ended' in instance.master_log()


@pytest.mark.parametrize('user', ['bob', 'carol'])
def test_quit_then_login_again_at_once(pop, user):
    """A client that QUITs and logs in again at once (fetchmail polling in
    a loop) never meets [IN-USE]: the mailbox is released as soon as the
    session is over, before its connection is reaped."""
    pop.add_maildir('bob', msg(1))
    pop.add_mbox('carol', msg(1))
    pop.start()
    for _ in range(30):
        c = login(pop, user)
        assert c.stat()[0] == 1
        c.quit()
