"""The CI-sized load test (issue 10, item 5): tests/torture/load/load with
1,000 held connections (SMTP, IMAP, POP3), slow-loris clients dripping a
byte every 0.1 s (of a command line, or of a message after DATA), clients that never read (RETR / FETCH loops, then
pipelined NOOPs), a 64 MiB message against a 4 MiB max_message_size, and
the connection limits.

Asserts every check of the script (probe latency within a factor of the
unloaded probe's, every held connection answering NOOP, RSS per connection
and per deaf client bounded, 552 5.3.4 with nothing left in the queue, the
documented refusals) and records the figures. The full-sized run (10,000
connections, a 1 GiB stream, one byte per second) is the script by hand;
its figures are in docs/security.md.

Trust: a test; loopback only.
"""

import json
import subprocess
import sys

from conftest import REPO
from test_torture import sanitized  # the build's b_sanitize option

# Known failures, reported as KNOWN (not counted) until fixed; their leads
# are in docs/security.md (load). None open: mrad's close linger ended
# 'mrad-deaf-drop' (finding 4).
KNOWN = ()
# Under ASan + UBSan (a debug build) the daemons are several times slower
# and bigger: fewer connections and a looser latency factor; the point of
# that run is memory errors, not figures.
CONNECTIONS = 1000
CONNECTIONS_SANITIZED = 300


def test_load_keeps_serving_within_limits(build_dir, binary, record_property):
    for rel in ('master/yubin-master', 'ctl/yubinctl', 'mtad/mtad', 'mdad/mdad', 'mrad/mrad'):
        binary(rel)
    san = sanitized(build_dir)
    cmd = ['/usr/bin/python3', str(REPO / 'tests/torture/load/load'),
           '--build-dir', str(build_dir),
           '--connections', str(CONNECTIONS_SANITIZED if san else CONNECTIONS),
           # The SMTP probe commits (fsync) on a disk the parallel tests share:
           # a 50 ms floor under its few-millisecond reference.
           '--probes', '2', '--latency-factor', '25' if san else '10', '--latency-floor', '0.05',
           # ASan's shadow memory and quarantine make RSS figures meaningless.
           '--conn-bound', '1024' if san else '64',
           '--unread-bound', '65536' if san else '2048',
           '--stream-bound', '262144' if san else '65536',
           '--timeout', '2', '--loris', '6', '--loris-interval', '0.1',
           '--loris-seconds', '5', '--unread', '3', '--deaf-seconds', '3', '--linger', '12',
           '--stream-mib', '64', '--limit-mib', '4',
           '--max-connections', '60', '--per-ip', '5', '--known', ','.join(KNOWN), '--json']
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    sys.stdout.write(r.stdout)
    sys.stderr.write(r.stderr[-6000:])
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith('{')]
    assert lines, f'no figures (exit {r.returncode}):\n{r.stderr[-4000:]}'
    figures = json.loads(lines[-1])
    for key in ('held', 'kib_per_connection', 'held_latency_ratio', 'loris_latency_ratio',
                'deaf_latency_ratio', 'deaf_kib_per_client', 'stream_mtad_rss_growth_kib',
                'drip_still_open', 'seconds'):
        if key in figures:
            record_property(key, json.dumps(figures[key]))
    failed = [ln for ln in r.stdout.splitlines() if ln.startswith('load: FAIL')]
    fixed = [ln for ln in r.stdout.splitlines() if ln.startswith('load: FIXED')]
    if fixed:
        print('known failures that now pass (drop them from KNOWN):\n' + '\n'.join(fixed))
    assert not figures['failures'] and not failed, '\n'.join(failed) + '\n' + r.stderr[-4000:]
    assert figures['held'] == (CONNECTIONS_SANITIZED if san else CONNECTIONS)
    assert r.returncode == 0, r.stderr[-4000:]
