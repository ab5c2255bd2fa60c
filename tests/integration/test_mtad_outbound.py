"""Remote delivery end to end: mail accepted by mtad for other domains is
routed with the loopback DNS server (dns_server.py: MX, A, null MX,
NXDOMAIN, SERVFAIL) and delivered over SMTP to aiosmtpd sinks listening on
127.0.0.x, all on the test's own port (mtad's [mtad] remote_port).

Covered: delivered byte for byte; the first MX refuses, the second takes
it; a 4xx then success on the retry; a 5xx turned into a DSN in the local
sender's Maildir, parsed field by field; null MX and NXDOMAIN bounces;
SERVFAIL deferred with the reason in the queue; the verify TLS policy
against a certificate for another name (deferred with the reason) and
against the right one (delivered over TLS); hostile multi-line replies;
local and remote recipients in one message; NOTIFY=SUCCESS to a server
without DSN (a "relayed" report); one delay warning; kill -9 of mtad while
a remote server holds the reply to the final dot (nothing lost, duplicates
counted).

The site setup (users, mdad, mtad, the queue helpers) is the one of
test_local_delivery.py. No fixed sleeps: every wait polls a condition.
"""

import asyncio
import email
import email.policy
import os
import socket
import subprocess
import threading

import pytest

from conftest import read_line, wait_for
from dns_server import DnsServer
from test_local_delivery import QUEUE_ID, Site, send, send_with_id  # noqa: F401

aiosmtpd_controller = pytest.importorskip('aiosmtpd.controller')
Controller = aiosmtpd_controller.Controller

BODY = (b'From: Alice <alice@example.org>\r\n'
        b'To: someone@example.test\r\n'
        b'Subject: remote delivery\r\n'
        b'\r\n'
        b'.a line that starts with a dot\r\n'
        b'last line\r\n')


class Sink:
    """aiosmtpd handler: keeps what it is given; `replies` maps a recipient
    to a reply (or a list of replies used in turn, None = accept)."""

    def __init__(self, replies=None, gate=None):
        self.replies = replies or {}
        self.gate = gate  # a threading.Event the DATA reply waits for
        self.messages = []
        self.data_started = threading.Event()
        self.lock = threading.Lock()
        self.ehlos = 0
        self.logins = []

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        with self.lock:
            self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        r = self.replies.get(address)
        if isinstance(r, list):
            with self.lock:
                r = r.pop(0) if r else None
        if r:
            return r
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.append(rcpt_options)
        return '250 2.1.5 Ok'

    async def handle_DATA(self, server, session, envelope):
        self.data_started.set()
        if self.gate is not None:
            while not self.gate.is_set():
                await asyncio.sleep(0.02)
        with self.lock:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.original_content or envelope.content),
                                  list(envelope.mail_options),
                                  bool(session.ssl)))
            if session.authenticated:
                self.logins.append(session.login_data)
        return '250 2.0.0 Ok: queued'


def start_sink(ip, port, handler, **kw):
    c = Controller(handler, hostname=ip, port=port, **kw)
    c.start()
    return c


class Hostile:
    """A raw server: greets, then answers EHLO with `reply` (bytes)."""

    def __init__(self, ip, port, reply):
        self.reply = reply
        self.connections = 0
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            with c:
                c.settimeout(5)
                try:
                    c.sendall(b'220 hostile ESMTP\r\n')
                    read_line(c)  # the EHLO
                    c.sendall(self.reply)
                    while c.recv(1024):
                        pass
                except OSError:
                    pass

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


# mtad takes mail for its own domains only (mail from users comes through
# msad); mail reaches other domains here through aliases that forward
# off-site: fwd(address) is the local alias of a remote address.
REMOTE = ['someone@example.test', 'x@two.test', 'later@example.test', 'nobody@example.test',
          'a@nullmx.test', 'b@nowhere.test', 'c@broken.test', 'v@secure.test', 'h@hostile.test',
          'r@example.test', 'ok@example.test', 'slow@example.test', 'rel@anywhere.test'] + \
         [f'reuse{i}@example.test' for i in range(5)] + \
         [f'k{i}@example.test' for i in range(6)]


def fwd(address):
    return 'fwd-' + address.replace('@', '-').replace('.', '-') + '@example.org'


ZONE = {
    'example.test': {'mx': [[10, 'mx1.example.test']]},
    'mx1.example.test': {'a': ['127.0.0.2']},
    'two.test': {'mx': [[10, 'down.two.test'], [20, 'up.two.test']]},
    'down.two.test': {'a': ['127.0.0.3']},
    'up.two.test': {'a': ['127.0.0.4']},
    'nullmx.test': {'mx': [[0, '.']]},
    'broken.test': 'servfail',
    'hostile.test': {'mx': [[10, 'mx.hostile.test']]},
    'mx.hostile.test': {'a': ['127.0.0.5']},
    'secure.test': {'mx': [[10, 'mx.secure.test']]},
    'mx.secure.test': {'a': ['127.0.0.6']},
}


class Outbound:
    def __init__(self, site, dns, remote_port):
        self.site = site
        self.dns = dns
        self.remote_port = remote_port
        self.sinks = []

    def sink(self, ip, handler=None, **kw):
        handler = handler or Sink()
        self.sinks.append(start_sink(ip, self.remote_port, handler, **kw))
        return handler

    def dsns(self, user='alice'):
        return [email.message_from_bytes(b, policy=email.policy.compat32)
                for b in self.site.messages(user)]

    def recipient(self, qid):
        for m in self.site.queue():
            if m['id'] == qid:
                return m['recipients']
        return None

    def wait_deferred(self, qid, timeout=30):
        """Waits until the first recipient of qid is deferred; returns its
        queue entry (status, reply, ...)."""
        def deferred():
            r = self.recipient(qid)
            return r and r[0]['status'] == 'deferred' and r[0]
        return wait_for(deferred, timeout, 'the recipient to be deferred')


@pytest.fixture
def outbound(instance, binary, free_port):
    site = Site(instance, binary, free_port())
    with open(instance.dir / 'etc/aliases', 'a') as f:
        for a in REMOTE:
            f.write(f'{fwd(a)}: {a}\n')
    remote_port = free_port()
    with DnsServer(dict(ZONE)) as dns:
        instance.write_config({'mtad': {
            'remote_delivery': True,
            'dns_servers': [f'127.0.0.1:{dns.port}'],
            'remote_port': remote_port,
            'remote_connect_timeout': '5s',
        }})
        o = Outbound(site, dns, remote_port)
        try:
            yield o
        finally:
            for d in (site.mtad, site.mdad):
                d.stop()
            print('--- mtad.log (tail) ---\n' + site.mtad.log()[-6000:])
            for c in o.sinks:
                c.stop()


def start(o):
    o.site.mdad.start()
    o.site.mtad.start()
    return o


def test_delivered_byte_exact(outbound):
    sink = outbound.sink('127.0.0.2')
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('someone@example.test'),))
    wait_for(lambda: sink.messages, 20, 'the remote server to get the message')
    outbound.site.wait_queue_empty()
    [(mail_from, rcpts, data, options, tls)] = sink.messages
    assert mail_from == 'alice@example.org'
    assert rcpts == ['someone@example.test']
    assert data.startswith(b'Received: from client.example.net')
    assert data.endswith(BODY)
    assert 'SIZE=' + str(len(data)) in ' '.join(options)
    log = outbound.site.mtad.log()
    port = outbound.remote_port
    assert (f"delivered id={qid} rcpt={fwd('someone@example.test')} to=someone@example.test "
            f'relay=mx1.example.test[127.0.0.2]:{port}') in log


def test_first_mx_refuses_second_takes_it(outbound):
    sink = outbound.sink('127.0.0.4')  # nothing listens on 127.0.0.3
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('x@two.test'),))
    wait_for(lambda: sink.messages, 20, 'the second MX to get the message')
    outbound.site.wait_queue_empty()
    log = outbound.site.mtad.log()
    assert f'host=down.two.test[127.0.0.3]:{outbound.remote_port}' in log
    assert (f"delivered id={qid} rcpt={fwd('x@two.test')} to=x@two.test "
            f'relay=up.two.test[127.0.0.4]') in log


def test_4xx_then_success_on_retry(outbound):
    sink = outbound.sink('127.0.0.2', Sink({'later@example.test': ['451 4.7.1 greylisted']}))
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('later@example.test'),))
    wait_for(lambda: sink.messages, 30, 'delivery on the retry')
    outbound.site.wait_queue_empty()
    log = outbound.site.mtad.log()
    assert f"deferred id={qid} rcpt={fwd('later@example.test')} to=later@example.test" in log
    assert '451 4.7.1 greylisted' in log
    assert len(sink.messages) == 1


def test_5xx_bounces_with_a_dsn_to_the_local_sender(outbound):
    outbound.sink('127.0.0.2', Sink({'nobody@example.test': '550 5.1.1 no such user here'}))
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('nobody@example.test'),))
    [dsn] = wait_for(lambda: outbound.dsns(), 20, "the bounce in alice's Maildir")
    outbound.site.wait_queue_empty()
    assert dsn.get_content_type() == 'multipart/report'
    assert dsn.get_param('report-type') == 'delivery-status'
    assert dsn['To'] == '<alice@example.org>'
    assert dsn['Subject'] == 'Undelivered Mail Returned to Sender'
    human, status, original = dsn.get_payload()
    assert 'nobody@example.test' in human.get_payload()
    per_message, per_rcpt = status.get_payload()
    assert per_message['Reporting-MTA'] == 'dns; mx.example.org'
    assert per_message['X-Yubin-Queue-ID'] == qid
    assert per_message['Arrival-Date']
    assert per_rcpt['Final-Recipient'] == 'rfc822; nobody@example.test'
    assert per_rcpt['Action'] == 'failed'
    assert per_rcpt['Status'] == '5.1.1'
    assert per_rcpt['Diagnostic-Code'] == 'smtp; 550 5.1.1 no such user here'
    assert per_rcpt['Last-Attempt-Date']
    assert original.get_content_type() == 'message/rfc822'
    [inner] = original.get_payload()
    assert inner['Subject'] == 'remote delivery'


def test_null_mx_and_nxdomain_bounce(outbound):
    start(outbound)
    send_with_id(outbound.site.port, BODY, rcpts=(fwd('a@nullmx.test'), fwd('b@nowhere.test')))
    [dsn] = wait_for(lambda: outbound.dsns(), 20, 'the bounce')
    outbound.site.wait_queue_empty()
    _, status, _ = dsn.get_payload()
    per_rcpt = {p['Final-Recipient']: p for p in status.get_payload()[1:]}
    null = per_rcpt['rfc822; a@nullmx.test']
    assert null['Status'] == '5.1.10'
    assert null['Diagnostic-Code'].startswith('smtp; 556 5.1.10')
    nx = per_rcpt['rfc822; b@nowhere.test']
    assert nx['Status'] == '5.1.2'
    assert nx['Action'] == 'failed'


def test_servfail_is_deferred_with_the_reason(outbound):
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('c@broken.test'),))
    r = outbound.wait_deferred(qid)
    assert r['reply'].startswith('451 4.4.3 DNS lookup of MX for broken.test failed')
    assert outbound.dsns() == []


def make_cert(folder, name):
    cert, key = folder / f'{name}.pem', folder / f'{name}.key'
    subprocess.run(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt',
                    'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', f'/CN={name}',
                    '-addext', f'subjectAltName=DNS:{name}', '-keyout', str(key),
                    '-out', str(cert)], check=True, capture_output=True)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key


def tls_context(cert, key):
    import ssl
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(cert), str(key))
    return ctx


@pytest.mark.parametrize('right_name', [False, True], ids=['bad-cert', 'good-cert'])
def test_verify_policy(outbound, right_name):
    folder = outbound.site.inst.dir / 'etc'
    cert, key = make_cert(folder, 'mx.secure.test' if right_name else 'wrong.example')
    sink = outbound.sink('127.0.0.6', tls_context=tls_context(cert, key))
    outbound.site.inst.write_config({'mtad': {'tls_domain_policy': ['secure.test=verify'],
                                              'tls_ca_file': str(cert)}})
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('v@secure.test'),))
    if right_name:
        wait_for(lambda: sink.messages, 20, 'delivery over verified TLS')
        assert sink.messages[0][4], 'the message came over TLS'
        outbound.site.wait_queue_empty()
        return
    r = outbound.wait_deferred(qid)
    assert 'certificate verification failed' in r['reply'], r['reply']
    assert sink.messages == []
    assert 'certificate verification failed' in outbound.site.mtad.log()


@pytest.mark.parametrize('reply', [
    b'250-mx.hostile.test\r\n550-5.1.1 mixed\r\n250 PIPELINING\r\n',
    b'250-mx.hostile.test\r\n250-' + b'A' * 5000 + b'\r\n250 OK\r\n',
    b'250-mx.hostile.test\n250 bare LF\r\n',
    b'250-mx\r\n' * 300 + b'250 end\r\n',
], ids=['mixed-codes', 'long-line', 'bare-lf', 'too-many-lines'])
def test_hostile_multiline_replies_defer(outbound, reply):
    """Multi-line reply abuse against the SMTP client, CVE-2020-8794
    (OpenSMTPD's client read a hostile multi-line reply out of bounds)."""
    hostile = Hostile('127.0.0.5', outbound.remote_port, reply)
    try:
        start(outbound)
        qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('h@hostile.test'),))
        r = outbound.wait_deferred(qid)
        assert r['reply'].startswith('451 4.5.0 protocol error from the server'), r['reply']
        assert hostile.connections >= 1
        # mtad is still there and still answers.
        assert outbound.site.smtp_ready()
    finally:
        hostile.close()


def test_local_and_remote_recipients_in_one_message(outbound):
    sink = outbound.sink('127.0.0.2')
    start(outbound)
    send_with_id(outbound.site.port, BODY, rcpts=('bob@example.org', fwd('r@example.test')))
    wait_for(lambda: sink.messages and outbound.site.messages('bob'), 20, 'both copies')
    outbound.site.wait_queue_empty()
    assert [m[1] for m in sink.messages] == [['r@example.test']]
    assert len(outbound.site.messages('bob')) == 1


def test_notify_success_to_a_server_without_dsn_is_relayed(outbound):
    import smtplib
    outbound.sink('127.0.0.2')
    start(outbound)
    with smtplib.SMTP('127.0.0.1', outbound.site.port, local_hostname='client.example.net') as s:
        s.ehlo()
        assert s.mail('alice@example.org')[0] == 250
        assert s.rcpt(fwd('ok@example.test'), ['NOTIFY=SUCCESS'])[0] == 250
        assert s.data(BODY)[0] == 250
    [dsn] = wait_for(lambda: outbound.dsns(), 20, 'the success report')
    assert dsn['Subject'] == 'Successful Mail Delivery Report'
    _, status, original = dsn.get_payload()
    per_rcpt = status.get_payload()[1]
    assert per_rcpt['Action'] == 'relayed'
    assert per_rcpt['Status'] == '2.0.0'
    assert original.get_content_type() == 'text/rfc822-headers'


def test_one_delay_warning(outbound):
    outbound.sink('127.0.0.2', Sink({'slow@example.test': ['451 4.3.0 later'] * 1000}))
    outbound.site.inst.write_config({'mtad': {'delay_warning': '2s'}})
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('slow@example.test'),))
    [dsn] = wait_for(lambda: outbound.dsns(), 30, 'the delay warning')
    assert dsn['Subject'] == 'Delayed Mail (still being retried)'
    _, status, _ = dsn.get_payload()
    per_rcpt = status.get_payload()[1]
    assert per_rcpt['Action'] == 'delayed'
    assert per_rcpt['Status'] == '4.3.0'
    assert per_rcpt['Will-Retry-Until']
    # More attempts, no second warning.
    log = lambda: outbound.site.mtad.log()  # noqa: E731
    wait_for(lambda: log().count(f"deferred id={qid} rcpt={fwd('slow@example.test')}") >= 3, 30,
             'more attempts')
    assert len(outbound.dsns()) == 1
    assert outbound.recipient(qid)[0]['status'] == 'deferred'


def test_kill_9_while_a_remote_server_holds_the_reply(outbound):
    gate = threading.Event()
    sink = outbound.sink('127.0.0.2', Sink(gate=gate))
    start(outbound)
    total = 6
    for i in range(total):
        send(outbound.site.port, BODY.replace(b'remote delivery', f'msg {i}'.encode()),
             rcpts=(fwd(f'k{i}@example.test'),))
    wait_for(sink.data_started.is_set, 20, 'the first message to reach DATA')
    outbound.site.mtad.kill9()
    gate.set()
    outbound.site.mtad.start()
    outbound.site.wait_queue_empty(60)

    def got():
        with sink.lock:
            return [r for m in sink.messages for r in m[1]]
    rcpts = got()
    missing = {f'k{i}@example.test' for i in range(total)} - set(rcpts)
    assert not missing, f'lost: {missing}'
    duplicates = len(rcpts) - len(set(rcpts))
    print(f'kill -9 during remote delivery: {total} messages, {duplicates} duplicates')
    assert duplicates <= total


def test_one_connection_reused_for_several_messages(outbound):
    sink = outbound.sink('127.0.0.2')
    outbound.site.inst.write_config({'mtad': {'remote_connections_per_domain': 1}})
    start(outbound)
    for i in range(5):
        send(outbound.site.port, BODY, rcpts=(fwd(f'reuse{i}@example.test'),))
    wait_for(lambda: len(sink.messages) == 5, 30, 'five messages')
    outbound.site.wait_queue_empty()
    assert sink.ehlos == 1, f'{sink.ehlos} connections for 5 messages with a limit of 1'


def relay_auth(server, session, envelope, mechanism, auth_data):
    from aiosmtpd.smtp import AuthResult
    ok = auth_data.login == b'relayuser' and auth_data.password == b'pass word'
    return AuthResult(success=ok, handled=False)


@pytest.mark.parametrize('mode', [0o600, 0o644], ids=['private-file', 'readable-file'])
def test_relay_host_with_starttls_and_auth(outbound, mode):
    folder = outbound.site.inst.dir / 'etc'
    cert, key = make_cert(folder, 'relay.test')
    sink = outbound.sink('127.0.0.7', tls_context=tls_context(cert, key), require_starttls=True,
                         authenticator=relay_auth, auth_require_tls=True)
    creds = folder / 'relay-auth'
    creds.write_text('# user password\nrelayuser pass word\n')
    who = outbound.site.inst.run_as()
    if who:
        import pwd
        os.chown(creds, pwd.getpwnam(who[0]).pw_uid, -1)
    os.chmod(creds, mode)
    outbound.site.inst.write_config({'mtad': {
        'relay_host': f'[127.0.0.7]:{outbound.remote_port}',
        'relay_tls_verify': False,
        'relay_auth_file': str(creds)}})
    start(outbound)
    qid = send_with_id(outbound.site.port, BODY, rcpts=(fwd('rel@anywhere.test'),))
    if mode == 0o600:
        wait_for(lambda: sink.messages, 20, 'the relay to get the message')
        assert sink.messages[0][4], 'over TLS'
        assert sink.messages[0][1] == ['rel@anywhere.test']
        assert len(sink.logins) == 1
        outbound.site.wait_queue_empty()
        # No DNS question for the domain: the relay is used as given.
        assert not [q for q in outbound.dns.queries if 'anywhere' in q[0]]
        return
    r = outbound.wait_deferred(qid)
    assert 'may be read by group or others' in r['reply'], r['reply']
    assert sink.messages == []
