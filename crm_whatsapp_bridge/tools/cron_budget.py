"""How long a cron call may work so that Odoo's worker limits are never reached.

Odoo runs every ready cron job of a database in one poll of a cron worker, and
calls each job up to 10 times in a row while it reports work remaining. The
whole poll must fit in the worker's limits: ``limit_time_cpu`` (60 s by default,
applied through ``RLIMIT_CPU`` in prefork workers) and ``limit_time_real_cron``
(``limit_time_real``, 120 s, counted from the worker's last watchdog ping, which
comes before its sleep). A job that works "until the backlog is empty" in each
call gets the worker killed, and Odoo marks the job failed after 3 timeouts.

:class:`CronBudget` gives each call a deadline that takes the whole poll into
account, so several backlogged jobs of this addon share one poll's budget:

- a call stops after ``call_seconds`` of work;
- every call of one poll together stops after :data:`POLL_REAL_SECONDS`;
- in a prefork worker, the calls stop while at least :data:`CPU_RESERVE_SECONDS`
  of the CPU limit are left for the rest of the poll.

A call that starts with its poll's budget spent still does one small unit of
work (see :meth:`CronBudget.unit`), so it reports progress and the job stays
ready; the next poll, with fresh limits, goes on.
"""

import resource
import threading
import time

CALL_SECONDS = 10
POLL_REAL_SECONDS = 40
CPU_RESERVE_SECONDS = 25

_poll = {"key": None, "started": 0.0}
_poll_lock = threading.Lock()


def _cpu_seconds():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _cpu_limit():
    """The soft CPU limit of a prefork worker for the current poll, or None outside one."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_CPU)
    return None if soft == resource.RLIM_INFINITY else soft


def _poll_started():
    """Monotonic time at which the current poll began, as far as it can be known.

    A threaded server's cron thread (and request thread) carries ``start_time``. A
    prefork worker resets its ``RLIMIT_CPU`` before each poll, so a new soft limit
    means a new poll; it is first seen by the first budgeted call of the poll.
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
            _poll.update(key=key, started=now)
        return _poll["started"]


class CronBudget:
    """The time one cron call may use; see the module documentation."""

    def __init__(self, call_seconds=None):
        now = time.monotonic()
        call_seconds = CALL_SECONDS if call_seconds is None else call_seconds
        self.deadline = min(now + call_seconds, _poll_started() + POLL_REAL_SECONDS)
        self.spent_at_start = self.exhausted()

    def exhausted(self):
        """True once this call should stop taking new work."""
        if time.monotonic() >= self.deadline:
            return True
        limit = _cpu_limit()
        return limit is not None and limit - _cpu_seconds() < CPU_RESERVE_SECONDS

    def unit(self, size):
        """How many items the next unit of work may take: ``size``, or 1 once the poll's budget is spent."""
        return 1 if self.spent_at_start else size
