"""mtad's DNS cache end to end: the loopback DNS server (dns_server.py)
counts what it answers, and a second message to the same domain, after
the first one's connection is gone, is routed without asking again.

The remote server here closes the connection after every message (a plain
socket server, below), so each message needs a new connection and
therefore a route: without the cache that means new MX, AAAA and A
queries; with it, none. Also: a second domain whose MX is the same host
asks for its MX only; a domain that does not exist is asked once for two
messages (negative caching); and with dns_cache_size = 0 every message
asks again, which shows that the counting sees the queries at all.

Trust: a test; loopback only.
"""

import socket
import threading

import pytest

from conftest import wait_for
from dns_server import DnsServer
from test_local_delivery import Site, send_with_id

SINK_IP = '127.0.0.9'
ZONE = {
    'cache.test': {'mx': [[10, 'mx.cache.test']]},
    'other.test': {'mx': [[10, 'mx.cache.test']]},
    'mx.cache.test': {'a': [SINK_IP]},
}
REMOTE = ['r1@cache.test', 'r2@cache.test', 'r3@other.test', 'g1@gone.test', 'g2@gone.test']


def fwd(address):
    return 'fwd-' + address.replace('@', '-').replace('.', '-') + '@example.org'


def body(n):
    return (f'From: Alice <alice@example.org>\r\nTo: x@cache.test\r\nSubject: cache {n}\r\n'
            f'\r\nmessage {n}\r\n').encode()


class ClosingSink:
    """An SMTP server that takes one message per connection, then closes
    it (no QUIT from us): mtad can never reuse a connection."""

    def __init__(self, ip, port):
        self.messages = []
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((ip, port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            with self.lock:
                self.connections += 1
            with c:
                c.settimeout(10)
                try:
                    self.session(c.makefile('rb'), c)
                except OSError:
                    pass

    def session(self, f, c):
        c.sendall(b'220 sink ESMTP\r\n')
        rcpts = []
        while True:
            line = f.readline()
            if not line:
                return
            verb = line[:4].upper()
            if verb == b'EHLO':
                c.sendall(b'250-sink\r\n250 8BITMIME\r\n')
            elif verb == b'RCPT':
                rcpts.append(line[8:].strip().strip(b'<>').decode())
                c.sendall(b'250 2.1.5 ok\r\n')
            elif verb == b'DATA':
                c.sendall(b'354 go on\r\n')
                data = b''
                while True:
                    chunk = f.readline()
                    if not chunk or chunk == b'.\r\n':
                        break
                    data += chunk
                c.sendall(b'250 2.0.0 ok\r\n')
                with self.lock:
                    self.messages.append((rcpts, data))
                return  # closes the connection
            elif verb == b'QUIT':
                c.sendall(b'221 bye\r\n')
                return
            else:
                c.sendall(b'250 ok\r\n')

    def count(self):
        with self.lock:
            return len(self.messages)

    def close(self):
        self.stopping.set()
        self.thread.join(5)
        self.sock.close()


@pytest.fixture(params=[10000, 0], ids=['cache', 'no-cache'])
def setup(request, instance, binary, free_port):
    site = Site(instance, binary, free_port())
    with open(instance.dir / 'etc/aliases', 'a') as f:
        for a in REMOTE:
            f.write(f'{fwd(a)}: {a}\n')
    remote_port = free_port()
    sink = ClosingSink(SINK_IP, remote_port)
    with DnsServer(dict(ZONE)) as dns:
        instance.write_config({'mtad': {
            'remote_delivery': True,
            'dns_servers': [f'127.0.0.1:{dns.port}'],
            'remote_port': remote_port,
            'remote_connect_timeout': '5s',
            'dns_cache_size': request.param,
        }})
        site.mdad.start()
        site.mtad.start()
        try:
            yield site, dns, sink, request.param > 0
        finally:
            for d in (site.mtad, site.mdad):
                d.stop()
            print('--- mtad.log (tail) ---\n' + site.mtad.log()[-4000:])
            sink.close()


def asked(dns, name, qtype):
    return sum(1 for n, t, _ in list(dns.queries) if n.lower() == name and t == qtype)


def test_second_message_to_a_domain_asks_no_dns_again(setup):
    site, dns, sink, cached = setup
    send_with_id(site.port, body(1), rcpts=(fwd('r1@cache.test'),))
    wait_for(lambda: sink.count() == 1, 20, 'the first message at the sink')
    site.wait_queue_empty()
    first = {t: asked(dns, n, t) for n, t in
             (('cache.test', 'mx'), ('mx.cache.test', 'a'), ('mx.cache.test', 'aaaa'))}
    assert first == {'mx': 1, 'a': 1, 'aaaa': 1}, dns.queries

    send_with_id(site.port, body(2), rcpts=(fwd('r2@cache.test'),))
    wait_for(lambda: sink.count() == 2, 20, 'the second message at the sink')
    site.wait_queue_empty()
    assert sink.connections == 2  # a new connection, so a new route
    again = 0 if cached else 1
    assert asked(dns, 'cache.test', 'mx') == 1 + again
    assert asked(dns, 'mx.cache.test', 'a') == 1 + again
    assert asked(dns, 'mx.cache.test', 'aaaa') == 1 + again

    # Another domain served by the same host: its own MX, the host's
    # addresses from the cache.
    send_with_id(site.port, body(3), rcpts=(fwd('r3@other.test'),))
    wait_for(lambda: sink.count() == 3, 20, 'the third message at the sink')
    site.wait_queue_empty()
    assert asked(dns, 'other.test', 'mx') == 1
    assert asked(dns, 'mx.cache.test', 'a') == 1 + 2 * again
    assert [r for r, _ in sink.messages] == [['r1@cache.test'], ['r2@cache.test'],
                                             ['r3@other.test']]


def test_a_domain_that_does_not_exist_is_asked_once(setup):
    site, dns, sink, cached = setup
    send_with_id(site.port, body(1), rcpts=(fwd('g1@gone.test'),))
    # The bounce to alice is local: the queue empties once it is delivered.
    site.wait_queue_empty()
    send_with_id(site.port, body(2), rcpts=(fwd('g2@gone.test'),))
    site.wait_queue_empty()
    wait_for(lambda: len(site.messages('alice')) == 2, 20, 'two bounces for alice')
    assert asked(dns, 'gone.test', 'mx') == (1 if cached else 2)
    assert sink.count() == 0
