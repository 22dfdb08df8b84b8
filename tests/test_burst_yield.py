import pytest
from hypothesis import given
from hypothesis import strategies as st

from crm_whatsapp_bridge.tools.burst_yield import BURST_CHUNK, STEP_SECONDS, BurstYield


class FakeInbox:
    """A clock that sleeping advances, and an inbox whose newest id grows by ``arrivals`` per sleep."""

    def __init__(self, arrivals=(), waited=0.0):
        self.now = 100.0
        self.newest = 1000
        self.arrivals = list(arrivals)
        self.waited = waited
        self.probes = 0
        self.slept = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds
        self.newest += self.arrivals.pop(0) if self.arrivals else 0

    def probe(self):
        self.probes += 1
        return self.newest, self.waited

    def burst_yield(self, **kwargs):
        return BurstYield(self.probe, clock=self.clock, sleep=self.sleep, **kwargs)


def test_no_pause_when_nothing_arrived_during_the_chunk():
    inbox = FakeInbox()
    burst = inbox.burst_yield(ratio=4)
    burst.start()
    assert burst.after_chunk(1.0) == 0.0
    assert inbox.slept == []
    assert burst.chunk_size(50) == 50


def test_pauses_up_to_ratio_times_the_chunk_while_webhooks_keep_arriving():
    inbox = FakeInbox(arrivals=[3] * 100)
    burst = inbox.burst_yield(ratio=4)
    burst.start()
    inbox.newest += 20  # stored by webhooks while the chunk ran
    assert burst.after_chunk(0.5) == 2.0
    assert sum(inbox.slept) == 2.0
    assert max(inbox.slept) <= STEP_SECONDS
    assert burst.in_burst
    assert burst.chunk_size(50) == BURST_CHUNK


def test_the_pause_ends_once_a_step_passes_without_a_new_event():
    inbox = FakeInbox(arrivals=[5, 5, 0])
    burst = inbox.burst_yield(ratio=4)
    burst.start()
    inbox.newest += 1
    assert burst.after_chunk(10.0) == 3 * STEP_SECONDS
    assert not burst.in_burst
    assert burst.chunk_size(50) == 50


def test_no_pause_once_the_oldest_ready_event_waited_too_long():
    inbox = FakeInbox(arrivals=[3] * 100, waited=20.0)
    burst = inbox.burst_yield(ratio=4, max_wait=20.0)
    burst.start()
    inbox.newest += 20
    assert burst.after_chunk(1.0) == 0.0
    assert burst.chunk_size(50) == 50


def test_the_pause_stops_at_the_calls_deadline():
    inbox = FakeInbox(arrivals=[3] * 100)
    burst = inbox.burst_yield(ratio=4)
    burst.start()
    inbox.newest += 20
    assert burst.after_chunk(1.0, deadline=inbox.now + 0.6) == pytest.approx(0.6)


def test_ratio_zero_never_probes_nor_pauses():
    inbox = FakeInbox(arrivals=[3] * 100)
    burst = inbox.burst_yield(ratio=0)
    burst.start()
    inbox.newest += 20
    assert burst.after_chunk(1.0) == 0.0
    assert inbox.probes == 0
    assert burst.chunk_size(50) == 50


@given(
    arrivals=st.lists(st.integers(min_value=0, max_value=50), max_size=60),
    during_chunk=st.integers(min_value=0, max_value=50),
    chunk_seconds=st.floats(min_value=0, max_value=30, allow_nan=False),
    ratio=st.floats(min_value=0, max_value=20, allow_nan=False),
    waited=st.floats(min_value=0, max_value=60, allow_nan=False),
    deadline_in=st.one_of(st.none(), st.floats(min_value=-5, max_value=60, allow_nan=False)),
)
def test_a_pause_is_bounded_by_the_ratio_and_the_deadline(arrivals, during_chunk, chunk_seconds, ratio,
                                                          waited, deadline_in):
    inbox = FakeInbox(arrivals=arrivals, waited=waited)
    burst = inbox.burst_yield(ratio=ratio, max_wait=20.0)
    burst.start()
    inbox.newest += during_chunk
    deadline = None if deadline_in is None else inbox.now + deadline_in
    paused = burst.after_chunk(chunk_seconds, deadline=deadline)
    assert 0.0 <= paused <= ratio * chunk_seconds + 1e-9
    if deadline is not None:
        assert paused <= max(deadline_in, 0.0) + 1e-9
    if not during_chunk or waited >= 20.0 or not ratio:
        assert paused == 0.0
    assert burst.chunk_size(50) in (50, BURST_CHUNK)
