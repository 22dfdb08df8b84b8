"""When the inbox drain gives way to the webhooks of a burst.

A drain and the webhooks of a burst share the server's CPU. Each webhook must be
answered quickly (Meta retries slow deliveries), while a lead that shows up a few
seconds later costs the sales team nothing. So, like PostgreSQL's autovacuum cost
delay, the drain pauses between chunks while webhooks keep storing new events:

- a pause starts only if events arrived while the last chunk ran, and lasts at
  most ``ratio`` times as long as that chunk took;
- it ends as soon as one probe interval (:data:`STEP_SECONDS`) passes with no new
  event, so the drain is back at full speed once the burst is over;
- while the burst goes on, chunks are small (:data:`BURST_CHUNK` events), so that the
  drain never works long without checking whether it should pause;
- there is no pause once the oldest ready event has waited ``max_wait`` seconds, so
  that a sustained load the paused drain could not keep up with never holds leads
  back for longer than that.
"""
import time

RATIO = 4.0
MAX_WAIT_SECONDS = 20.0
STEP_SECONDS = 0.25
BURST_CHUNK = 5


class BurstYield:
    """The pauses of one drain call; see the module documentation.

    :param probe: callable returning ``(newest event id, seconds the oldest ready event
        has waited)``, as of the moment it is called
    :param ratio: longest pause as a multiple of the last chunk's time (0: never pause)
    :param max_wait: no pause once the oldest ready event has waited this long (seconds)
    :param clock: ``time.monotonic``, or a fake one in tests
    :param sleep: ``time.sleep``, or a fake one in tests
    """

    def __init__(self, probe, ratio=RATIO, max_wait=MAX_WAIT_SECONDS, clock=time.monotonic, sleep=time.sleep):
        self._probe = probe
        self.ratio = max(ratio, 0.0)
        self.max_wait = max_wait
        self._clock = clock
        self._sleep = sleep
        self._newest = None
        self.in_burst = False

    def start(self):
        """Note the newest event before the first chunk."""
        if self.ratio:
            self._newest = self._probe()[0]

    def after_chunk(self, chunk_seconds, deadline=None):
        """Pause while webhooks keep storing events; return the seconds paused.

        :param float chunk_seconds: how long the chunk just processed took
        :param float deadline: a ``clock()`` time the pause never goes past (the call's budget)
        """
        self.in_burst = bool(self.ratio) and self._arrived()
        if not self.in_burst:
            return 0.0
        started = self._clock()
        until = started + self.ratio * chunk_seconds
        if deadline is not None:
            until = min(until, deadline)
        while (left := until - self._clock()) > 0:
            self._sleep(min(STEP_SECONDS, left))
            if not self._arrived():
                self.in_burst = False
                break
        return self._clock() - started

    def chunk_size(self, size):
        """The size of the next chunk: at most :data:`BURST_CHUNK` while a burst goes on."""
        return min(size, BURST_CHUNK) if self.in_burst else size

    def _arrived(self):
        """Whether events arrived since the last probe and a pause is allowed now."""
        newest, waited = self._probe()
        arrived = self._newest is not None and newest > self._newest
        self._newest = newest
        return arrived and waited < self.max_wait
