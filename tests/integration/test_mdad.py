"""mdad end to end: the LMTP server on its Unix socket, driven by smtplib.LMTP
and by a raw client (pipelining, BDAT), and the delivery command
(`mdad -d ... < message`) with its exit statuses. Every delivered copy is
read back from the Maildir or mbox and compared byte for byte.

mdad runs alone (`mdad -f -c CONF`, binding [mdad] lmtp_socket itself),
except in the kill -9 test, where yubin-master runs it, hands it the socket
and restarts it. As root the daemon runs as nobody, who owns the mail root.
"""

import os
import pwd
import re
import signal
import smtplib
import socket
import subprocess
import threading
import time

import pytest

from conftest import is_root, wait_for
from standalone import Daemon

SENDER = 'alice@example.net'


# --- reading mailboxes -----------------------------------------------------------

def parse_mbox(data):
    """mboxrd bytes -> [(From_ line, message bytes)], un-quoted. A From_ line
    starts a message at the start of the file or after an empty line; that
    empty line is the previous message's separator. Fails on bytes before
    the first From_ line or a message without its separator."""
    lines = data.split(b'\n')
    assert lines[-1] == b'', 'mbox does not end with LF'
    lines.pop()
    msgs = []
    cur = None
    prev_blank = True
    for line in lines:
        if line.startswith(b'From ') and prev_blank:
            if cur is not None:
                msgs.append(cur)
            cur = (line, [])
        else:
            assert cur is not None, f'data before the first From_ line: {line[:80]!r}'
            cur[1].append(line)
        prev_blank = line == b''
    if cur is not None:
        msgs.append(cur)
    out = []
    for from_line, body in msgs:
        assert body and body[-1] == b'', f'message without separator after {from_line!r}'
        body = body[:-1]
        text = b''.join(re.sub(rb'^>(>*From )', rb'\1', ln) + b'\n' for ln in body)
        out.append((from_line, text))
    return out


def lf(data):
    return data.replace(b'\r\n', b'\n')


def trace(sender, user):
    return f'Return-Path: <{sender}>\nDelivered-To: {user}\n'.encode()


# --- the instance -------------------------------------------------------------------

USERS = {
    'bob': 'maildir',
    'carol': 'mbox',
    'dave': 'maildir',
    'full': ('maildir', '1k'),
    'fullbox': ('mbox', '0,1'),
}


class Setup:
    """Users, aliases and config of one instance; paths of the mailboxes."""

    def __init__(self, inst, exe):
        self.inst = inst
        self.exe = exe
        self.mail = inst.dir / 'mail'
        self.socket = inst.run_dir / 'lmtp'
        self.locked = inst.dir / 'locked'  # a folder mdad may not write
        self.locked.mkdir(mode=0o755)
        lines = []
        for name, spec in USERS.items():
            fmt, quota = spec if isinstance(spec, tuple) else (spec, '')
            lines.append(f'{name}@example.org:*:::{fmt}:{quota}\n')
        lines.append(f'locked@example.org:*::{self.locked}/Maildir:maildir\n')
        (inst.dir / 'etc/users').write_text(''.join(lines))
        (inst.dir / 'etc/aliases').write_text(
            'info@example.org: bob@example.org, carol@example.org\n'
            'away@example.org: someone@remote.example\n')
        self.keys = {'lmtp_socket': str(self.socket), 'lock_timeout': '1s'}
        who = inst.run_as()
        for f in ('users', 'aliases'):
            os.chmod(inst.dir / 'etc' / f, 0o640)
        if who:
            self.keys['user'], self.keys['group'] = who
            pw = pwd.getpwnam(who[0])
            for f in ('users', 'aliases'):
                os.chown(inst.dir / 'etc' / f, 0, pw.pw_gid)
            os.chown(self.mail, pw.pw_uid, pw.pw_gid)
        else:
            os.chmod(self.locked, 0o555)
        self.write()

    def write(self, **extra):
        self.keys.update(extra)
        self.inst.write_config({'mdad': dict(self.keys)})

    # Mailboxes.
    def maildir(self, user):
        return self.mail / 'example.org' / user / 'Maildir'

    def maildir_files(self, user, sub='new'):
        d = self.maildir(user) / sub
        return sorted(d.iterdir()) if d.exists() else []

    def maildir_messages(self, user):
        return [p.read_bytes() for p in self.maildir_files(user)]

    def mbox_path(self, user):
        return self.mail / 'example.org' / f'{user}.mbox'

    def mbox(self, user):
        p = self.mbox_path(user)
        return parse_mbox(p.read_bytes()) if p.exists() else []

    def spool_files(self):
        d = self.inst.dir / 'state' / 'mdad-tmp'
        return sorted(os.listdir(d)) if d.exists() else []

    # The delivery command.
    def lda(self, *args, input=b'', conf=None):
        cmd = [str(self.exe), '-c', str(conf or self.inst.conf), *args]
        return subprocess.run(cmd, input=input, capture_output=True, timeout=60)


class Server(Daemon):
    """mdad alone: `mdad -f -c CONF`, binding the socket itself."""

    def __init__(self, setup):
        super().__init__(setup.inst, setup.exe, 'mdad', self._ready, timeout=20)
        self.setup = setup

    def _ready(self):
        c = Lmtp(self.setup.socket, timeout=5)
        try:
            return c.line().startswith('220 ')
        finally:
            c.close()

    def reload(self):
        n = self.log().count('info: reloaded')
        self.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: self.log().count('info: reloaded') > n, 10, 'mdad to reload')


class Lmtp:
    """A raw LMTP client on a Unix socket, for pipelining and BDAT.
    reply() returns (code, [lines])."""

    def __init__(self, path, timeout=20.0):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.buf = b''

    def close(self):
        self.sock.close()

    def send(self, data):
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def line(self):
        while b'\n' not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b'\n', 1)
        return line.rstrip(b'\r').decode('utf-8', 'replace')

    def reply(self):
        lines = []
        while True:
            line = self.line()
            if line is None:
                return None, lines
            lines.append(line)
            if len(line) < 4 or line[3] != '-':
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text + '\r\n')
        return self.reply()

    def greet(self):
        code, lines = self.reply()
        assert code == 220 and 'LMTP' in lines[0], lines
        code, lines = self.cmd('LHLO client.example.net')
        assert code == 250, lines
        return lines


def dot_stuff(data):
    return re.sub(rb'(?m)^\.', b'..', data)


def lmtp_send(conn, sender, rcpts, data):
    """One transaction through smtplib.LMTP. Returns ({rcpt: RCPT code},
    [(code, text) after the data, one per accepted recipient])."""
    code, text = conn.mail(sender)
    assert code == 250, text
    at_rcpt = {}
    for r in rcpts:
        at_rcpt[r] = conn.rcpt(r)[0]
    accepted = [r for r in rcpts if at_rcpt[r] == 250]
    if not accepted:
        conn.rset()
        return at_rcpt, []
    code, text = conn.docmd('DATA')
    assert code == 354, text
    body = dot_stuff(data)
    if not body.endswith(b'\r\n'):
        body += b'\r\n'
    conn.send(body + b'.\r\n')
    return at_rcpt, [conn.getreply() for _ in accepted]


@pytest.fixture
def setup(instance, binary):
    return Setup(instance, binary('mdad/mdad'))


@pytest.fixture
def mdad(setup):
    s = Server(setup).start()
    yield s
    try:
        s.stop()
    except subprocess.TimeoutExpired:
        s.proc.kill()


MESSAGE = (b'From: Alice <alice@example.net>\r\n'
           b'To: bob@example.org\r\n'
           b'Subject: hello\r\n'
           b'\r\n'
           b'first line\r\n'
           b'.a line that starts with a dot\r\n'
           b'From the mbox point of view, a trap\r\n'
           b'>From quoted already\r\n'
           b'\r\n'
           b'last line\r\n')


# --- LMTP ------------------------------------------------------------------------

def test_lmtp_replies_per_recipient_and_copies_are_exact(setup, mdad):
    with smtplib.LMTP(str(setup.socket)) as c:
        code, caps = c.ehlo('client.example.net')
        assert code == 250
        for cap in (b'PIPELINING', b'8BITMIME', b'SMTPUTF8', b'ENHANCEDSTATUSCODES', b'CHUNKING'):
            assert cap in caps.split(b'\n'), caps
        assert b'STARTTLS' not in caps
        at_rcpt, after = lmtp_send(c, SENDER, ['bob@example.org', 'ghost@example.org',
                                               'carol@example.org', 'away@example.org',
                                               'x@remote.example'], MESSAGE)
    assert at_rcpt == {'bob@example.org': 250, 'ghost@example.org': 550,
                       'carol@example.org': 250, 'away@example.org': 550,
                       'x@remote.example': 550}
    assert after == [(250, b'2.0.0 Ok: delivered')] * 2

    [bob] = setup.maildir_messages('bob')
    assert bob == trace(SENDER, 'bob@example.org') + lf(MESSAGE)
    assert setup.maildir_files('bob', 'tmp') == []
    [(from_line, carol)] = setup.mbox('carol')
    assert from_line.startswith(b'From alice@example.net ')
    assert carol == trace(SENDER, 'carol@example.org') + lf(MESSAGE)
    assert b'\n>From the mbox' in setup.mbox_path('carol').read_bytes()
    assert setup.spool_files() == []
    log = mdad.log()
    assert 'recipient refused: unknown user' in log and 'rcpt=ghost@example.org' in log
    assert 'mdad does not forward' in log and 'rcpt=away@example.org' in log


def test_alias_reaches_two_users_once(setup, mdad):
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        # bob is named directly and through the alias: one copy, two answers.
        at_rcpt, after = lmtp_send(c, '', ['info@example.org', 'bob@example.org'], MESSAGE)
    assert at_rcpt == {'info@example.org': 250, 'bob@example.org': 250}
    assert [code for code, _ in after] == [250, 250]
    assert setup.maildir_messages('bob') == [trace('', 'bob@example.org') + lf(MESSAGE)]
    assert [m for _, m in setup.mbox('carol')] == [trace('', 'carol@example.org') + lf(MESSAGE)]
    [(from_line, _)] = setup.mbox('carol')
    assert from_line.startswith(b'From MAILER-DAEMON ')


def test_mbox_round_trips_from_lines(setup, mdad):
    body = (b'Subject: quoting\r\n\r\n'
            b'From here\r\n>From one\r\n>>From two\r\nFrom\r\nFromage\r\n'
            b'\r\nFrom after an empty line\r\n')
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        for i in range(3):
            _, after = lmtp_send(c, SENDER, ['carol@example.org'], body + b'n=%d\r\n' % i)
            assert after == [(250, b'2.0.0 Ok: delivered')]
    msgs = setup.mbox('carol')
    assert [m for _, m in msgs] == [trace(SENDER, 'carol@example.org') + lf(body) + b'n=%d\n' % i
                                    for i in range(3)]
    raw = setup.mbox_path('carol').read_bytes()
    assert b'\n>From here\n>>From one\n>>>From two\nFrom\nFromage\n\n>From after' in raw


def test_pipelining_and_bdat(setup, mdad):
    c = Lmtp(setup.socket)
    c.greet()
    # Everything in one write; the replies come in order.
    c.send('MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n'
           'RCPT TO:<nobody@example.org>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\n')
    assert [c.reply()[0] for _ in range(5)] == [250, 250, 550, 250, 354]
    c.send(b'Subject: one\r\n\r\nbody one\r\n.\r\n'
           b'MAIL FROM:<b@example.net>\r\nRCPT TO:<dave@example.org>\r\n')
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 250]
    chunk1 = b'Subject: two\r\n\r\nbdat '
    chunk2 = b'body\r\n.not a terminator\r\n'
    c.send(b'BDAT %d\r\n' % len(chunk1) + chunk1 + b'BDAT %d LAST\r\n' % len(chunk2) + chunk2)
    code, lines = c.reply()
    assert code == 250 and 'octets received' in lines[0]
    code, lines = c.reply()
    assert (code, lines) == (250, ['250 2.0.0 Ok: delivered'])
    assert c.cmd('QUIT')[0] == 221
    c.close()
    assert setup.maildir_messages('bob') == [trace('a@example.net', 'bob@example.org') +
                                             b'Subject: one\n\nbody one\n']
    assert sorted(setup.maildir_messages('dave')) == sorted([
        trace('a@example.net', 'dave@example.org') + b'Subject: one\n\nbody one\n',
        trace('b@example.net', 'dave@example.org') + lf(chunk1 + chunk2)])


def test_loop_bad_message_and_rset(setup, mdad):
    looped = b'Delivered-To: bob@example.org\r\nSubject: loop\r\n\r\nbody\r\n'
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        _, after = lmtp_send(c, SENDER, ['bob@example.org', 'dave@example.org'], looped)
        assert after[0][0] == 554 and after[0][1].startswith(b'5.4.6 ')
        assert after[1] == (250, b'2.0.0 Ok: delivered')
        _, after = lmtp_send(c, SENDER, ['bob@example.org'], b'Subject: a\0b\r\n\r\nx\r\n')
        assert after[0][0] == 554 and after[0][1].startswith(b'5.6.0 ')
        # A transaction dropped with RSET leaves nothing.
        assert c.mail(SENDER)[0] == 250 and c.rcpt('bob@example.org')[0] == 250
        assert c.rset()[0] == 250
    assert setup.maildir_messages('bob') == []
    assert setup.maildir_messages('dave') == [trace(SENDER, 'dave@example.org') + lf(looped)]
    assert 'mail loop' in mdad.log()


def test_quota_permanent_then_temporary_after_reload(setup, mdad):
    big = b'Subject: big\r\n\r\n' + b'x' * 2000 + b'\r\n'
    small = b'Subject: small\r\n\r\nx\r\n'
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        _, after = lmtp_send(c, SENDER, ['full@example.org', 'bob@example.org'], big)
        assert after == [(552, b'5.2.2 Error: mailbox full'), (250, b'2.0.0 Ok: delivered')]
        _, after = lmtp_send(c, SENDER, ['full@example.org'], small)
        assert after == [(250, b'2.0.0 Ok: delivered')]
        _, after = lmtp_send(c, SENDER, ['fullbox@example.org'], small)
        assert after == [(250, b'2.0.0 Ok: delivered')]
        _, after = lmtp_send(c, SENDER, ['fullbox@example.org'], small)
        assert after == [(552, b'5.2.2 Error: mailbox full')]
    setup.write(quota_temporary=True)
    mdad.reload()
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        _, after = lmtp_send(c, SENDER, ['full@example.org'], big)
        assert after == [(452, b'4.2.2 Error: mailbox full, try again later')]
        _, after = lmtp_send(c, SENDER, ['fullbox@example.org'], small)
        assert after[0][0] == 452
    assert len(setup.maildir_messages('full')) == 1
    assert len(setup.mbox('fullbox')) == 1


def test_unwritable_mailbox_and_held_lock_are_temporary(setup, mdad):
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        _, after = lmtp_send(c, SENDER, ['locked@example.org', 'bob@example.org'], MESSAGE)
        assert after[0] == (451, b'4.3.0 Error: local error in processing, try again later')
        assert after[1][0] == 250
        # carol's mbox is dot-locked by a live process: 451 4.2.0 after lock_timeout.
        carol = setup.mbox_path('carol')
        lock = carol.with_name(carol.name + '.lock')
        lock.write_text(f'{os.getpid()} {socket.gethostname()}\n')
        t0 = time.monotonic()
        _, after = lmtp_send(c, SENDER, ['carol@example.org'], MESSAGE)
        assert after[0][0] == 451 and after[0][1].startswith(b'4.2.0 ')
        assert time.monotonic() - t0 < 10
        lock.unlink()
        _, after = lmtp_send(c, SENDER, ['carol@example.org'], MESSAGE)
        assert after[0][0] == 250
    assert len(setup.mbox('carol')) == 1


def test_ten_concurrent_writers_into_one_mbox(setup):
    # The delivery commands hold the mbox lock while they fsync; on a loaded
    # machine that can take longer than the suite's 1 s lock_timeout.
    setup.write(lock_timeout='60s')
    server = Server(setup).start()
    try:
        _ten_concurrent_writers(setup)
    finally:
        server.stop()


def _ten_concurrent_writers(setup):
    writers, per_writer = 10, 200
    lda_writers, per_lda = 2, 15
    errors = []

    def body(w, i):
        return (b'Subject: w%d m%d\r\nX-Id: %d.%d\r\n\r\n' % (w, i, w, i)
                + b'From the writer %d\r\n' % w
                + b''.join(b'line %d of %d.%d %s\r\n' % (k, w, i, b'x' * (k * 7 % 61))
                           for k in range(20)))

    def lmtp_writer(w):
        try:
            with smtplib.LMTP(str(setup.socket), timeout=60) as c:
                c.ehlo('writer%d' % w)
                for i in range(per_writer):
                    _, after = lmtp_send(c, f'w{w}@example.net', ['carol@example.org'], body(w, i))
                    assert after == [(250, b'2.0.0 Ok: delivered')], after
        except Exception as exc:  # reported below
            errors.append(exc)

    def lda_writer(w):
        try:
            for i in range(per_lda):
                r = setup.lda('-d', 'carol@example.org', '-f', f'w{w}@example.net',
                              input=body(w, i))
                assert r.returncode == 0, r.stderr
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=lmtp_writer, args=(w,)) for w in range(writers)]
    threads += [threading.Thread(target=lda_writer, args=(100 + w,)) for w in range(lda_writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors[:3]
    msgs = setup.mbox('carol')
    want = {}
    for w in range(writers):
        for i in range(per_writer):
            want[(w, i)] = trace(f'w{w}@example.net', 'carol@example.org') + lf(body(w, i))
    for w in range(100, 100 + lda_writers):
        for i in range(per_lda):
            want[(w, i)] = trace(f'w{w}@example.net', 'carol@example.org') + lf(body(w, i))
    assert len(msgs) == len(want)
    seen = set()
    for from_line, m in msgs:
        ident = re.search(rb'\nX-Id: (\d+)\.(\d+)\n', m)
        assert ident, m[:200]
        key = (int(ident.group(1)), int(ident.group(2)))
        assert key not in seen
        seen.add(key)
        assert m == want[key]  # intact: nothing interleaved or cut
        assert from_line.startswith(b'From w%d@example.net ' % key[0])
    # Each writer's messages are in the order it sent them.
    for w in list(range(writers)) + list(range(100, 100 + lda_writers)):
        order = [k[1] for k in (tuple(map(int, re.search(rb'\nX-Id: (\d+)\.(\d+)\n', m).groups()))
                                for _, m in msgs) if k[0] == w]
        assert order == sorted(order)
    assert not setup.mbox_path('carol').with_name('carol.mbox.lock').exists()


def test_ten_concurrent_sessions_deliver_in_parallel_byte_exact(setup):
    """10 LMTP sessions at once, each pipelining messages to several users
    (Maildir and mbox, an alias, an over-quota user among them). Every
    recipient gets its own reply in RCPT order, and every copy is in its
    mailbox byte for byte: small messages (kept in memory by mdad) and big
    ones (spooled) alike."""
    setup.write(lock_timeout='60s', delivery_workers='4')
    server = Server(setup).start()
    sessions, per_session = 10, 12
    errors = []
    sent = {}  # (session, i) -> (message bytes, [recipients that got 250])
    lock = threading.Lock()

    def message(s, i):
        big = i == 5  # past the in-memory limit: goes through a spool file
        filler = b''.join(b'From line %d; .dot\r\n' % k if k % 9 == 0 else
                          b'%d %s\r\n' % (k, b'z' * ((k * 13 + s) % 70))
                          for k in range(4000 if big else 40 + s + i))
        return (b'Subject: s%d m%d\r\nX-Id: %d.%d\r\n\r\n' % (s, i, s, i)
                + filler + b'.\r\n..two dots\r\nend\r\n')

    plans = [
        ['bob@example.org', 'dave@example.org'],
        ['dave@example.org', 'full@example.org', 'bob@example.org'],
        ['info@example.org', 'dave@example.org'],  # bob + carol
        ['carol@example.org'],
    ]

    def session(s):
        try:
            c = Lmtp(setup.socket, timeout=120)
            c.greet()
            for i in range(per_session):
                rcpts = plans[(s + i) % len(plans)]
                data = message(s, i)
                c.send(f'MAIL FROM:<s{s}@example.net>\r\n'
                       + ''.join(f'RCPT TO:<{r}>\r\n' for r in rcpts) + 'DATA\r\n')
                codes = [c.reply()[0] for _ in range(len(rcpts) + 2)]
                assert codes == [250] * (len(rcpts) + 1) + [354], codes
                c.send(dot_stuff(data) + b'.\r\n')
                replies = [c.reply() for _ in rcpts]
                want = [552 if r == 'full@example.org' else 250 for r in rcpts]
                assert [code for code, _ in replies] == want, (rcpts, replies)
                with lock:
                    sent[(s, i)] = (data, rcpts)
            assert c.cmd('QUIT')[0] == 221
            c.close()
        except Exception as exc:  # reported below
            errors.append(exc)

    try:
        threads = [threading.Thread(target=session, args=(s,)) for s in range(sessions)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors
        assert len(sent) == sessions * per_session
    finally:
        server.stop()

    expect = {'bob': [], 'dave': [], 'carol': []}
    for (s, i), (data, rcpts) in sent.items():
        users = set()
        for r in rcpts:
            users |= {'info@example.org': {'bob', 'carol'}}.get(r, {r.split('@')[0]})
        for u in users & set(expect):
            expect[u].append(trace(f's{s}@example.net', f'{u}@example.org') + lf(data))
    for u in ('bob', 'dave'):
        got = setup.maildir_messages(u)
        assert len(got) == len(expect[u])
        assert sorted(got) == sorted(expect[u]), u
        assert setup.maildir_files(u, 'tmp') == []
    assert sorted(m for _, m in setup.mbox('carol')) == sorted(expect['carol'])
    assert setup.maildir_files('full') == []
    assert setup.spool_files() == []
    log = server.log()
    assert 'delivery failed' not in log

def open_files(pid, suffix):
    """Paths ending in suffix that process pid holds open."""
    out = []
    fd_dir = f'/proc/{pid}/fd'
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f'{fd_dir}/{fd}')
        except OSError:
            continue
        if target.endswith(suffix):
            out.append(target)
    return out


def _held_mbox_delivery(setup, server):
    """Dot-locks carol's mbox, sends her a message on a new session and
    returns (session, lock file) once a worker waits for the lock."""
    carol = setup.mbox_path('carol')
    carol.parent.mkdir(parents=True, exist_ok=True)
    who = setup.inst.run_as()
    if who:  # the folder is mdad's, as if it had made it
        pw = pwd.getpwnam(who[0])
        os.chown(carol.parent, pw.pw_uid, pw.pw_gid)
    lock = carol.with_name(carol.name + '.lock')
    lock.write_text(f'{os.getpid()} {socket.gethostname()}\n')
    c = Lmtp(setup.socket, timeout=60)
    c.greet()
    c.send('MAIL FROM:<a@example.net>\r\nRCPT TO:<carol@example.org>\r\nDATA\r\n')
    assert [c.reply()[0] for _ in range(3)] == [250, 250, 354]
    c.send(dot_stuff(MESSAGE) + b'.\r\n')
    wait_for(lambda: open_files(server.proc.pid, '/carol.mbox'), 20,
             'a worker to wait for the mbox lock')
    return c, lock


def test_client_gone_while_its_delivery_runs(setup):
    setup.write(lock_timeout='60s')
    server = Server(setup).start()
    try:
        c, lock = _held_mbox_delivery(setup, server)
        c.close()  # the connection goes; the copy under way does not
        wait_for(lambda: 'disconnect session=' in server.log(), 10, 'the disconnect')
        # Meanwhile other sessions are served: Maildir copies do not wait.
        with smtplib.LMTP(str(setup.socket)) as c2:
            c2.ehlo('client.example.net')
            _, after = lmtp_send(c2, SENDER, ['bob@example.org'], MESSAGE)
            assert [code for code, _ in after] == [250]
        lock.unlink()
        wait_for(lambda: len(setup.mbox('carol')) == 1, 20, 'the copy to finish')
        assert server.proc.poll() is None
        with smtplib.LMTP(str(setup.socket)) as c2:
            c2.ehlo('client.example.net')
            _, after = lmtp_send(c2, SENDER, ['carol@example.org'], MESSAGE)
            assert [code for code, _ in after] == [250]
        assert len(setup.mbox('carol')) == 2
    finally:
        server.stop()
    assert server.proc.returncode == 0
    assert ' error: ' not in server.log() and 'AddressSanitizer' not in server.log()


def test_stop_waits_for_deliveries_under_way(setup):
    setup.write(lock_timeout='60s')
    server = Server(setup).start()
    try:
        busy, lock = _held_mbox_delivery(setup, server)
        idle = Lmtp(setup.socket)
        idle.greet()
        server.proc.send_signal(signal.SIGTERM)
        # The idle session is told at once; the busy one gets its reply
        # once the copy is durable, then 421 and the end.
        code, lines = idle.reply()
        assert code == 421, lines
        assert server.proc.poll() is None
        lock.unlink()
        code, lines = busy.reply()
        assert code == 250, lines
        assert busy.reply()[0] == 421
        assert server.proc.wait(20) == 0
        assert len(setup.mbox('carol')) == 1
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert 'AddressSanitizer' not in server.log()

# --- yubin-master and kill -9 ---------------------------------------------------

def open_spool_sizes(pid):
    """Sizes of the deleted (nameless) files daemon `pid` holds open."""
    sizes = []
    fd_dir = f'/proc/{pid}/fd'
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f'{fd_dir}/{fd}')
            if 'mdad-tmp' in target:
                sizes.append(os.stat(f'{fd_dir}/{fd}').st_size)
        except OSError:
            pass
    return sizes


def test_under_master_kill_9_mid_data_leaves_nothing(setup, instance):
    instance.link_daemon('mdad', setup.exe)
    instance.start_master()
    d = instance.wait_daemon('mdad')
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        _, after = lmtp_send(c, SENDER, ['bob@example.org', 'carol@example.org'], MESSAGE)
        assert [code for code, _ in after] == [250, 250]
    wait_for(lambda: instance.daemon('mdad')['sessions'] == 0, 10, 'the session to end')

    # A large message, streamed but never finished: mdad is killed while it
    # is receiving it.
    c = Lmtp(setup.socket)
    c.greet()
    c.send('MAIL FROM:<a@example.net>\r\nRCPT TO:<bob@example.org>\r\n'
           'RCPT TO:<carol@example.org>\r\nDATA\r\n')
    assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
    c.send(b'Subject: big\r\n\r\n')
    line = b'y' * 998 + b'\r\n'
    sent = 0
    while sent < 8 << 20 and max(open_spool_sizes(d['pid']), default=0) < 4 << 20:
        c.send(line * 256)
        sent += len(line) * 256
    wait_for(lambda: max(open_spool_sizes(d['pid']), default=0) >= 1 << 20, 10,
             'mdad to spool part of the message')
    os.kill(d['pid'], signal.SIGKILL)
    c.close()
    new = instance.wait_daemon('mdad', not_pid=d['pid'])

    assert len(setup.maildir_files('bob')) == 1
    assert setup.maildir_files('bob', 'tmp') == []
    assert setup.spool_files() == []
    assert len(setup.mbox('carol')) == 1  # still parses, nothing half-written

    # The restarted daemon delivers again.
    with smtplib.LMTP(str(setup.socket)) as c:
        c.ehlo('client.example.net')
        _, after = lmtp_send(c, SENDER, ['bob@example.org', 'carol@example.org'], MESSAGE)
        assert [code for code, _ in after] == [250, 250]
    assert len(setup.maildir_files('bob')) == 2
    assert [m for _, m in setup.mbox('carol')] == [trace(SENDER, 'carol@example.org') + lf(MESSAGE)] * 2
    assert new['restarts'] == 1


# --- the delivery command ------------------------------------------------------------

def test_lda_delivers_and_strips_what_the_mta_prepended(setup):
    # What Postfix's local(8) hands a mailbox_command.
    prepended = (b'From bob@example.net  Thu Jan  1 00:00:00 2026\n'
                 b'Return-Path: <bob@example.net>\n'
                 b'X-Original-To: info@example.org\n'
                 b'Delivered-To: dave@example.org\n')
    message = b'Received: from x\nSubject: lda\n\nFrom inside\nbody\n'
    r = setup.lda('-d', 'dave@example.org', '-a', 'info@example.org', input=prepended + message)
    assert r.returncode == 0, r.stderr
    r = setup.lda('-d', 'dave', '-f', '', input=MESSAGE)  # CRLF input, bare local part
    assert r.returncode == 0, r.stderr
    r = setup.lda('-d', 'carol@example.org', '-f', 'x@example.net', input=message)
    assert r.returncode == 0, r.stderr
    assert sorted(setup.maildir_messages('dave')) == sorted([
        trace('bob@example.net', 'dave@example.org') + b'X-Original-To: info@example.org\n'
        + message,
        trace('', 'dave@example.org') + lf(MESSAGE)])
    assert [m for _, m in setup.mbox('carol')] == [trace('x@example.net', 'carol@example.org')
                                                   + message]
    if is_root():
        st = os.stat(setup.mbox_path('carol'))
        assert st.st_uid == pwd.getpwnam('nobody').pw_uid  # root dropped to [mdad] user
    assert setup.spool_files() == []


@pytest.mark.parametrize('name,args,message,code,err', [
    ('unknown user', ['-d', 'ghost@example.org'], MESSAGE, 67, '550 5.1.1'),
    ('remote only', ['-d', 'away@example.org'], MESSAGE, 67, '550 5.1.1'),
    ('bad recipient', ['-d', 'a b@example.org'], MESSAGE, 65, 'bad recipient'),
    ('bad sender', ['-d', 'bob', '-f', 'not an address'], MESSAGE, 65, 'bad sender'),
    ('NUL in header', ['-d', 'bob'], b'Subject: a\0b\n\nbody\n', 65, '554 5.6.0'),
    ('empty', ['-d', 'bob'], b'', 65, '554 5.6.0'),
    ('only a From_ line', ['-d', 'bob'], b'From x Thu Jan  1 00:00:00 2026\n', 65, '554 5.6.0'),
    ('loop', ['-d', 'bob'], b'Received: x\nDelivered-To: bob@example.org\n\nb\n', 65, '554 5.4.6'),
    ('unwritable mailbox', ['-d', 'locked@example.org'], MESSAGE, 75, '451 4.3.0'),
    ('usage', ['-d', 'bob', 'extra'], MESSAGE, 64, 'unexpected argument'),
])
def test_lda_exit_codes(setup, name, args, message, code, err):
    r = setup.lda(*args, input=message)
    assert r.returncode == code, r.stderr
    assert err in r.stderr.decode(), r.stderr
    assert setup.maildir_messages('bob') == []
    assert setup.spool_files() == []


def test_lda_quota_and_size(setup):
    big = b'Subject: big\n\n' + b'x' * 2000 + b'\n'
    assert setup.lda('-d', 'full@example.org', input=big).returncode == 73
    setup.write(quota_temporary=True, max_message_size='1k')
    # Within max_message_size, over the quota once the two trace fields are added.
    r = setup.lda('-d', 'full@example.org', input=b'Subject: s\n\n' + b'x' * 1000 + b'\n')
    assert r.returncode == 75 and b'452 4.2.2' in r.stderr, r.stderr
    r = setup.lda('-d', 'bob@example.org', input=big)
    assert r.returncode == 65 and b'552 5.3.4' in r.stderr, r.stderr
    assert setup.maildir_messages('full') == [] and setup.maildir_messages('bob') == []


def test_lda_config_errors(setup, instance):
    bad = instance.dir / 'bad.conf'
    bad.write_text('version = 1\n[global]\nbogus = 1\n')
    r = setup.lda('-d', 'bob', conf=bad, input=MESSAGE)
    assert r.returncode == 78 and b'unknown key' in r.stderr, r.stderr
    r = setup.lda('-d', 'bob', conf=instance.dir / 'missing.conf', input=MESSAGE)
    assert r.returncode == 78, r.stderr


def test_help_lists_both_uses(setup):
    r = subprocess.run([str(setup.exe), '--help'], capture_output=True, text=True)
    assert r.returncode == 0
    for opt in ('-c file', '-f ', '--version', '-d address', '-f sender', '-a '):
        assert opt in r.stdout


# --- yubinctl convert ------------------------------------------------------------------

def test_yubinctl_convert_round_trip(setup, instance):
    r = instance.ctl('--help')
    if 'convert mbox2maildir' not in r.stdout:
        pytest.skip('yubinctl is built without the convert command')
    bodies = [b'Subject: c%d\n\nFrom a body line\n>From quoted\nn=%d\n' % (i, i) for i in range(4)]
    for i, b in enumerate(bodies):
        r = setup.lda('-d', 'carol@example.org', '-f', f's{i}@example.net', input=b)
        assert r.returncode == 0, r.stderr
    mbox = setup.mbox_path('carol')
    original = mbox.read_bytes()
    maildir = instance.dir / 'converted' / 'Maildir'
    r = instance.ctl('convert', 'mbox2maildir', str(mbox), str(maildir))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('converted 4 messages')
    # In conversion order: by the Q<n> counter (the M<usec> part is not
    # zero-padded, so the names do not sort as text).
    files = sorted((maildir / 'new').iterdir(),
                   key=lambda p: int(re.search(r'Q(\d+)\.', p.name).group(1)))
    assert [p.read_bytes() for p in files] == [trace(f's{i}@example.net', 'carol@example.org') + b
                                               for i, b in enumerate(bodies)]
    back = instance.dir / 'back.mbox'
    r = instance.ctl('convert', 'maildir2mbox', str(maildir), str(back))
    assert r.returncode == 0, r.stderr
    assert back.read_bytes() == original
    assert mbox.read_bytes() == original  # the source is untouched

    r = instance.ctl('convert', 'maildir2mbox', str(instance.dir / 'nope'), str(back))
    assert r.returncode == 1 and 'not a Maildir' in r.stderr
    r = instance.ctl('convert', 'mbox2maildir', str(mbox))
    assert r.returncode == 2 and 'usage: yubinctl convert' in r.stderr
