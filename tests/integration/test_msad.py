"""msad end to end: submission with SMTP AUTH on 587 (STARTTLS) and 465
(implicit TLS), handed to mtad over its submission socket, delivered by
mdad into the Maildir. Real clients: Python smtplib (starttls + login,
SMTP_SSL), swaks (--auth PLAIN/LOGIN --tls) and a SCRAM-SHA-256 client
written here that checks the server signature. Covered: AUTH refused
before TLS (538 / 530), wrong password 535 5.7.8 after the throttle's
delay, a spoofed sender 553 5.7.1 (an alias of the user is fine), brute
force from 127.0.0.1 locked out (421) while 127.0.0.2 still logs in, mtad
stopped -> 451 4.3.0 and nothing queued, then delivered once it is back.

msad, mtad and mdad run standalone (`-f -c CONF`). As root they run as
nobody/nogroup, which owns the spool and the mail root and is the group
of the users file and of both Unix sockets. Users are made with
`yubinctl user add` (Argon2id hash and SCRAM keys).
"""

import base64
import hashlib
import hmac
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import time

import pytest

import queue_files
from conftest import wait_for
from standalone import submission_chain

PASSWORDS = {'alice': 'alice-secret', 'bob': 'bob-secret'}
ALIASES = 'al@example.org: alice@example.org\nteam@example.org: alice@example.org, bob@example.org\n'
DELAY_MS = 300
LOCKOUT = 4


class Site:
    def __init__(self, inst, binary, ports):
        self.inst = inst
        self.smtp_port, self.sub_port, self.tls_port = ports
        self.ctl = binary('ctl/yubinctl')
        self.mail = inst.dir / 'mail'
        self.spool = inst.dir / 'spool'
        cert, key = inst.dir / 'etc/cert.pem', inst.dir / 'etc/key.pem'
        subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                        'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
                        '-subj', '/CN=mx.example.org', '-keyout', str(key), '-out', str(cert)],
                       check=True, capture_output=True)
        (inst.dir / 'etc/users').write_text('')
        (inst.dir / 'etc/aliases').write_text(ALIASES)
        inst.write_config({'global': {'tls_cert': str(cert), 'tls_key': str(key)}})
        for user, pw in PASSWORDS.items():
            r = subprocess.run([str(self.ctl), '-c', str(inst.conf), 'user', 'add',
                                f'{user}@example.org'], input=pw + '\n', text=True,
                               capture_output=True)
            assert r.returncode == 0, r.stderr
        self.mtad, self.mdad, self.msad = submission_chain(
            inst, binary, self.smtp_port, self.sub_port,
            {'listen_tls': f'127.0.0.1:{self.tls_port}', 'auth_delay_ms': DELAY_MS,
             'auth_max_delay': '1s', 'auth_lockout': LOCKOUT, 'auth_account_lockout': 100,
             'auth_workers': 2})

    def messages(self, user):
        d = self.mail / 'example.org' / user / 'Maildir' / 'new'
        return [p.read_bytes() for p in sorted(d.iterdir())] if d.exists() else []

    def queue_files(self):
        # Committed messages only: queue/ also keeps mtad's empty spare files.
        return queue_files.messages(self.spool / 'queue')

    def submit(self, user='alice', **kw):
        s = smtplib.SMTP('127.0.0.1', self.sub_port, local_hostname='laptop.example', timeout=20, **kw)
        s.ehlo()
        s.starttls(context=insecure())
        s.ehlo()
        s.login(f'{user}@example.org', PASSWORDS[user])
        return s


def insecure():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def msg(subject, to='bob@example.org', sender='alice@example.org', extra=b''):
    return (f'From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\n'.encode() + extra +
            b'\r\nHello.\r\n.leading dot\r\n')


def running_site(instance, binary, free_port, msad=None):
    """A started Site (msad's config amended with `msad`), stopped after
    the test: for `yield from` in fixtures."""
    s = Site(instance, binary, (free_port(), free_port(), free_port()))
    if msad:
        instance.write_config({'msad': msad})
    s.mdad.start()
    s.mtad.start()
    s.msad.start()
    yield s
    for d in (s.msad, s.mtad, s.mdad):
        d.stop()


@pytest.fixture
def site(instance, binary, free_port):
    yield from running_site(instance, binary, free_port)


def test_starttls_login_and_delivery(site):
    with site.submit() as s:
        assert 'auth' in s.esmtp_features
        assert s.esmtp_features['auth'].split()[:3] == ['PLAIN', 'LOGIN', 'SCRAM-SHA-256']
        s.sendmail('alice@example.org', ['bob@example.org'], msg('first'))
    [m] = wait_for(lambda: site.messages('bob'), 30, "bob's message")
    assert re.search(rb'^Received: from laptop\.example \(\[127\.0\.0\.1\]\)\n\tby mx\.example\.org '
                     rb'\(Yubin [^)]*\) with ESMTPSA id ', m, re.M)
    head, _, body = m.partition(b'\n\n')
    assert re.search(rb'^Date: ', head, re.M)
    assert re.search(rb'^Message-ID: <[0-9a-f]+@mx\.example\.org>$', head, re.M)
    assert body == b'Hello.\n.leading dot\n'
    # mtad kept the authenticated user, and only one Received: (msad's).
    assert head.count(b'\nReceived: ') + head.startswith(b'Received: ') == 1
    log = wait_for(lambda: (lambda t: t if 'auth=alice@example.org' in t else None)(site.mtad.log()),
                   10, 'mtad to log the queued message')
    assert re.search(r'queued session=\S+ id=\S+ .* auth=alice@example\.org', log)
    assert re.search(r'auth ok session=\S+ client=127\.0\.0\.1 user=alice@example\.org mech=PLAIN',
                     site.msad.log())
    assert 'alice-secret' not in site.msad.log()


def test_implicit_tls_with_login_and_kept_headers(site):
    with smtplib.SMTP_SSL('127.0.0.1', site.tls_port, local_hostname='laptop.example',
                          context=insecure(), timeout=20) as s:
        s.ehlo()
        assert 'starttls' not in s.esmtp_features
        s.user, s.password = 'alice@example.org', PASSWORDS['alice']
        code, _ = s.auth('LOGIN', s.auth_login)
        assert code == 235
        s.sendmail('al@example.org', ['alice@example.org'],
                   msg('tls', 'alice@example.org', 'al@example.org',
                       b'Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <kept@x>\r\n'))
    [m] = wait_for(lambda: site.messages('alice'), 30, "alice's message")
    head = m.partition(b'\n\n')[0]
    assert head.count(b'Message-ID:') == 1 and b'Message-ID: <kept@x>' in head
    assert head.count(b'\nDate:') == 1


def test_auth_refused_before_tls(site):
    with smtplib.SMTP('127.0.0.1', site.sub_port, timeout=20) as s:
        s.ehlo()
        assert 'auth' not in s.esmtp_features
        assert 'starttls' in s.esmtp_features
        creds = base64.b64encode(b'\0alice@example.org\0' + PASSWORDS['alice'].encode()).decode()
        code, text = s.docmd('AUTH', 'PLAIN ' + creds)
        assert (code, text[:6]) == (538, b'5.7.11')
        code, text = s.docmd('MAIL', 'FROM:<alice@example.org>')
        assert (code, text[:5]) == (530, b'5.7.0')


def test_wrong_password_waits_then_535(site):
    with site.submit() as s:
        pass
    s = smtplib.SMTP('127.0.0.1', site.sub_port, timeout=20)
    s.ehlo()
    s.starttls(context=insecure())
    s.ehlo()
    for i in range(2):
        creds = base64.b64encode(b'\0alice@example.org\0wrong').decode()
        t0 = time.monotonic()
        code, text = s.docmd('AUTH', 'PLAIN ' + creds)
        took = time.monotonic() - t0
        assert (code, text[:5]) == (535, b'5.7.8')
        # The answer waited the throttle's delay: 1x, then 2x.
        assert took >= DELAY_MS * (i + 1) / 1000 * 0.9, took
    s.close()
    log = site.msad.log()
    assert re.search(r'auth failed session=\S+ client=127\.0\.0\.1 user=alice@example\.org mech=PLAIN '
                     r'reason="authentication failed"', log)
    assert 'wrong' not in log.replace('reason="authentication failed"', '')


def test_unknown_user_and_wrong_password_look_the_same(site):
    with smtplib.SMTP('127.0.0.1', site.sub_port, timeout=20) as s:
        s.ehlo()
        s.starttls(context=insecure())
        s.ehlo()
        a = s.docmd('AUTH', 'PLAIN ' + base64.b64encode(b'\0ghost@example.org\0x').decode())
        b = s.docmd('AUTH', 'PLAIN ' + base64.b64encode(b'\0alice@example.org\0x').decode())
    assert a[0] == 535 and a[1].startswith(b'5.7.8')
    assert a == b  # the same reply, word for word


def test_spoofed_sender_refused_alias_accepted(site):
    with site.submit() as s:
        code, text = s.mail('bob@example.org')
        assert (code, text[:5]) == (553, b'5.7.1')
        code, text = s.mail('team@example.org')  # a list: reaches bob as well
        assert code == 553
        assert s.mail('al@example.org')[0] == 250
        assert s.rcpt('ghost@example.org')[0] == 550
        assert s.rcpt('someone@remote.example')[0] == 250
        s.rset()


def scram_login(port, user, password, tamper_proof=False):
    """RFC 5802 client over SMTP AUTH; returns (final code, server signature ok)."""
    s = smtplib.SMTP('127.0.0.1', port, timeout=20)
    s.ehlo()
    s.starttls(context=insecure())
    s.ehlo()
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f'n={user},r={nonce}'
    code, text = s.docmd('AUTH', 'SCRAM-SHA-256 ' + base64.b64encode(b'n,,' + bare.encode()).decode())
    assert code == 334, text
    server_first = base64.b64decode(text).decode()
    attrs = dict(kv.split('=', 1) for kv in server_first.split(','))
    assert attrs['r'].startswith(nonce)
    salt, iters = base64.b64decode(attrs['s']), int(attrs['i'])
    salted = hashlib.pbkdf2_hmac('sha256', password.encode(), salt, iters)
    client_key = hmac.new(salted, b'Client Key', 'sha256').digest()
    stored_key = hashlib.sha256(client_key).digest()
    without_proof = f'c=biws,r={attrs["r"]}'
    auth_message = f'{bare},{server_first},{without_proof}'.encode()
    sig = hmac.new(stored_key, auth_message, 'sha256').digest()
    proof = bytes(a ^ b for a, b in zip(client_key, sig))
    if tamper_proof:
        proof = bytes([proof[0] ^ 1]) + proof[1:]
    final = f'{without_proof},p={base64.b64encode(proof).decode()}'
    code, text = s.docmd(base64.b64encode(final.encode()).decode())
    if code != 334:
        s.close()
        return code, False
    server_final = base64.b64decode(text).decode()
    server_key = hmac.new(salted, b'Server Key', 'sha256').digest()
    expect = base64.b64encode(hmac.new(server_key, auth_message, 'sha256').digest()).decode()
    ok = server_final == f'v={expect}'
    code, _ = s.docmd('')
    s.close()
    return code, ok


def test_scram_sha_256(site):
    assert scram_login(site.sub_port, 'alice@example.org', PASSWORDS['alice']) == (235, True)
    assert scram_login(site.sub_port, 'alice@example.org', PASSWORDS['alice'],
                       tamper_proof=True)[0] == 535
    assert scram_login(site.sub_port, 'ghost@example.org', 'x')[0] == 535


def b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def test_auth_line_limits_and_hostile_scram(site):
    """RFC 4954 §4's 12288 octets per AUTH line: a longer AUTH command or
    response is refused and the session goes on; a line within the limit
    whose SASL message is over the exchange's own limit fails as a login;
    hostile SCRAM messages (a forged nonce, a short proof, a user name with
    a line break) fail; each failure is logged once, on one line, with its
    reason. Three failures stay under LOCKOUT: a good login still works."""
    with smtplib.SMTP('127.0.0.1', site.sub_port, timeout=20) as s:
        s.ehlo()
        s.starttls(context=insecure())
        s.ehlo()
        # The command line: 'AUTH PLAIN ' + 12278 + CRLF = 12291 octets.
        code, text = s.docmd('AUTH', 'PLAIN ' + 'A' * 12278)
        assert (code, text[:5]) == (500, b'5.5.2'), text
        assert s.noop()[0] == 250
        # A response line of 20000 octets in the middle of an exchange.
        assert s.docmd('AUTH', 'LOGIN')[0] == 334
        code, text = s.docmd('A' * 20000)
        assert (code, text) == (500, b'5.5.6 Error: authentication exchange line is too long')
        assert s.noop()[0] == 250
        # Within 12288 octets, but 5000 octets of password: over SASL's limit.
        code, text = s.docmd('AUTH', 'PLAIN ' + b64(b'\0alice@example.org\0' + b'p' * 5000))
        assert (code, text[:5]) == (535, b'5.7.8')
        # SCRAM: a client-final whose nonce is not the server's.
        code, text = s.docmd('AUTH', 'SCRAM-SHA-256 ' + b64('n,,n=alice@example.org,r=abcdefgh'))
        assert code == 334
        assert base64.b64decode(text).startswith(b'r=abcdefgh')
        code, text = s.docmd(b64('c=biws,r=abcdefghforged,p=' + b64(bytes(32))))
        assert (code, text[:5]) == (535, b'5.7.8')
        # SCRAM: a line break in the user name, then a 16-octet proof.
        code, text = s.docmd('AUTH', 'SCRAM-SHA-256 ' + b64('n,,n=evil\r\nroot,r=ijklmnop'))
        assert code == 334
        nonce = base64.b64decode(text).decode().split(',')[0][2:]
        code, text = s.docmd(b64(f'c=biws,r={nonce},p=' + b64(bytes(16))))
        assert (code, text[:5]) == (535, b'5.7.8')
        s.user, s.password = 'alice@example.org', PASSWORDS['alice']
        assert s.auth('PLAIN', s.auth_plain)[0] == 235
    log = site.msad.log()
    failures = [ln for ln in log.splitlines() if 'auth failed ' in ln]
    assert len(failures) == 3, failures
    assert 'reason="response too long"' in failures[0]
    assert 'mech=SCRAM-SHA-256 reason="nonce mismatch"' in failures[1]
    assert 'user=evil??root mech=SCRAM-SHA-256 reason="malformed proof"' in failures[2]
    assert not any(ln.startswith('root') for ln in log.splitlines())
    assert 'p' * 100 not in log


def test_brute_force_locks_out_one_address_only(site):
    bad = 'PLAIN ' + base64.b64encode(b'\0alice@example.org\0guess').decode()
    codes = []
    for _ in range(LOCKOUT + 1):
        try:
            with smtplib.SMTP('127.0.0.1', site.sub_port, timeout=20) as s:
                s.ehlo()
                s.starttls(context=insecure())
                s.ehlo()
                codes.append(s.docmd('AUTH', bad)[0])
        except smtplib.SMTPServerDisconnected:
            codes.append('refused')
        except smtplib.SMTPResponseException as e:
            codes.append(e.smtp_code)
    assert codes[:LOCKOUT - 1] == [535] * (LOCKOUT - 1)
    assert codes[LOCKOUT - 1] == 421  # the failure that reaches the lockout
    assert codes[LOCKOUT] in (421, 'refused')  # new connections are refused
    # Another address still logs in (the account is far from its own limit).
    with site.submit(source_address=('127.0.0.2', 0)) as s:
        assert s.mail('alice@example.org')[0] == 250


def test_mtad_down_gives_451_then_delivery(site):
    site.mtad.stop()
    with site.submit() as s:
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail('alice@example.org', ['bob@example.org'], msg('retry me'))
        assert e.value.smtp_code == 451
        assert e.value.smtp_error.startswith(b'4.3.0')
    assert site.queue_files() == []
    site.mtad.start()
    with site.submit() as s:
        s.sendmail('alice@example.org', ['bob@example.org'], msg('retry me'))
    [m] = wait_for(lambda: site.messages('bob'), 30, "bob's message")
    assert b'Subject: retry me' in m


@pytest.mark.skipif(not shutil.which('swaks'), reason='swaks is not installed')
@pytest.mark.parametrize('mech', ['PLAIN', 'LOGIN'])
def test_swaks(site, mech):
    r = subprocess.run(['swaks', '--server', f'127.0.0.1:{site.sub_port}', '--tls',
                        '--auth', mech, '--auth-user', 'bob@example.org',
                        '--auth-password', PASSWORDS['bob'], '--from', 'bob@example.org',
                        '--to', 'alice@example.org', '--header', f'Subject: swaks {mech}',
                        '--helo', 'laptop.example', '--timeout', '20'],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert '235 2.7.0' in r.stdout
    wait_for(lambda: any(f'Subject: swaks {mech}'.encode() in m for m in site.messages('alice')),
             30, "alice's message")
