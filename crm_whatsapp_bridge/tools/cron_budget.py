"""How much a cron call may do so that Odoo's worker limits are never reached.

Odoo runs every ready cron job of a database in one poll of a cron worker, and
calls each job up to 10 times in a row while it reports work remaining. The
whole poll must fit in the worker's limits: ``limit_time_cpu`` (60 s by default,
applied through ``RLIMIT_CPU`` in prefork workers) and ``limit_time_real_cron``
(``limit_time_real``, 120 s, counted from the worker's last watchdog ping, which
comes before its sleep of up to 70 s). A job that works "until the backlog is
empty" in each call gets the worker killed, and Odoo marks it failed after 3
timeouts.

:class:`CronBudget` gives each call a deadline that takes the whole poll into
account, so that this addon's backlogged jobs together use a small, bounded
share of one poll:

- a call stops after :data:`CALL_SECONDS` of work;
- all calls of one poll together stop after :data:`POLL_REAL_SECONDS`;
- in a prefork worker, calls stop while :data:`CPU_RESERVE_SECONDS` of the CPU
  limit are still left for the rest of the poll.

Work is taken in units sized from the speed measured so far to fit in the rest of the
call (:meth:`CronBudget.unit`), so that a slow machine takes smaller units instead of
overrunning the deadline. A
call that starts with its poll's budget spent still does one item, so it reports
progress and the job stays ready; the next poll, with fresh limits, goes on.
"""

import resource
import threading
import time

CALL_SECONDS = 10
POLL_REAL_SECONDS = 20
CPU_RESERVE_SECONDS = 25
# How long one small unit may take once a poll's budget is spent, and the size of a first unit,
# before any speed is known.
UNIT_SECONDS = 2
FIRST_UNIT = 5

_poll = {"key": None, "started": 0.0}
_poll_lock = threading.Lock()


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_limit():
    """The soft CPU limit of a prefork worker for the current poll, or None outside one."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_CPU)
    return None if soft == resource.RLIM_INFINITY else soft


def _poll_started(limit_time_cpu):
    """Monotonic time at which the current poll began, as early as can be known.

    A threaded server's cron thread (and request thread) carries ``start_time``. A
    prefork worker sets its soft ``RLIMIT_CPU`` to the CPU time used so far plus
    ``limit_time_cpu`` before each poll: a new soft limit means a new poll, and the
    CPU time used since then is a lower bound of the real time the poll has taken.
    Outside both (a shell, a test), the poll is the call itself.
    """
    now = time.monotonic()
    start_time = getattr(threading.current_thread(), "start_time", None)
    if start_time:
        return now - max(time.time() - start_time, 0.0)
    key = _cpu_limit()
    if key is None:
        return now
    with _poll_lock:
        if _poll["key"] != key:
            cpu_in_poll = max(_cpu_seconds() - (key - limit_time_cpu), 0.0) if limit_time_cpu else 0.0
            _poll.update(key=key, started=now - cpu_in_poll)
        return _poll["started"]


class CronBudget:
    """The work one cron call may do; see the module documentation.

    :param call_seconds: this call's own cap (default :data:`CALL_SECONDS`)
    :param limit_time_cpu: Odoo's ``limit_time_cpu`` setting, to date a prefork poll's start
    """

    def __init__(self, call_seconds=None, limit_time_cpu=60):
        now = time.monotonic()
        call_seconds = CALL_SECONDS if call_seconds is None else call_seconds
        self.deadline = min(now + call_seconds, _poll_started(limit_time_cpu) + POLL_REAL_SECONDS)
        self.spent_at_start = self.exhausted()
        self._items = 0
        self._seconds = 0.0
        self._unit_started = now

    def exhausted(self):
        """True once this call should stop taking new work."""
        if time.monotonic() >= self.deadline:
            return True
        limit = _cpu_limit()
        return limit is not None and limit - _cpu_seconds() < CPU_RESERVE_SECONDS

    def unit(self, size):
        """How many items (at most ``size``) the next unit of work may take; then call :meth:`done`."""
        self._unit_started = time.monotonic()
        if self.spent_at_start:
            return 1
        if not self._items:
            return min(size, FIRST_UNIT)
        seconds_per_item = self._seconds / self._items
        # Batching is cheaper per item in big units: take what fits in the rest of the call.
        left = max(self.deadline - self._unit_started, 0.0)
        return max(1, min(size, int(left / seconds_per_item) if seconds_per_item else size))

    def unit_deadline(self):
        """A ``time.monotonic()`` deadline for work that checks the clock itself: this call's,
        or :data:`UNIT_SECONDS` from now once the poll's budget is spent (one small unit)."""
        if self.spent_at_start:
            return time.monotonic() + UNIT_SECONDS
        return self.deadline

    def done(self, items):
        """Record that the unit started by :meth:`unit` handled ``items`` items; return its seconds."""
        seconds = time.monotonic() - self._unit_started
        self._items += items
        self._seconds += seconds
        return seconds
