"""What is in mtad's queue/ folder, as docs/queue.md describes it.

Since the queue keeps spare files (empty queue/<id> files made ahead of
need, their names already durable), queue/ is never empty while mtad runs,
and a message being written into a spare sits there without its trailer.
Tests and tools that look at the folder itself (rather than asking
`yubinctl queue list`) count only committed messages with messages().

Trust: test code; reads a spool written by mtad.
"""

import os
import re
from pathlib import Path

_TRAILER = re.compile(rb'yubin-end (\d{20}) [0-9a-f]{64}\n')


def state(path):
    """'spare' (an empty file), 'partial' (a version 2 or 3 file without its
    trailer yet: a message being received, or a crash's leftover that the
    next start removes), 'message' (anything else: a committed message, or
    a damaged file the queue manager quarantines), or None when it is gone."""
    try:
        size = os.stat(path).st_size
        if size == 0:
            return 'spare'
        with open(path, 'rb') as f:
            head = f.read(14)
            if head not in (b'yubin-queue 2 ', b'yubin-queue 3 '):
                return 'message'
            f.seek(max(0, size - 96))
            tail = f.read(96)
    except FileNotFoundError:
        return None
    m = _TRAILER.fullmatch(tail)
    return 'message' if m and int(m.group(1)) == size - 96 else 'partial'


def messages(folder):
    """Names of the committed messages in a queue folder (queue/ or hold/),
    sorted; [] when the folder does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(n for n in os.listdir(folder) if state(folder / n) == 'message')


def partial(folder):
    """Paths of files in queue/ holding part of a message (see state())."""
    folder = Path(folder)
    if not folder.exists():
        return []
    return sorted(folder / n for n in os.listdir(folder) if state(folder / n) == 'partial')
