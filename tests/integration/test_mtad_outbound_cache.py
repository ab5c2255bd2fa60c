"""mtad's outbound connection cache and the restart safety of delivery
outcomes, end to end, on the harness of test_mtad_outbound.py (loopback DNS
server, aiosmtpd sinks on 127.0.0.x counting their sessions by EHLO).

Covered: messages sent one at a time, each delivered before the next comes,
share one SMTP session while remote_connection_cache_time holds the idle
connection (and take one session each with the cache off); a clean stop
(SIGTERM) while messages wait for the one connection allowed, then a
restart: every recipient delivered exactly once, the deferred one still
queued; a state save that fails with ENOSPC (the spool on a small tmpfs,
filled while the remote server holds its reply) is kept in memory, retried
and saved once space is back, with no recipient delivered twice (needs
root for mount(2); skipped otherwise).

Trust: a test; loopback only; mounts a tmpfs under the instance folder.
"""

import os
import signal
import subprocess
import threading

import pytest

from conftest import wait_for
from test_local_delivery import send
from test_mtad_outbound import BODY, Sink, fwd, outbound, start  # noqa: F401 (fixture)


def add_aliases(o, addresses):
    with open(o.site.inst.dir / 'etc/aliases', 'a') as f:
        for a in addresses:
            f.write(f'{fwd(a)}: {a}\n')


def delivered(sink):
    with sink.lock:
        return [r for m in sink.messages for r in m[1]]


@pytest.mark.parametrize('cache', ['10s', '0s'], ids=['cache-on', 'cache-off'])
def test_messages_one_at_a_time_share_one_cached_session(outbound, cache):
    sink = outbound.sink('127.0.0.2')
    names = [f'cache{i}@example.test' for i in range(4)]
    add_aliases(outbound, names)
    outbound.site.inst.write_config({'mtad': {'remote_connection_cache_time': cache}})
    start(outbound)
    for i, name in enumerate(names):
        # No message waits when a transaction ends: only the cache keeps
        # the connection for the next one.
        send(outbound.site.port, BODY, rcpts=(fwd(name),))
        wait_for(lambda: len(sink.messages) == i + 1, 20, f'message {i} at the sink')
    outbound.site.wait_queue_empty()
    assert delivered(sink) == names
    if cache == '0s':
        assert sink.ehlos == len(names), f'{sink.ehlos} sessions with the cache off'
    else:
        assert sink.ehlos == 1, f'{sink.ehlos} sessions for {len(names)} messages with the cache'


def test_clean_stop_then_restart_delivers_each_recipient_once(outbound):
    # One connection to the destination; the server holds its reply to the
    # first DATA, so the other messages wait for the connection. mtad gets
    # SIGTERM meanwhile: the transaction under way ends and is saved, the
    # waiting messages are not tried; after the restart each recipient is
    # delivered once, and the one that defers is still queued.
    gate = threading.Event()
    sink = outbound.sink('127.0.0.2', Sink({'stuck@example.test': '451 4.7.1 try later'},
                                           gate=gate))
    names = [f'once{i}@example.test' for i in range(5)]
    add_aliases(outbound, names + ['stuck@example.test'])
    outbound.site.inst.write_config({'mtad': {'remote_connections_per_domain': 1,
                                              'retry_min': '1h', 'retry_max': '1h'}})
    start(outbound)
    send(outbound.site.port, BODY, rcpts=(fwd(names[0]), fwd('stuck@example.test')))
    for name in names[1:]:
        send(outbound.site.port, BODY, rcpts=(fwd(name),))
    wait_for(sink.data_started.is_set, 20, 'the first message to reach DATA')
    mtad = outbound.site.mtad
    mtad.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: 'queue manager stopping' in mtad.log(), 10, 'mtad to begin its stop')
    gate.set()
    assert mtad.proc.wait(30) == 0, mtad.log()[-3000:]
    before = delivered(sink)
    assert before == [names[0]], before  # only the transaction under way
    mtad.start()

    def all_there():
        return set(delivered(sink)) == set(names)
    wait_for(all_there, 30, 'every recipient delivered after the restart')
    got = delivered(sink)
    assert sorted(got) == sorted(names), f'duplicates or strays: {got}'
    # stuck@ was refused 451 in the first transaction and is deferred for
    # an hour: its message is the only one left.
    wait_for(lambda: len(outbound.site.queue()) == 1, 20, 'the other messages to leave the queue')
    [left] = outbound.site.queue()
    assert [r['status'] for r in left['recipients']] == ['delivered', 'deferred'], left
    assert '451 4.7.1 try later' in left['recipients'][1]['reply']


def mount_tmpfs(path, size, uid, gid):
    r = subprocess.run(['mount', '-t', 'tmpfs', '-o', f'size={size},mode=0700,uid={uid},gid={gid}',
                        'yubin-statefull', str(path)], capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


def fill(path):
    """Writes `path` until the file system is full; returns its size."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    size, chunk = 0, 65536
    try:
        while True:
            try:
                size += os.write(fd, b'\0' * chunk)
            except OSError as exc:
                if exc.errno != 28:  # ENOSPC
                    raise
                if chunk == 1:
                    return size
                chunk = max(1, chunk // 16)
    finally:
        os.close(fd)


def test_state_save_enospc_is_retried_without_redelivery(outbound):
    if os.geteuid() != 0:
        pytest.skip('mount(2) needs root')
    spool = outbound.site.spool
    st = os.stat(spool)
    ok, why = mount_tmpfs(spool, 2 * 1024 * 1024, st.st_uid, st.st_gid)
    if not ok:
        pytest.skip(f'mount not permitted: {why}')
    ballast = spool / 'ballast'
    try:
        # ok@ is accepted; later@ is refused 451 the first time: the
        # outcome (one delivered, one deferred) needs a state file, and the
        # spool is full when it is saved.
        gate = threading.Event()
        sink = outbound.sink('127.0.0.2', Sink({'later@example.test': ['451 4.7.1 greylisted']},
                                               gate=gate))
        outbound.site.inst.write_config({'mtad': {'state_save_retry': '1s'}})
        start(outbound)
        send(outbound.site.port, BODY,
             rcpts=(fwd('ok@example.test'), fwd('later@example.test')))
        wait_for(sink.data_started.is_set, 20, 'the message to reach DATA')
        assert fill(ballast) > 0
        gate.set()
        log = outbound.site.mtad.log
        wait_for(lambda: 'cannot save delivery state, kept in memory' in log(), 20,
                 'the state save to fail')
        wait_for(lambda: 'delivery state still not saved' in log(), 20,
                 'a retry of the save while the disk is full')
        assert delivered(sink) == ['ok@example.test']
        ballast.unlink()
        wait_for(lambda: 'delivery state saved after an earlier failure' in log(), 20,
                 'the save once space is back')
        wait_for(lambda: len(sink.messages) == 2, 30, 'later@ on its retry')
        outbound.site.wait_queue_empty()
        assert sorted(delivered(sink)) == ['later@example.test', 'ok@example.test']
    finally:
        for d in (outbound.site.mtad, outbound.site.mdad):
            d.stop()
        ballast.unlink(missing_ok=True)
        r = subprocess.run(['umount', str(spool)], capture_output=True)
        if r.returncode != 0:
            subprocess.run(['umount', '-l', str(spool)], capture_output=True)
