"""Threads started late on purpose, for the tests of schedules any number of threads share.

Importable from the tests (conftest puts this folder on ``sys.path``).
"""

import threading


def run_staggered(n_threads, delay, fn):
    """``fn`` on ``n_threads`` threads, thread ``i`` starting ``i * delay`` seconds
    late (as the OS may start one); all must finish within a minute."""
    def work(wait):
        if wait:
            threading.Event().wait(wait)
        fn()

    threads = [threading.Thread(target=work, args=(delay * i,)) for i in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
