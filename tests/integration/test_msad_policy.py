"""msad end to end, the parts of the submission issue test_msad.py leaves
out: the per-user rate limits (450 4.7.1 past [msad] rate_messages and
rate_recipients, per user, other users unaffected) and SCRAM-SHA-256-PLUS
with tls-exporter channel binding (RFC 9266) driven by OpenSSL's own
client, `openssl s_client -starttls smtp -keymatexport`, which prints the
exporter value the server must also derive: a right binding logs in and
the server signature checks, a wrong one and the "y" downgrade flag
(RFC 5802 §6: the client could have bound but the server offered -PLUS)
fail with 535 5.7.8.

Python's ssl module exposes no exporter, hence s_client for the -PLUS
login; everything else is smtplib. The site (msad, mtad, mdad standalone)
is test_msad.py's."""

import base64
import hashlib
import hmac
import os
import queue
import re
import smtplib
import subprocess
import threading

import pytest

from conftest import wait_for
from test_msad import PASSWORDS, insecure, msg, running_site, site  # noqa: F401 (fixture)


@pytest.fixture
def limited(instance, binary, free_port):
    yield from running_site(instance, binary, free_port,
                            msad={'rate_messages': 2, 'rate_recipients': 5})


def test_rate_limits_are_per_user(limited):
    with limited.submit('alice') as s:
        s.sendmail('alice@example.org', ['bob@example.org'], msg('one'))
        s.sendmail('alice@example.org', ['bob@example.org', 'alice@example.org'], msg('two'))
        # A third message within the hour: refused at MAIL, temporarily.
        code, text = s.mail('alice@example.org')
        assert (code, text[:5]) == (450, b'4.7.1'), text
        s.rset()
    # bob has his own budget: five recipients in all, the sixth is refused
    # at RCPT and the message still goes to the first five.
    with limited.submit('bob') as s:
        rcpts = ['alice@example.org', 'al@example.org', 'team@example.org']
        assert s.sendmail('bob@example.org', rcpts, msg('to three', to='alice@example.org')) == {}
        assert s.mail('bob@example.org')[0] == 250
        assert s.rcpt('alice@example.org')[0] == 250
        assert s.rcpt('bob@example.org')[0] == 250
        code, text = s.rcpt('team@example.org')
        assert (code, text[:5]) == (450, b'4.7.1'), text
        code, _ = s.data(msg('to two'))
        assert code == 250
    # bob got alice's two, 'to three' through team@ and 'to two'.
    wait_for(lambda: len(limited.messages('bob')) == 4 or None, 30, "bob's four messages")
    subjects = sorted(re.search(rb'^Subject: (.*)$', m, re.M).group(1)
                      for m in limited.messages('bob'))
    assert subjects == [b'one', b'to three', b'to two', b'two']
    log = limited.msad.log()
    assert 'sender refused: message rate limit client=127.0.0.1 user=alice@example.org' in log
    assert 'recipient refused: recipient rate limit client=127.0.0.1 user=bob@example.org' in log


class SClient:
    """`openssl s_client` over STARTTLS, line by line, with the TLS
    exporter (RFC 9266's label) it printed after the handshake."""

    def __init__(self, port):
        self.p = subprocess.Popen(
            ['openssl', 's_client', '-connect', f'127.0.0.1:{port}', '-starttls', 'smtp',
             '-name', 'laptop.example', '-crlf', '-nocommands', '-no_ign_eof',
             '-keymatexport', 'EXPORTER-Channel-Binding', '-keymatexportlen', '32'],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.lines = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()
        self.exporter = None
        while self.exporter is None:
            line = self.line()
            m = re.match(rb'\s*Keying material: ([0-9A-Fa-f]+)', line)
            if m:
                self.exporter = bytes.fromhex(m.group(1).decode())
            # The session summary ends with the server's new-TLS-session
            # tickets or a '---' line; the exporter comes before either.
        assert len(self.exporter) == 32

    def _pump(self):
        for line in self.p.stdout:
            self.lines.put(line)
        self.lines.put(b'')

    def line(self):
        line = self.lines.get(timeout=20)
        assert line, 's_client ended'
        return line

    def send(self, text):
        self.p.stdin.write(text.encode() + b'\n')
        self.p.stdin.flush()

    def reply(self):
        """The next complete SMTP reply, skipping s_client's own output."""
        while True:
            line = self.line().rstrip(b'\r\n')
            if re.match(rb'\d{3} ', line):
                return int(line[:3]), line[4:]

    def close(self):
        self.p.stdin.close()
        self.p.kill()
        self.p.wait()


def scram_plus(port, user, password, flag='p=tls-exporter', tamper_binding=False):
    """SCRAM-SHA-256-PLUS (or -SHA-256 with flag 'y') through s_client;
    returns (final code, server signature ok)."""
    c = SClient(port)
    try:
        c.send('EHLO laptop.example')
        code, _ = c.reply()
        assert code == 250
        mech = 'SCRAM-SHA-256-PLUS' if flag.startswith('p=') else 'SCRAM-SHA-256'
        gs2 = f'{flag},,'
        nonce = base64.b64encode(os.urandom(18)).decode()
        bare = f'n={user},r={nonce}'
        c.send(f'AUTH {mech} ' + base64.b64encode((gs2 + bare).encode()).decode())
        code, text = c.reply()
        if code != 334:  # refused at the client's first message
            return code, text, False
        server_first = base64.b64decode(text).decode()
        attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
        assert attrs['r'].startswith(nonce)
        salted = hashlib.pbkdf2_hmac('sha256', password.encode(), base64.b64decode(attrs['s']),
                                     int(attrs['i']))
        client_key = hmac.new(salted, b'Client Key', 'sha256').digest()
        binding = c.exporter if flag.startswith('p=') else b''
        if tamper_binding:
            binding = bytes([binding[0] ^ 1]) + binding[1:]
        cbind = base64.b64encode(gs2.encode() + binding).decode()
        without_proof = f'c={cbind},r={attrs["r"]}'
        auth_message = f'{bare},{server_first},{without_proof}'.encode()
        sig = hmac.new(hashlib.sha256(client_key).digest(), auth_message, 'sha256').digest()
        proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, sig))).decode()
        c.send(base64.b64encode(f'{without_proof},p={proof}'.encode()).decode())
        code, text = c.reply()
        if code != 334:
            return code, text, False
        server_key = hmac.new(salted, b'Server Key', 'sha256').digest()
        expect = base64.b64encode(hmac.new(server_key, auth_message, 'sha256').digest()).decode()
        ok = base64.b64decode(text).decode() == f'v={expect}'
        c.send('')
        code, text = c.reply()
        return code, text, ok
    finally:
        c.close()


def test_scram_sha_256_plus_with_tls_exporter(site):
    with smtplib.SMTP('127.0.0.1', site.sub_port, timeout=20) as s:
        s.starttls(context=insecure())
        s.ehlo()
        assert 'SCRAM-SHA-256-PLUS' in s.esmtp_features['auth'].split()
    code, text, ok = scram_plus(site.sub_port, 'alice@example.org', PASSWORDS['alice'])
    assert (code, ok) == (235, True), text
    # The binding of another TLS session (one bit off): refused.
    code, text, _ = scram_plus(site.sub_port, 'alice@example.org', PASSWORDS['alice'],
                               tamper_binding=True)
    assert (code, text[:5]) == (535, b'5.7.8'), text
    # "y": the client says it could bind but thinks the server cannot;
    # this server offered -PLUS, so it is a downgrade: refused.
    code, text, _ = scram_plus(site.sub_port, 'alice@example.org', PASSWORDS['alice'], flag='y')
    assert (code, text[:5]) == (535, b'5.7.8'), text
    log = site.msad.log()
    assert re.search(r'auth ok session=\S+ client=127\.0\.0\.1 user=alice@example\.org '
                     r'mech=SCRAM-SHA-256-PLUS', log), log
    assert len(re.findall(r'auth failed .*user=alice@example\.org', log)) == 2

