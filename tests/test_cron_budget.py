import resource
import threading
import time

import pytest

from crm_whatsapp_bridge.tools import cron_budget
from crm_whatsapp_bridge.tools.cron_budget import CronBudget


@pytest.fixture
def cpu_limit():
    """Set the process's soft CPU limit as a prefork worker does before a poll; restore it after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_CPU)

    def set_limit(seconds_left):
        used = resource.getrusage(resource.RUSAGE_SELF)
        limit = int(used.ru_utime + used.ru_stime + seconds_left)
        resource.setrlimit(resource.RLIMIT_CPU, (limit, hard))
        return limit

    yield set_limit
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def in_thread(target, start_time):
    """Run ``target`` in a thread that carries ``start_time`` like Odoo's threaded cron runner."""
    result = []
    thread = threading.Thread(target=lambda: result.append(target()))
    thread.start_time = start_time
    thread.start()
    thread.join(10)
    return result[0]


def test_outside_a_poll_the_call_budget_applies():
    budget = CronBudget(call_seconds=10)
    assert not budget.exhausted()
    assert budget.unit(50) == cron_budget.FIRST_UNIT
    assert 9 < budget.deadline - time.monotonic() <= 10


def test_an_empty_call_budget_is_spent_at_once():
    budget = CronBudget(call_seconds=0)
    assert budget.exhausted()
    assert budget.unit(50) == 1


def test_threaded_cron_poll_that_ran_long_leaves_one_small_unit():
    budget = in_thread(CronBudget, time.time() - cron_budget.POLL_REAL_SECONDS - 1)
    assert budget.spent_at_start
    assert budget.unit(50) == 1


def test_threaded_cron_poll_deadline_counts_from_the_poll_start():
    budget = in_thread(CronBudget, time.time() - cron_budget.POLL_REAL_SECONDS + 5)
    assert not budget.spent_at_start
    assert 3 < budget.deadline - time.monotonic() <= 5


def test_prefork_poll_is_shared_by_the_calls_of_one_cpu_limit(cpu_limit, monkeypatch):
    cpu_limit(600)
    first = CronBudget(call_seconds=600)
    time.sleep(0.05)
    second = CronBudget(call_seconds=600)
    assert second.deadline == pytest.approx(first.deadline, abs=0.001), "same poll, same poll deadline"
    cpu_limit(700)  # the worker reset its CPU limit: a new poll
    third = CronBudget(call_seconds=600)
    assert third.deadline > first.deadline + 0.04


def test_prefork_call_stops_while_the_cpu_reserve_is_left(cpu_limit):
    cpu_limit(cron_budget.CPU_RESERVE_SECONDS + 100)
    assert not CronBudget().exhausted()
    cpu_limit(cron_budget.CPU_RESERVE_SECONDS - 5)
    budget = CronBudget()
    assert budget.exhausted()
    assert budget.unit(50) == 1


def test_prefork_poll_start_counts_the_cpu_the_poll_already_used(cpu_limit):
    # The worker's limit says the poll began 30 s of CPU ago: more than the poll's real budget.
    cpu_limit(60 - 30)
    budget = CronBudget(limit_time_cpu=60)
    assert budget.spent_at_start


def test_units_are_sized_from_the_measured_speed(monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(cron_budget.time, "monotonic", lambda: clock[0])
    budget = CronBudget(call_seconds=100)
    assert budget.unit(50) == cron_budget.FIRST_UNIT
    clock[0] += 0.1
    budget.done(5)  # 20 ms an item
    assert budget.unit(50) == 50
    clock[0] += 5.0
    budget.done(50)  # slower now: 55 items in 5.1 s, and 94.9 s left in the call
    assert budget.unit(50) == 50
    clock[0] = budget.deadline - 1.0
    assert budget.unit(50) == int(1.0 / (5.1 / 55)), "what fits in the last second"
    clock[0] = budget.deadline - 0.1
    budget.done(10)
    assert budget.unit(50) == 1, "the unit fits in what is left of the call"
