"""mtad end to end: the real SMTP server on a loopback port, driven by real
clients (smtplib, swaks, raw sockets, the dialogs in dialogs/), with every
accepted message checked in the queue through `yubinctl queue list --json`
and a reader of the queue file format (docs/queue.md).

mtad runs alone (`mtad -f -c CONF`, binding [mtad] listen itself) except in
the durability test, where yubin-master runs it and restarts it after
kill -9. As root the daemon runs as nobody and the spool belongs to nobody.
"""

import hashlib
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import struct
import subprocess
import time
import zlib
from pathlib import Path

import pytest

import dialog
import queue_files
from conftest import is_root, wait_for
from standalone import Daemon

HOST = 'mx.example.org'
LOCAL_USERS = ('bob@example.org', 'alice@example.org')
DIALOGS = sorted((Path(__file__).parent / 'dialogs').glob('*.txt'))
QUEUE_ID = r'[0-9a-hjkmnp-tv-z]{16}'


# --- the queue file, read as docs/queue.md describes it ----------------------

def parse_queue_file(data):
    """bytes of a version 1, 2 or 3 queue file -> (envelope records, message
    bytes). Records: a list of (key, value bytes) in file order. Versions 2
    and 3 end with a trailer, checked here independently of mtad's code: its
    length and BLAKE2b-256(header + inner), inner = the CRC-32 (version 3,
    4 bytes big-endian) or the BLAKE2b-256 (version 2) of envelope + message."""
    assert len(data) >= 46, 'shorter than the header'
    header = data[:46]
    m = re.fullmatch(rb'yubin-queue ([123]) (\d{10}) (\d{20})\n', header)
    assert m, f'bad header {header!r}'
    env_len, msg_len = int(m.group(2)), int(m.group(3))
    if m.group(1) != b'1':
        t = re.fullmatch(rb'yubin-end (\d{20}) ([0-9a-f]{64})\n', data[-96:])
        assert t, f'bad trailer {data[-96:]!r}'
        data = data[:-96]
        assert int(t.group(1)) == len(data), 'trailer length disagrees with the file'
        if m.group(1) == b'3':
            inner = zlib.crc32(data[46:]).to_bytes(4, 'big')
        else:
            inner = hashlib.blake2b(data[46:], digest_size=32).digest()
        assert hashlib.blake2b(header + inner, digest_size=32).hexdigest() == \
            t.group(2).decode(), 'checksum mismatch'
    assert len(data) == 46 + env_len + msg_len, 'file size disagrees with the header'
    env = data[46:46 + env_len]
    records = []
    i = 0
    while i < len(env):
        sp = env.index(b' ', i)
        colon = env.index(b':', sp)
        key = env[i:sp].decode()
        n = int(env[sp + 1:colon])
        value = env[colon + 1:colon + 1 + n]
        assert env[colon + 1 + n:colon + 2 + n] == b'\n', f'record {key} not ended by LF'
        records.append((key, value))
        i = colon + 2 + n
    return records, data[46 + env_len:]


# --- a raw SMTP client ---------------------------------------------------------

class Client:
    """A plain socket speaking SMTP, for what smtplib will not do (bare LF,
    pipelining, injection). reply() returns (code, [lines])."""

    def __init__(self, port, timeout=10.0):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=timeout)
        self.timeout = timeout
        self.buf = b''

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        deadline = time.monotonic() + self.timeout
        while b'\n' not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f'no reply line (have {self.buf!r})')
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b''
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
                assert not lines, f'connection closed inside a reply: {lines}'
                return None, []
            lines.append(line)
            if len(line) < 4 or line[3] != '-':
                return int(line[:3]), lines

    def cmd(self, text):
        self.send(text + '\r\n')
        return self.reply()

    def expect(self, prefix):
        code, lines = self.reply()
        assert lines and lines[-1].startswith(prefix), f'expected {prefix!r}, got {lines}'
        return lines

    def greet(self, helo='client.example.net'):
        self.expect('220 ')
        return self.cmd(f'EHLO {helo}')

    def closed(self):
        """True if the server closed the connection (EOF, nothing more)."""
        return self.line() is None

    def nothing_pending(self, wait=0.3):
        """No bytes arrive within `wait` seconds (used after a NOOP's reply,
        so nothing is expected; a short bound, not a sleep for a state)."""
        self.sock.settimeout(wait)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return self.buf == b''
        self.buf += data
        return False

    def starttls(self):
        code, lines = self.cmd('STARTTLS')
        assert code == 220, lines
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        assert self.buf == b''
        self.sock = ctx.wrap_socket(self.sock, server_hostname=HOST)
        return self.sock


# --- the server ------------------------------------------------------------------

class Mtad(Daemon):
    """mtad alone: it binds [mtad] listen itself."""

    def __init__(self, inst, binary, port):
        super().__init__(inst, binary, 'mtad', self._ready, timeout=20)
        self.port = port
        self.spool = inst.dir / 'spool'

    def _ready(self):
        return 'listening on 127.0.0.1:' in self.log() and self._greets()

    def _greets(self):
        c = Client(self.port, timeout=5)
        try:
            ok = (c.line() or '').startswith('220 ')
            c.send('QUIT\r\n')
            return ok
        finally:
            c.close()

    def client(self, **kw):
        return Client(self.port, **kw)

    # The queue, as the admin sees it.
    def queue(self):
        r = self.inst.ctl('queue', 'list', '--json')
        assert r.returncode == 0, r.stderr
        doc = json.loads(r.stdout)
        assert doc['version'] == 1
        return doc['messages']

    def queue_ids(self):
        return [m['id'] for m in self.queue()]

    def queue_file(self, qid):
        return parse_queue_file((self.spool / 'queue' / qid).read_bytes())

    def tmp_files(self):
        d = self.spool / 'tmp'
        return sorted(os.listdir(d)) if d.exists() else []

    def partial_files(self):
        """Paths of messages being received or left unfinished by a crash:
        files in tmp/ (a message that got no spare) and files in queue/ with
        bytes but no trailer (a message written into a spare)."""
        return ([self.spool / 'tmp' / n for n in self.tmp_files()]
                + queue_files.partial(self.spool / 'queue'))


def make_cert(inst, binary_finder):
    cert, key = inst.dir / 'etc/cert.pem', inst.dir / 'etc/key.pem'
    mk = inst.build_dir / 'tests/testd/yubin-test-mkcert'
    if mk.exists():
        subprocess.run([str(mk), str(cert), str(key), HOST], check=True, capture_output=True)
    else:
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:P-256', '-nodes', '-keyout', str(key), '-out', str(cert),
                        '-days', '2', '-subj', f'/CN={HOST}'], check=True, capture_output=True)
    os.chmod(key, 0o600)  # read by the skeleton before the privilege drop
    return cert, key


def configure(inst, port, binary_finder, mtad_keys=None, catchall=None, tls=True):
    """Users, aliases, certificate and config for an mtad on 127.0.0.1:port."""
    (inst.dir / 'etc/users').write_text(''.join(f'{u}:*:::\n' for u in LOCAL_USERS))
    (inst.dir / 'etc/aliases').write_text('postmaster@example.org: bob@example.org\n')
    for f in ('users', 'aliases'):
        os.chmod(inst.dir / 'etc' / f, 0o640)
    # Nothing listens on lmtp_socket: the queue manager's deliveries fail
    # temporarily and wait an hour, so every accepted message stays queued
    # for the test to inspect.
    keys = {'listen': f'127.0.0.1:{port}', 'max_message_size': '1M',
            'lmtp_socket': str(inst.run_dir / 'no-mdad-here'), 'retry_min': '1h'}
    who = inst.run_as()
    if who:
        keys['user'], keys['group'] = who
        pw = __import__('pwd').getpwnam(who[0])
        for f in ('users', 'aliases'):
            os.chown(inst.dir / 'etc' / f, 0, pw.pw_gid)
        os.chown(inst.dir / 'spool', pw.pw_uid, pw.pw_gid)
    if catchall:
        keys['catchall'] = catchall
    keys.update(mtad_keys or {})
    glob = {}
    if tls:
        cert, key = make_cert(inst, binary_finder)
        glob = {'tls_cert': str(cert), 'tls_key': str(key)}
    inst.write_config({'global': glob, 'mtad': keys})


@pytest.fixture
def start_mtad(instance, binary, free_port):
    """start_mtad(mtad_keys=None, catchall=None, tls=True) -> a running Mtad."""
    exe = binary('mtad/mtad')
    binary('ctl/yubinctl')
    servers = []

    def start(mtad_keys=None, catchall=None, tls=True):
        port = free_port()
        configure(instance, port, binary, mtad_keys, catchall, tls)
        m = Mtad(instance, exe, port)
        m.start()
        servers.append(m)
        return m

    yield start
    for m in servers:
        try:
            m.stop()
        except subprocess.TimeoutExpired:
            m.kill9()


@pytest.fixture
def mtad(start_mtad):
    return start_mtad()


def send_message(port, body, rcpts=('bob@example.org',), sender='alice@example.net'):
    """One message through smtplib; returns the queue ID from the 250."""
    with smtplib.SMTP('127.0.0.1', port, local_hostname='client.example.net', timeout=10) as s:
        s.ehlo()
        code, _ = s.mail(sender)
        assert code == 250
        for r in rcpts:
            code, text = s.rcpt(r)
            assert code == 250, text
        code, text = s.data(body)
        assert code == 250, text
    m = re.fullmatch(rb'2\.0\.0 Ok: queued as (' + QUEUE_ID.encode() + rb')', text)
    assert m, text
    return m.group(1).decode()


def split_received(message):
    """message bytes -> (dict of the Received: fields, the bytes after it)."""
    m = re.match(
        rb'Received: from (?P<helo>\S+) \(\[(?P<ip>[0-9.]+)\]\)\r\n'
        rb'\tby (?P<by>\S+) \(Yubin [^)\r\n]+\) with (?P<proto>E?SMTPS?) id (?P<id>' + QUEUE_ID.encode() + rb')'
        rb'(?:\r\n\t\((?P<tls>[^)\r\n]*)\))?'
        rb'(?:\r\n\tfor (?P<for><[^>\r\n]*>))?'
        rb';\r\n\t(?P<date>[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} [+-]\d{4})\r\n',
        message)
    assert m, f'no Received: header of ours at the start: {message[:300]!r}'
    return {k: (v.decode() if v is not None else None) for k, v in m.groupdict().items()}, message[m.end():]


# --- delivery into the queue ------------------------------------------------------

def test_smtplib_message_is_queued_byte_exact(mtad):
    body = ('From: Alice <alice@example.net>\r\n'
            'To: bob@example.org\r\n'
            'Subject: gr\u00fc\u00dfe\r\n'
            '\r\n'
            '.a line that starts with a dot\r\n'
            '..and one with two\r\n'
            '.\tdot tab\r\n'
            'tail without dots\r\n').encode('utf-8')
    qid = send_message(mtad.port, body)

    entries = {m['id']: m for m in mtad.queue()}
    assert list(entries) == [qid]
    e = entries[qid]
    # 'deferred' once the queue manager has tried mdad (not running here).
    assert e['area'] == 'queue' and e['status'] in ('queued', 'deferred')
    assert e['sender'] == 'alice@example.net'
    assert e['client'] == '127.0.0.1'
    assert [r['address'] for r in e['recipients']] == ['bob@example.org']
    assert e['recipients'][0]['status'] in ('pending', 'deferred')

    records, message = mtad.queue_file(qid)
    rec = dict(records)
    assert [k for k, _ in records] == ['time', 'from', 'null', 'ret', 'envid', 'body', 'utf8',
                                       'client', 'helo', 'auth', 'rcpts', 'to', 'notify', 'otype',
                                       'orcpt']
    assert rec['from'] == b'alice@example.net' and rec['null'] == b'0'
    assert rec['client'] == b'127.0.0.1' and rec['helo'] == b'client.example.net'
    assert rec['rcpts'] == b'1' and rec['to'] == b'bob@example.org'
    assert abs(int(rec['time']) - time.time()) < 120
    assert e['size'] == len(message)

    fields, rest = split_received(message)
    assert fields['helo'] == 'client.example.net' and fields['ip'] == '127.0.0.1'
    assert fields['by'] == HOST and fields['proto'] == 'ESMTP' and fields['id'] == qid
    assert fields['for'] == '<bob@example.org>' and fields['tls'] is None
    # smtplib dot-stuffed the lines starting with '.'; the queue holds them
    # unstuffed, byte for byte.
    assert rest == body


def test_queue_list_text(mtad):
    qid = send_message(mtad.port, b'Subject: listed\r\n\r\nhello\r\n',
                       rcpts=('bob@example.org', 'alice@example.org'))
    r = mtad.inst.ctl('queue', 'list')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith('-Queue ID-')
    size = len(mtad.queue_file(qid)[1])
    assert re.fullmatch(rf'{qid}\s+{size} \d{{4}}-\d\d-\d\d \d\d:\d\d:\d\d\s+\d+[smhd]\S*\s+'
                        r'alice@example\.net', lines[1]), lines[1]
    assert lines[2].strip() == 'bob@example.org'
    assert 'alice@example.org' in r.stdout
    assert lines[-1] == '-- 1 Kbytes in 1 Request.'


def test_queue_list_refused_to_another_user(mtad, system_user):
    send_message(mtad.port, b'Subject: private\r\n\r\nx\r\n')
    r = mtad.inst.ctl('queue', 'list', '--json', user=system_user)
    assert r.returncode == 1
    assert r.stdout == ''
    assert 'cannot read the queue in' in r.stderr and 'Permission denied' in r.stderr


def test_two_recipients_and_null_sender(mtad):
    body = b'Subject: bounce\r\n\r\nreturned\r\n'
    with smtplib.SMTP('127.0.0.1', mtad.port, local_hostname='relay.example.net', timeout=10) as s:
        s.ehlo()
        assert s.mail('<>')[0] == 250
        assert s.rcpt('bob@example.org', ['NOTIFY=FAILURE,DELAY'])[0] == 250
        assert s.rcpt('<Postmaster>')[0] == 250
        code, text = s.data(body)
    assert code == 250
    qid = re.search(QUEUE_ID.encode(), text).group().decode()
    (e,) = mtad.queue()
    assert e['id'] == qid and e['sender'] == ''
    assert [r['address'] for r in e['recipients']] == ['bob@example.org', 'postmaster@example.org']
    records, message = mtad.queue_file(qid)
    assert dict(records)['null'] == b'1'
    assert [v for k, v in records if k == 'notify'] == [b'12', b'0']
    fields, rest = split_received(message)
    assert fields['for'] is None  # two recipients: no "for" clause
    assert rest == body


def run_swaks(port, *extra, body='swaks body line\n'):
    if not shutil.which('swaks'):
        pytest.skip('swaks is not installed')
    r = subprocess.run(['swaks', '--server', f'127.0.0.1:{port}', '--to', 'bob@example.org',
                        '--from', 'alice@example.net', '--helo', 'swaks.example.net',
                        '--header', 'Subject: via swaks', '--body', body, '--timeout', '10',
                        *extra], capture_output=True, text=True, timeout=60)
    return r


def test_swaks_plain(mtad):
    r = run_swaks(mtad.port, body='plain body')
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r'<-  250 2\.0\.0 Ok: queued as (' + QUEUE_ID + ')', r.stdout)
    assert m, r.stdout
    assert '<-  221 2.0.0 Bye' in r.stdout
    qid = m.group(1)
    assert mtad.queue_ids() == [qid]
    fields, rest = split_received(mtad.queue_file(qid)[1])
    assert fields['proto'] == 'ESMTP' and fields['tls'] is None
    assert fields['helo'] == 'swaks.example.net'
    assert b'Subject: via swaks\r\n' in rest and b'\r\n\r\nplain body\r\n' in rest


def test_swaks_starttls(mtad):
    r = run_swaks(mtad.port, '--tls', body='secret body')
    assert r.returncode == 0, r.stdout + r.stderr
    assert '<-  220 2.0.0 Ready to start TLS' in r.stdout
    assert '=== TLS started with cipher' in r.stdout
    m = re.search(r'<~  250 2\.0\.0 Ok: queued as (' + QUEUE_ID + ')', r.stdout)
    assert m, r.stdout
    # The 221 to QUIT must arrive through TLS before the connection closes.
    assert '<~  221 2.0.0 Bye' in r.stdout, r.stdout
    qid = m.group(1)
    fields, rest = split_received(mtad.queue_file(qid)[1])
    assert fields['proto'] == 'ESMTPS'
    assert re.fullmatch(r'TLSv1\.[23] [A-Z0-9_-]+ \d+/\d+', fields['tls']), fields['tls']
    cipher = re.search(r'=== TLS started with cipher (\S+):(\S+):(\d+)', r.stdout)
    assert cipher and fields['tls'].startswith(cipher.group(1) + ' ' + cipher.group(2))
    assert b'\r\n\r\nsecret body\r\n' in rest


# --- capabilities ------------------------------------------------------------------

def test_ehlo_capabilities(mtad):
    c = mtad.client()
    code, lines = c.greet()
    assert code == 250
    assert lines == [f'250-{HOST}', '250-PIPELINING', '250-SIZE 1048576', '250-8BITMIME',
                     '250-ENHANCEDSTATUSCODES', '250-SMTPUTF8', '250-CHUNKING', '250-DSN',
                     '250 STARTTLS']
    c.starttls()
    code, lines = c.cmd('EHLO client.example.net')
    assert code == 250
    assert 'STARTTLS' not in ' '.join(lines)  # RFC 3207 §4.2: not offered again
    assert lines[-1] == '250 DSN'
    assert c.cmd('QUIT') == (221, ['221 2.0.0 Bye'])
    assert c.closed()


def test_no_starttls_without_certificate(start_mtad):
    m = start_mtad(tls=False)
    c = m.client()
    code, lines = c.greet()
    assert lines[-1] == '250 DSN' and not any('STARTTLS' in l for l in lines)
    assert c.cmd('STARTTLS')[1] == ['502 5.5.1 Error: STARTTLS not available']


# --- SMTP smuggling ------------------------------------------------------------------

SMUGGLED = (b'MAIL FROM:<evil@attacker.example>\r\n'
            b'RCPT TO:<alice@example.org>\r\n'
            b'DATA\r\n'
            b'From: ceo@example.org\r\n\r\nsmuggled\r\n'
            b'.\r\n')
SEPARATORS = {
    'lf-dot-lf': b'\n.\n',
    'lf-dot-crlf': b'\n.\r\n',
    'cr-dot-cr': b'\r.\r',
    'cr-dot-crlf': b'\r.\r\n',
    'crlf-dot-lf': b'\r\n.\n',
    'crlf-dot-cr': b'\r\n.\r',
}


def smuggle(c, sep):
    """One DATA whose content holds `sep` and a smuggled transaction, all in
    one write after the 354. Returns the replies up to a NOOP's."""
    assert c.greet()[0] == 250
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    c.expect('250 2.1.0')
    c.expect('250 2.1.5')
    c.expect('354 ')
    c.send(b'Subject: real\r\n\r\nreal body' + sep + SMUGGLED + b'NOOP\r\n')
    replies = []
    while True:
        code, lines = c.reply()
        assert code is not None, f'closed after {replies}'
        replies.append(lines[-1])
        if lines[-1] == '250 2.0.0 Ok':  # the NOOP's: everything before was answered
            break
    assert c.nothing_pending()
    return replies


@pytest.mark.parametrize('name', sorted(SEPARATORS))
def test_smuggling_rejected_by_default(mtad, name):
    """SMTP smuggling, CVE-2023-51764 (Postfix), CVE-2023-51765 (Sendmail),
    CVE-2023-51766 (Exim): a bare-LF end of data never splits one message in
    two; by default the message with bare line ends is refused."""
    c = mtad.client()
    replies = smuggle(c, SEPARATORS[name])
    # Exactly one outcome for the whole stream: the message ends at the only
    # real <CR><LF>.<CR><LF>, the one after "smuggled", and is refused.
    assert replies == [
        '550 5.6.0 Error: bare <CR> or <LF> in message data, lines must end with <CR><LF>',
        '250 2.0.0 Ok']
    assert mtad.queue() == []
    assert mtad.tmp_files() == []


@pytest.mark.parametrize('name', sorted(SEPARATORS))
def test_smuggling_normalized_is_one_message(start_mtad, name):
    """CVE-2023-51764/51765/51766 with bare_lf = normalize: one message."""
    m = start_mtad({'bare_lf': 'normalize'})
    c = m.client()
    replies = smuggle(c, SEPARATORS[name])
    assert len(replies) == 2 and replies[1] == '250 2.0.0 Ok', replies
    qid = re.fullmatch('250 2.0.0 Ok: queued as (' + QUEUE_ID + ')', replies[0]).group(1)
    (e,) = m.queue()
    assert e['id'] == qid and e['sender'] == 'alice@example.net'
    assert [r['address'] for r in e['recipients']] == ['bob@example.org']
    _, rest = split_received(m.queue_file(qid)[1])
    # The would-be commands are content of the one message, with CRLF.
    assert rest.startswith(b'Subject: real\r\n\r\nreal body\r\n')
    assert b'MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n' in rest
    assert rest.endswith(b'smuggled\r\n')


def bdat_session(c, chunks):
    """MAIL, RCPT, then the chunks (bytes, last) in one write, then NOOP."""
    assert c.greet()[0] == 250
    out = b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n'
    for data, last in chunks:
        out += f'BDAT {len(data)}{" LAST" if last else ""}\r\n'.encode() + data
    c.send(out + b'NOOP\r\n')
    replies = []
    while True:
        code, lines = c.reply()
        assert code is not None, f'closed after {replies}'
        replies.append(lines[-1])
        if lines[-1] == '250 2.0.0 Ok':
            break
    assert c.nothing_pending()
    return replies


def test_bdat_content_that_looks_like_commands_is_content(mtad):
    data = b'Subject: chunked\r\n\r\nbody\r\n.\r\n' + SMUGGLED + b'end\r\n'
    replies = bdat_session(mtad.client(), [(data[:20], False), (data[20:], True)])
    assert replies[:3] == ['250 2.1.0 Ok', '250 2.1.5 Ok', '250 2.0.0 20 octets received']
    assert re.fullmatch('250 2.0.0 Ok: queued as ' + QUEUE_ID, replies[3])
    assert replies[4:] == ['250 2.0.0 Ok']
    (e,) = mtad.queue()
    assert [r['address'] for r in e['recipients']] == ['bob@example.org']
    _, rest = split_received(mtad.queue_file(e['id'])[1])
    assert rest == data  # BDAT has no dot-stuffing: the bytes are kept as sent


@pytest.mark.parametrize('name', ['lf-dot-lf', 'cr-dot-cr', 'crlf-dot-lf'])
def test_bdat_bare_line_ending_rejected(mtad, name):
    """SMTP smuggling (CVE-2023-51764 class) through BDAT."""
    data = b'Subject: chunked\r\n\r\nbody' + SEPARATORS[name] + SMUGGLED
    replies = bdat_session(mtad.client(), [(data, True)])
    assert replies == ['250 2.1.0 Ok', '250 2.1.5 Ok',
                       '550 5.6.0 Error: bare <CR> or <LF> in message data, lines must end with <CR><LF>',
                       '250 2.0.0 Ok']
    assert mtad.queue() == []


def test_bdat_bare_line_ending_normalized(start_mtad):
    m = start_mtad({'bare_lf': 'normalize'})
    data = b'Subject: chunked\n\nbody\n.\n' + SMUGGLED
    replies = bdat_session(m.client(), [(data, True)])
    assert re.fullmatch('250 2.0.0 Ok: queued as ' + QUEUE_ID, replies[2]), replies
    (e,) = m.queue()
    _, rest = split_received(m.queue_file(e['id'])[1])
    assert rest == data.replace(b'\n', b'\r\n').replace(b'\r\r\n', b'\r\n')


# --- STARTTLS command injection (CVE-2011-0411 class) -------------------------------

@pytest.mark.parametrize('injected', [b'RSET\r\n', b'MAIL FROM:<evil@attacker.example>\r\n',
                                      b'NOOP\r\nNOOP\r\nQUIT\r\n'])
def test_starttls_injection_is_discarded(mtad, injected):
    """STARTTLS command injection, CVE-2011-0411 (Postfix) and its kin
    (CVE-2011-1430 and others, Wietse Venema's 2011 advisory)."""
    c = mtad.client()
    assert c.greet()[0] == 250
    c.send(b'STARTTLS\r\n' + injected)  # one packet
    c.expect('220 2.0.0 Ready to start TLS')
    assert c.buf == b''
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    c.sock = ctx.wrap_socket(c.sock, server_hostname=HOST)
    # Nothing answers the injected commands: the first reply inside TLS is
    # the EHLO's, and no MAIL transaction exists.
    code, lines = c.cmd('EHLO client.example.net')
    assert lines[0] == f'250-{HOST}', lines
    assert c.cmd('RCPT TO:<bob@example.org>') == (503, ['503 5.5.1 Error: need MAIL command'])
    assert c.cmd('QUIT') == (221, ['221 2.0.0 Bye'])
    assert c.closed()


# --- open relay --------------------------------------------------------------------------

@pytest.mark.parametrize('rcpt, reply', [
    ('<someone@remote.example>', '554 5.7.1 Error: relay access denied'),
    ('<someone@example.org.remote.example>', '554 5.7.1 Error: relay access denied'),
    ('<user%remote.example@example.org>', '550 5.7.1'),
    ('<"user@remote.example"@example.org>', '5'),
    # Source routes are refused by the address parser outright.
    ('<@example.org:user@remote.example>', '501 5.1.3'),
    ('<@example.org,@example.org:bob@remote.example>', '501 5.1.3'),
    ('<user!remote.example@example.org>', '550 5.7.1'),
    ('<remote.example!user@example.org>', '550 5.7.1'),
    ('<nosuchuser@example.org>', '550 5.1.1 Error: user unknown'),
    ('<bob@[127.0.0.1]>', '5'),
    ('<bob@localhost>', '554 5.7.1'),
])
def test_relay_refused(mtad, rcpt, reply):
    """The classic open-relay battery (CVE-1999-0512 class: a relay for
    anyone; `%` hack, quoted local parts, source routes, UUCP bang paths)."""
    c = mtad.client()
    assert c.greet()[0] == 250
    assert c.cmd('MAIL FROM:<alice@example.net>')[0] == 250
    code, lines = c.cmd(f'RCPT TO:{rcpt}')
    assert 500 <= code < 600 and lines[-1].startswith(reply), lines
    # The refused recipient left no transaction that DATA could use.
    assert c.cmd('DATA')[1] == ['554 5.5.1 Error: no valid recipients']
    assert mtad.queue() == []


def test_catchall_accepts_unknown_users_only_locally(start_mtad):
    m = start_mtad(catchall='bob@example.org')
    c = m.client()
    assert c.greet()[0] == 250
    assert c.cmd('MAIL FROM:<alice@example.net>')[0] == 250
    assert c.cmd('RCPT TO:<nosuchuser@example.org>') == (250, ['250 2.1.5 Ok'])
    assert c.cmd('RCPT TO:<x@remote.example>')[1] == ['554 5.7.1 Error: relay access denied']
    assert c.cmd('RCPT TO:<user%remote.example@example.org>')[0] == 550
    assert c.cmd('DATA')[0] == 354
    c.send('Subject: to anyone\r\n\r\nhi\r\n.\r\n')
    code, lines = c.reply()
    assert code == 250, lines
    (e,) = m.queue()
    assert [r['address'] for r in e['recipients']] == ['nosuchuser@example.org']


# --- limits ----------------------------------------------------------------------------------

def test_command_line_limit(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    # 2048 octets with the CRLF is the limit: accepted.
    assert c.cmd('NOOP ' + 'x' * (2048 - 7)) == (250, ['250 2.0.0 Ok'])
    assert c.cmd('NOOP ' + 'x' * (2048 - 6)) == (500, ['500 5.5.2 Error: line too long'])
    assert c.cmd('NOOP ' + 'y' * 100000) == (500, ['500 5.5.2 Error: line too long'])
    # The session goes on and the long line was not executed in pieces.
    assert c.cmd('MAIL FROM:<alice@example.net>') == (250, ['250 2.1.0 Ok'])
    assert c.nothing_pending()


def test_message_size_declared(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    code, lines = c.cmd('MAIL FROM:<alice@example.net> SIZE=1048577')
    assert lines == ['552 5.3.4 Error: message exceeds fixed maximum message size']
    assert c.cmd('MAIL FROM:<alice@example.net> SIZE=1000')[0] == 250


def test_message_size_actual_data_and_bdat(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    big = (b'x' * 998 + b'\r\n') * 1100  # 1.1 MB, over the 1 MiB limit
    c.send(b'MAIL FROM:<alice@example.net> SIZE=1000\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    c.expect('250 2.1.0')
    c.expect('250 2.1.5')
    c.expect('354')
    c.send(big + b'.\r\n')
    assert c.reply()[1] == ['552 5.3.4 Error: message exceeds fixed maximum message size']
    assert mtad.tmp_files() == []
    # BDAT: the chunk that crosses the limit fails the transaction.
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n'
           + f'BDAT {len(big)} LAST\r\n'.encode() + big)
    c.expect('250 2.1.0')
    c.expect('250 2.1.5')
    assert c.reply()[1] == ['552 5.3.4 Error: message exceeds fixed maximum message size']
    assert c.cmd('NOOP') == (250, ['250 2.0.0 Ok'])
    # Exactly at the limit is fine (the limit counts the message as received).
    exact = b'Subject: exact\r\n\r\n' + b'z' * (1048576 - 20) + b'\r\n'
    assert len(exact) == 1048576
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\n'
           + f'BDAT {len(exact)} LAST\r\n'.encode() + exact)
    c.expect('250 2.1.0')
    c.expect('250 2.1.5')
    c.expect('250 2.0.0 Ok: queued as')
    (e,) = mtad.queue()
    assert split_received(mtad.queue_file(e['id'])[1])[1] == exact


def test_recipient_limit(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    batch = b'MAIL FROM:<alice@example.net>\r\n' + b''.join(
        f'RCPT TO:<{LOCAL_USERS[i % 2]}>\r\n'.encode() for i in range(1001))
    c.send(batch)
    c.expect('250 2.1.0')
    for i in range(1000):
        assert c.reply() == (250, ['250 2.1.5 Ok']), i
    assert c.reply() == (452, ['452 4.5.3 Error: too many recipients'])
    # 452 is not held against the client; the 1000 are kept.
    assert c.cmd('DATA')[0] == 354
    c.send('Subject: many\r\n\r\nhi\r\n.\r\n')
    c.expect('250 2.0.0 Ok: queued as')
    (e,) = mtad.queue()
    assert len(e['recipients']) == 1000


def test_too_many_errors_closes(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    c.send(b''.join(b'BOGUS%d\r\n' % i for i in range(12)))
    for _ in range(10):
        assert c.reply() == (500, ['500 5.5.2 Error: command not recognized'])
    assert c.reply() == (421, [f'421 4.7.0 {HOST} Error: too many errors'])
    assert c.closed()


def test_connections_per_ip(start_mtad):
    m = start_mtad({'max_connections_per_ip': 3})

    def greeted():
        # The startup probe's connection may not be closed on the server
        # side yet: retry until a slot is free.
        c = m.client()
        if (c.line() or '').startswith('220 '):
            return c
        c.close()
        return None
    held = [wait_for(greeted, 10, 'a greeting') for _ in range(3)]
    extra = m.client()
    assert extra.reply() == (421, [f'421 4.7.0 {HOST} Error: too many connections from your '
                                   'address, try again later'])
    assert extra.closed()
    # The others are unaffected; once one leaves, a new client gets in.
    assert held[0].cmd('NOOP')[0] == 250
    assert held[0].cmd('QUIT')[0] == 221
    held[0].close()

    def admitted():
        c = m.client()
        try:
            return c.line().startswith('220 ')
        finally:
            c.close()
    wait_for(admitted, 10, 'a slot to free up')


def test_command_timeout(start_mtad):
    m = start_mtad({'command_timeout': '2s'})
    c = m.client(timeout=20)
    c.expect('220 ')
    assert c.cmd('EHLO client.example.net')[0] == 250
    t0 = time.monotonic()
    assert c.reply() == (421, [f'421 4.4.2 {HOST} Error: timeout exceeded'])
    elapsed = time.monotonic() - t0
    assert 1.5 <= elapsed < 15, elapsed
    assert c.closed()


def test_data_timeout_leaves_nothing(start_mtad):
    m = start_mtad({'data_timeout': '2s'})
    c = m.client(timeout=20)
    assert c.greet()[0] == 250
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        c.expect(p)
    c.send(b'Subject: half\r\n\r\nhalf a message')
    assert c.reply() == (421, [f'421 4.4.2 {HOST} Error: timeout exceeded'])
    assert c.closed()
    wait_for(lambda: m.tmp_files() == [], 10, 'tmp/ to be cleaned')
    assert m.queue() == []


def test_max_connections_total(start_mtad):
    m = start_mtad({'max_connections': 2})

    def greeted():
        c = m.client()
        if (c.line() or '').startswith('220 '):
            return c
        c.close()
        return None
    held = [wait_for(greeted, 10, 'a greeting') for _ in range(2)]
    extra = m.client()
    assert extra.reply() == (421, [f'421 4.7.0 {HOST} Error: too many connections, try again later'])
    assert extra.closed()
    assert held[1].cmd('NOOP')[0] == 250


@pytest.mark.parametrize('how', ['close', 'reset'])
def test_client_gone_in_the_middle_of_data_leaves_nothing(mtad, how):
    """A client that closes (FIN) or resets (RST) its connection with 200 KB
    of a message sent (past the write buffer, through the read-ahead): no
    message, no partial file, and the next client is served."""
    c = mtad.client()
    assert c.greet()[0] == 250
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        c.expect(p)
    c.send(b'Subject: cut\r\n\r\n' + b'q' * 200000)
    wait_for(lambda: mtad.partial_files(), 10, 'the message on disk')
    if how == 'reset':
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
    c.close()
    wait_for(lambda: mtad.partial_files() == [], 10, 'the partial file to be removed')
    assert mtad.queue() == []
    assert 'disconnect session=' in mtad.log()
    qid = send_message(mtad.port, b'Subject: after\r\n\r\nstill here\r\n')
    assert mtad.queue_ids() == [qid]


def test_starttls_without_handshake_is_dropped(start_mtad):
    # A client that asks for TLS and then says nothing: the command timeout
    # fires, the 421 cannot be sent in clear, and the connection must still
    # be closed rather than kept forever.
    m = start_mtad({'command_timeout': '2s'})
    c = m.client(timeout=40)
    assert c.greet()[0] == 250
    assert c.cmd('STARTTLS') == (220, ['220 2.0.0 Ready to start TLS'])
    t0 = time.monotonic()
    c.sock.settimeout(40)
    rest = b''
    while True:
        try:
            chunk = c.sock.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        rest += chunk
    assert time.monotonic() - t0 < 30
    assert b'421' not in rest  # nothing in clear after the 220


def test_smtputf8_and_dsn_parameters_are_recorded(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    assert c.cmd('MAIL FROM:<\u00fcser@example.net>')[1] == [
        '553 5.6.7 Error: non-ASCII address requires SMTPUTF8']
    assert c.cmd('MAIL FROM:<\u00fcser@example.net> SMTPUTF8 BODY=8BITMIME RET=HDRS '
                 'ENVID=QQ+2B314159')[0] == 250
    assert c.cmd('RCPT TO:<bob@example.org> NOTIFY=SUCCESS,FAILURE '
                 'ORCPT=rfc822;bob+2Bx@example.org')[0] == 250
    assert c.cmd('DATA')[0] == 354
    c.send('Subject: \u00e9t\u00e9\r\n\r\n\u00e7a va\r\n.\r\n'.encode())
    qid = re.search(QUEUE_ID, c.reply()[1][-1]).group()
    (e,) = mtad.queue()
    assert e['id'] == qid and e['sender'] == '\u00fcser@example.net'
    rec = dict(mtad.queue_file(qid)[0])
    assert rec['utf8'] == b'1' and rec['body'] == b'8BITMIME' and rec['ret'] == b'HDRS'
    assert rec['envid'] == b'QQ+314159'  # xtext-decoded
    assert rec['notify'] == b'6' and rec['otype'] == b'rfc822'
    assert rec['orcpt'] == b'bob+x@example.org'
    assert split_received(mtad.queue_file(qid)[1])[1] == (
        'Subject: \u00e9t\u00e9\r\n\r\n\u00e7a va\r\n'.encode())


def test_sigterm_lets_the_transaction_finish(start_mtad):
    m = start_mtad()
    idle = m.client()
    assert idle.greet()[0] == 250
    busy = m.client()
    assert busy.greet()[0] == 250
    busy.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        busy.expect(p)
    # More than mtad's write buffer (128 KiB), so bytes reach the file.
    first_half = b'Subject: last one\r\n\r\nfirst half\r\n' + (b'f' * 200 + b'\r\n') * 1000
    busy.send(first_half)
    wait_for(lambda: m.partial_files(), 10, 'the message on disk')
    m.proc.send_signal(signal.SIGTERM)
    # The idle session is told at once; the busy one finishes its message.
    assert idle.reply() == (421, [f'421 4.3.2 {HOST} Service shutting down'])
    assert idle.closed()
    busy.send(b'second half\r\n.\r\n')
    qid = re.fullmatch('250 2.0.0 Ok: queued as (' + QUEUE_ID + ')', busy.reply()[1][-1]).group(1)
    assert busy.reply() == (421, [f'421 4.3.2 {HOST} Service shutting down'])
    assert busy.closed()
    assert m.proc.wait(15) == 0
    assert split_received(m.queue_file(qid)[1])[1] == first_half + b'second half\r\n'


def test_reload_applies_to_new_sessions(start_mtad):
    m = start_mtad()
    old = m.client()
    assert old.greet()[0] == 250
    m.inst.write_config({'mtad': {'catchall': 'bob@example.org', 'max_message_size': '2M'}})
    m.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: 'reloaded' in m.log(), 10, 'the reload')
    new = m.client()
    code, lines = new.greet()
    assert '250-SIZE 2097152' in lines
    assert new.cmd('MAIL FROM:<alice@example.net>')[0] == 250
    assert new.cmd('RCPT TO:<nosuchuser@example.org>')[0] == 250
    # The session opened before keeps the limits it was given.
    assert old.cmd('MAIL FROM:<alice@example.net> SIZE=1500000')[0] == 552


def test_queue_write_failure_is_a_temporary_error(start_mtad):
    # tmp/ and queue/ not writable for the daemon from its start: it can
    # make no spare, and the message cannot be created in tmp/ either (by
    # the committer, for a message that fits mtad's write buffer). The
    # client sends the whole message and gets 451, never a 250, and the
    # session goes on.
    mtad = start_mtad()
    mtad.stop()
    dirs = [mtad.spool / 'tmp', mtad.spool / 'queue']
    modes = [d.stat().st_mode for d in dirs]
    for d in dirs:
        d.chmod(0o500)
    try:
        mtad.start()
        c = mtad.client()
        assert c.greet()[0] == 250
        c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
        for p in ('250', '250', '354'):
            c.expect(p)
        c.send(b'Subject: nowhere\r\n\r\n' + b'n' * 100000 + b'\r\n.\r\n')
        assert c.reply()[1] == ['451 4.3.0 Error: local error in processing, try again later']
    finally:
        for d, mode in zip(dirs, modes):
            d.chmod(mode & 0o7777)
    assert mtad.queue() == []
    assert 'queue commit failed' in mtad.log()
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        c.expect(p)
    c.send(b'Subject: again\r\n\r\nagain\r\n.\r\n')
    c.expect('250 2.0.0 Ok: queued as')
    assert len(mtad.queue()) == 1


def test_failed_tls_handshake_frees_the_slot(start_mtad):
    m = start_mtad({'max_connections_per_ip': 1})

    def greeted():
        c = m.client()
        if (c.line() or '').startswith('220 '):
            return c
        c.close()
        return None
    for attempt in range(3):
        c = wait_for(greeted, 10, 'a greeting')
        assert c.cmd('EHLO client.example.net')[0] == 250
        assert c.cmd('STARTTLS')[0] == 220
        c.send(b'this is not a TLS ClientHello\r\n' * 4)
        assert c.closed(), attempt
        c.close()
    # The slot is free again after each failure.
    c = wait_for(greeted, 10, 'a greeting after the failures')
    assert c.cmd('QUIT')[0] == 221


def proc_rss_kb(pid):
    text = Path(f'/proc/{pid}/status').read_text()
    return int(re.search(r'^VmRSS:\s+(\d+) kB', text, re.M).group(1))


def sanitized(exe):
    """True for an ASan build, whose allocator keeps freed memory in
    quarantine: its RSS says nothing about the program's own buffering."""
    r = subprocess.run(['ldd', str(exe)], capture_output=True, text=True)
    return 'libasan' in r.stdout


def test_memory_does_not_grow_with_message_size(start_mtad, binary):
    if sanitized(binary('mtad/mtad')):
        pytest.skip('RSS of an ASan build includes its quarantine')
    m = start_mtad({'max_message_size': '40M'})
    send_message(m.port, b'Subject: warm up\r\n\r\nx\r\n')
    before = proc_rss_kb(m.proc.pid)
    c = m.client(timeout=60)
    assert c.greet()[0] == 250
    c.send(b'MAIL FROM:<alice@example.net> SIZE=30000000\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        c.expect(p)
    line = b'b' * 998 + b'\r\n'
    peak = before
    for i in range(30):  # 30 MB in 1 MB writes
        c.send(line * 1000)
        if i % 5 == 4:
            peak = max(peak, proc_rss_kb(m.proc.pid))
    c.send(b'.\r\n')
    c.expect('250 2.0.0 Ok: queued as')
    peak = max(peak, proc_rss_kb(m.proc.pid))
    # Streamed to disk in pieces: a few MB of buffers at most, never the message.
    assert peak - before < 8 * 1024, (before, peak)
    (big,) = [e for e in m.queue() if e['size'] > 30000000]
    assert big['size'] == len(m.queue_file(big['id'])[1])


# --- pipelining ------------------------------------------------------------------------------

def test_pipelined_group_replies_in_order(mtad):
    c = mtad.client()
    c.expect('220 ')
    c.send('EHLO client.example.net\r\n'
           'MAIL FROM:<alice@example.net>\r\n'
           'RCPT TO:<bob@example.org>\r\n'
           'RCPT TO:<nosuchuser@example.org>\r\n'
           'RCPT TO:<someone@remote.example>\r\n'
           'RCPT TO:<alice@example.org>\r\n'
           'NOOP\r\n'
           'VRFY bob\r\n'
           'DATA\r\n')
    code, lines = c.reply()
    assert code == 250 and lines[0] == f'250-{HOST}'
    got = [c.reply()[1][-1] for _ in range(8)]
    assert got == ['250 2.1.0 Ok', '250 2.1.5 Ok', '550 5.1.1 Error: user unknown',
                   '554 5.7.1 Error: relay access denied', '250 2.1.5 Ok', '250 2.0.0 Ok',
                   '252 2.5.0 Cannot VRFY user, but will accept message and attempt delivery',
                   '354 End data with <CR><LF>.<CR><LF>']
    c.send('Subject: pipelined\r\n\r\nbody\r\n.\r\nRSET\r\nQUIT\r\n')
    m = re.fullmatch('250 2.0.0 Ok: queued as (' + QUEUE_ID + ')', c.reply()[1][-1])
    assert m
    assert c.reply()[1] == ['250 2.0.0 Ok']
    assert c.reply()[1] == ['221 2.0.0 Bye']
    assert c.closed()
    (e,) = mtad.queue()
    assert e['id'] == m.group(1)
    assert [r['address'] for r in e['recipients']] == ['bob@example.org', 'alice@example.org']


def test_messages_pipelined_in_one_large_write_arrive_intact(mtad):
    """Past libevent's 4,096-byte reads the connection reads ahead by itself
    (64 KiB at a time): two messages of 300 KB with dot-stuffed lines, their
    commands and QUIT, sent as one write, come out byte for byte."""
    def body(seed):
        lines = [b'Subject: read ahead %d' % seed, b'']
        for i in range(6000):
            text = hashlib.sha256(b'%d-%d' % (seed, i)).hexdigest().encode()
            # A dot at the start of every 7th line, wherever the reads split.
            lines.append((b'.' if i % 7 == 0 else b'') + text[:i % 64])
        return b'\r\n'.join(lines) + b'\r\n'

    def stuffed(b):
        return b'\r\n'.join(b'.' + x if x.startswith(b'.') else x for x in b.split(b'\r\n'))

    bodies = [body(1), body(2)]
    c = mtad.client()
    assert c.greet()[0] == 250
    c.send(b''.join(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n'
                    + stuffed(b) + b'.\r\n' for b in bodies) + b'QUIT\r\n')
    ids = []
    for _ in bodies:
        assert [c.reply()[1][-1] for _ in range(3)] == [
            '250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>']
        m = re.fullmatch('250 2.0.0 Ok: queued as (' + QUEUE_ID + ')', c.reply()[1][-1])
        assert m
        ids.append(m.group(1))
    assert c.reply()[1] == ['221 2.0.0 Bye']
    assert c.closed()
    for qid, b in zip(ids, bodies):
        _, rest = split_received(mtad.queue_file(qid)[1])
        assert rest == b


def test_starttls_injection_larger_than_a_read_is_never_executed(mtad):
    """CVE-2011-0411 with more pipelined behind STARTTLS than one read takes:
    what the server read before the handshake is dropped, the rest is not
    TLS and fails it; no injected command is ever answered or executed."""
    c = mtad.client()
    assert c.greet()[0] == 250
    injected = (b'MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<bob@example.org>\r\n'
                b'DATA\r\nSubject: injected\r\n\r\nevil\r\n.\r\n') * 2000  # 200 KB
    try:
        c.send(b'STARTTLS\r\n' + injected)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server gave up on the handshake before taking it all
    assert c.reply()[1] == ['220 2.0.0 Ready to start TLS']
    # Nothing else in clear: no reply to any injected command, then the close.
    assert c.closed()
    assert mtad.queue() == []


def test_many_transactions_in_one_write(mtad):
    c = mtad.client()
    assert c.greet()[0] == 250
    n = 25
    c.send(b''.join(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n'
                    b'Subject: %d\r\n\r\nmessage number %d\r\n.\r\n' % (i, i) for i in range(n))
           + b'QUIT\r\n')
    ids = []
    for i in range(n):
        assert c.reply()[1] == ['250 2.1.0 Ok'], i
        assert c.reply()[1] == ['250 2.1.5 Ok'], i
        assert c.reply()[0] == 354
        m = re.fullmatch('250 2.0.0 Ok: queued as (' + QUEUE_ID + ')', c.reply()[1][-1])
        assert m, i
        ids.append(m.group(1))
    assert c.reply()[1] == ['221 2.0.0 Bye']
    assert sorted(mtad.queue_ids()) == sorted(ids)
    for i, qid in enumerate(ids):
        _, rest = split_received(mtad.queue_file(qid)[1])
        assert rest == b'Subject: %d\r\n\r\nmessage number %d\r\n' % (i, i)


# --- durability ------------------------------------------------------------------------------

def test_kill_9_during_data_keeps_every_acknowledged_message(instance, binary, free_port):
    exe = binary('mtad/mtad')
    binary('ctl/yubinctl')
    port = free_port()
    configure(instance, port, binary, {'max_message_size': '50M'})
    instance.link_daemon('mtad', exe)
    instance.write_config({'master': {'restart_delay_max': '2s'}})
    instance.start_master()
    first = instance.wait_daemon('mtad')
    m = Mtad(instance, exe, port)
    wait_for(m._greets, 20, 'mtad to answer')

    acked = {}
    for i in range(20):
        body = b'Subject: durable %d\r\n\r\n' % i + b'line %d\r\n' % i * (50 * (i + 1))
        acked[send_message(port, body)] = body

    # A large message half sent: its bytes reach the disk before the kill.
    c = m.client()
    assert c.greet()[0] == 250
    c.send(b'MAIL FROM:<alice@example.net> SIZE=20000000\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        c.expect(p)
    chunk = (b'y' * 998 + b'\r\n') * 1000
    for _ in range(3):
        c.send(chunk)

    def partial_on_disk():
        files = m.partial_files()
        return files and files[0].stat().st_size > 1_000_000
    wait_for(partial_on_disk, 20, 'the partial message on disk')

    os.kill(first['pid'], signal.SIGKILL)
    assert c.closed()
    c.close()
    instance.wait_daemon('mtad', not_pid=first['pid'], timeout=30)
    wait_for(m._greets, 20, 'the restarted mtad to answer')

    # Recovery removed the partial file; every 250'd message is there, whole.
    assert m.partial_files() == []
    listed = {e['id']: e for e in m.queue()}
    assert sorted(listed) == sorted(acked)
    for qid, body in acked.items():
        assert listed[qid]['status'] in ('queued', 'deferred')
        records, message = m.queue_file(qid)
        assert split_received(message)[1] == body
        assert listed[qid]['size'] == len(message)
    # And the restarted server accepts mail again.
    qid = send_message(port, b'Subject: after\r\n\r\nafter the restart\r\n')
    assert qid in m.queue_ids()


def test_restart_after_kill_standalone_cleans_tmp(start_mtad):
    m = start_mtad({'max_message_size': '50M'})
    acked = [send_message(m.port, b'Subject: %d\r\n\r\nx\r\n' % i) for i in range(5)]
    c = m.client()
    assert c.greet()[0] == 250
    c.send(b'MAIL FROM:<alice@example.net>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n')
    for p in ('250', '250', '354'):
        c.expect(p)
    c.send((b'z' * 998 + b'\r\n') * 200)
    wait_for(lambda: m.partial_files(), 20, 'the partial message on disk')
    m.kill9()
    assert m.partial_files() != []  # still there: nobody cleaned up after kill -9
    m.start()
    assert m.partial_files() == []
    assert sorted(m.queue_ids()) == sorted(acked)


# --- dialogs ---------------------------------------------------------------------------------

@pytest.mark.parametrize('path', DIALOGS, ids=[p.stem for p in DIALOGS])
def test_dialog(start_mtad, path):
    d = dialog.parse(path)
    m = start_mtad(d.config.get('mtad'))
    dialog.run(d, m.port, server_name=HOST)
    if d.queued is not None:
        assert len(m.queue()) == d.queued, m.queue()


def test_dialog_parser():
    # The format, so a typo in a dialog file fails loudly.
    import tempfile
    with tempfile.NamedTemporaryFile('w', suffix='.txt', delete=False) as f:
        f.write('%config mtad.bare_lf = normalize\n%queued 2\n# c\n\nS: 220 \n'
                'C: EHLO a\nC~ x\\r\\n\\x2e\\n\nS~ 250 DSN\nS: <closed>\n')
    try:
        d = dialog.parse(f.name)
        assert d.config == {'mtad': {'bare_lf': 'normalize'}} and d.queued == 2
        assert [(s.kind, s.data, s.text) for s in d.steps] == [
            ('expect', b'', '220 '), ('send', b'EHLO a\r\nx\r\n.\n', ''),
            ('skip_to', b'', '250 DSN'), ('closed', b'', '')]
        Path(f.name).write_text('S: 220\nX: nonsense\n')
        with pytest.raises(ValueError, match=r':2: unknown line'):
            dialog.parse(f.name)
    finally:
        os.unlink(f.name)
