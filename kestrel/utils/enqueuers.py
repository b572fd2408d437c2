"""Keras 2's enqueuers (`keras.utils.OrderedEnqueuer`, `GeneratorEnqueuer`,
`SequenceEnqueuer`): worker threads read a Sequence or a generator ahead into a bounded queue
that `get()` yields from, for hand-written training loops.

Keras 3 keeps them private; here they run on threads whatever `use_multiprocessing` says (the
data is read by Python code that releases the GIL in NumPy / PIL / file reads).
"""
import queue
import random
import threading
from concurrent.futures import ThreadPoolExecutor

_POLL_S = 0.05  # how long a blocked put / get waits before looking at the stop signal again


class SequenceEnqueuer:
    """Base class: `start(workers, max_queue_size)`, `get()`, `is_running()`, `stop()`."""

    def __init__(self, sequence, use_multiprocessing=False):
        self.sequence = sequence
        self.use_multiprocessing = use_multiprocessing
        self.workers = 0
        self.queue = None
        self._stop_event = None
        self._threads = []

    def is_running(self) -> bool:
        return self._stop_event is not None and not self._stop_event.is_set()

    def start(self, workers=1, max_queue_size=10):
        """Start reading ahead with `workers` threads, at most `max_queue_size` items."""
        if workers < 1:
            raise ValueError(f"{type(self).__name__}.start: `workers` must be at least 1. "
                             f"Received: workers={workers}")
        self.workers = workers
        self.queue = queue.Queue(max_queue_size)
        self._stop_event = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True)
                         for _ in range(self._thread_count())]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout=None):
        """Signal the threads to stop, empty the queue and wait for them (`timeout` each)."""
        if self._stop_event is None:
            return
        self._stop_event.set()
        self._drain()
        for thread in self._threads:
            thread.join(timeout)
        self._drain()

    def _drain(self):
        while True:
            try:
                self.queue.get_nowait()
            except queue.Empty:
                return

    def _put(self, item) -> bool:
        """Put `item` once there is room; False when stopped meanwhile."""
        while not self._stop_event.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _next_item(self):
        """The next queued item, or None once stopped (polls the stop signal)."""
        while self.is_running():
            try:
                return self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if not any(thread.is_alive() for thread in self._threads) and \
                        self.queue.empty():
                    return None
        return None

    def _thread_count(self) -> int:
        raise NotImplementedError

    def _run(self):
        raise NotImplementedError

    def get(self):
        raise NotImplementedError


class OrderedEnqueuer(SequenceEnqueuer):
    """Reads a `Sequence` in order (shuffled per epoch with `shuffle=True`), epoch after epoch:
    `get()` never ends; `on_epoch_end()` runs once an epoch's batches have all been taken."""

    def __init__(self, sequence, use_multiprocessing=False, shuffle=False):
        super().__init__(sequence, use_multiprocessing)
        self.shuffle = shuffle

    def _thread_count(self) -> int:
        return 1  # one feeder, handing `workers` pool threads the indices in order

    def _run(self):
        with ThreadPoolExecutor(self.workers) as pool:
            while not self._stop_event.is_set():
                order = list(range(len(self.sequence)))
                if self.shuffle:
                    random.shuffle(order)
                for index in order:
                    if not self._put(pool.submit(self.sequence.__getitem__, index)):
                        return
                self._wait_until_taken()
                if self._stop_event.is_set():
                    return
                self.sequence.on_epoch_end()

    def _wait_until_taken(self):
        while not self.queue.empty() and not self._stop_event.wait(_POLL_S / 5):
            pass

    def get(self):
        """Yield the batches in order; an error of `__getitem__` is raised here."""
        while True:
            future = self._next_item()
            if future is None:
                return
            try:
                yield future.result()
            except Exception:
                self.stop()
                raise


class GeneratorEnqueuer(SequenceEnqueuer):
    """Reads a generator with `workers` threads (one at a time, under a lock): `get()` ends
    when the generator does, and raises the generator's error."""

    def __init__(self, generator, use_multiprocessing=False, wait_time=_POLL_S, seed=None):
        super().__init__(generator, use_multiprocessing)
        self.wait_time = wait_time  # Keras 2 slept between puts; a blocking queue waits
        self.seed = seed  # Keras 2 seeds worker processes only; threads share NumPy's RNG
        self._lock = threading.Lock()

    def _thread_count(self) -> int:
        return self.workers

    def _run(self):
        while not self._stop_event.is_set():
            try:
                with self._lock:
                    item = next(self.sequence)
            except StopIteration:
                return
            except Exception as error:  # handed to the reader, which raises it
                self._put((False, error))
                return
            if not self._put((True, item)):
                return

    def get(self):
        """Yield the generator's items as the threads read them."""
        while True:
            entry = self._next_item()
            if entry is None:
                return
            success, value = entry
            if not success:
                self.stop()
                raise value
            yield value
