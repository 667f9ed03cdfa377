"""What keeps a model consistent while several threads and a Ctrl-C act on it.

A training step (forward, backward, update) runs whole: beside no other step and no
inference batch, and a KeyboardInterrupt that arrives during it is delivered when it
ends. Inference batches run side by side, each in a plan of its own. The weights are
what the exclusion protects: a prediction never sees a half-updated model.
"""
import contextlib
import signal
import threading
import weakref

_guards = weakref.WeakKeyDictionary()   # model -> StepGuard (not an attribute: deepcopy)
_guards_lock = threading.Lock()


class StepGuard:
    """A readers-writer lock: inference batches read, training steps write. Writers go
    first once waiting, so a stream of predictions cannot starve training; the thread
    inside a step may itself run inference (a callback)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)   # waits only; state under _lock
        self._readers = 0
        self._writer = None
        self._waiting = 0

    # An inference batch: enter_reading(), then exit_reading() in a `finally`. The
    # uncontended path takes the plain lock alone (a Condition's `with` and notify_all
    # are Python-level calls: 1.0 us of one image's 30 through LeNet, and a context
    # manager's two calls 0.3 more).
    def enter_reading(self):
        with self._lock:
            if self._writer is not None or self._waiting:
                if self._writer != threading.get_ident():
                    while self._writer is not None or self._waiting:
                        self._cond.wait()
            self._readers += 1

    def exit_reading(self):
        with self._lock:
            self._readers -= 1
            if not self._readers and self._waiting:   # only writers wait for readers
                self._cond.notify_all()

    @contextlib.contextmanager
    def writing(self):
        me = threading.get_ident()
        with self._cond:
            if self._writer == me:       # a step inside a step: already exclusive
                reentered = True
            else:
                reentered = False
                self._waiting += 1
                while self._writer is not None or self._readers:
                    self._cond.wait()
                self._waiting -= 1
                self._writer = me
        try:
            yield
        finally:
            if not reentered:
                with self._cond:
                    self._writer = None
                    self._cond.notify_all()


def guard(model):
    g = _guards.get(model)     # the lock only where a guard is made
    if g is None:
        with _guards_lock:
            g = _guards.get(model)
            if g is None:
                g = _guards[model] = StepGuard()
    return g


@contextlib.contextmanager
def deferred_interrupt():
    """Holds back SIGINT for the block and raises the KeyboardInterrupt after it, so the
    block (one training step) is applied whole or not at all. Only in the main thread,
    and only where Python's own handler is installed (a program's own handler is left
    alone)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield
        return
    pending = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: pending.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if pending:
            raise KeyboardInterrupt
