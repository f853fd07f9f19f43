"""A deliberate deadlock that holds the GIL, kept out of the suite (tests/conftest.py
ignores this folder). tests/test_watchdog.py runs it in a child process to prove that
the suite's watchdog ends such a hang in seconds, with every thread's stack.

It is the shape of the PySide6 deadlock the ui.jobs design avoids: one thread holds
the GIL while it waits for a mutex that nobody will release (PyDLL calls keep the
GIL), and another thread waits for the GIL. Neither pytest-timeout's signal nor its
thread method can fire then.
"""

import ctypes
import threading


def test_a_deadlock_that_holds_the_gil():
    libc = ctypes.PyDLL(None)  # PyDLL: the GIL stays held during the call
    mutex = ctypes.create_string_buffer(64)  # a zeroed pthread_mutex_t is an unlocked one
    waiting = threading.Thread(target=lambda: sum(range(10**9)), name="wants-the-gil")
    waiting.start()
    libc.pthread_mutex_lock(mutex)
    libc.pthread_mutex_lock(mutex)  # never returns, and keeps the GIL
