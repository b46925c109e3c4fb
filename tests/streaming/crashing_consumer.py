"""A consumer process for the crash test: `python crashing_consumer.py NAME MODE`.

slow: each batch sleeps inside its transaction (written, not committed) so the test can SIGKILL it
mid-batch; die-after-commit: kills itself with SIGKILL after its second commit, before the XACK;
drain: runs until the stream has nothing waiting or pending, then stops.
"""

import os
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rfm_portal.settings")

import django

django.setup()

from django.db import transaction  # noqa: E402

from streaming import consumer as consumer_module  # noqa: E402

name, mode = sys.argv[1], sys.argv[2]
real_apply = consumer_module.apply_events
commits = 0


def apply_events(events, **kwargs):
    global commits
    if mode == "slow":
        with transaction.atomic():
            result = real_apply(events, **kwargs)
            print("in-transaction", flush=True)
            time.sleep(0.5)
        return result
    result = real_apply(events, **kwargs)
    commits += 1
    if mode == "die-after-commit" and commits == 2:
        print("committed, dying before the ack", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
    return result


consumer_module.apply_events = apply_events
consumer = consumer_module.StreamConsumer(name)
stop = threading.Event()
if mode == "drain":
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.3)
        stats = consumer.stream.stats()
        if stats.lag == 0 and stats.pending == 0:
            break
    stop.set()
    thread.join()
else:
    consumer.run(stop)
print(f"done {consumer.counts}", flush=True)
