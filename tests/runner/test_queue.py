"""The runner's work queue: order of service, its bound, delayed reruns and lazy cancellation."""

from __future__ import annotations

import itertools

import pytest

from corral.domain.models import Pool, VmSpec
from corral.runner.queue import WorkQueue
from corral.runner.work import Op, Priority, QueueFull, Work

_names = itertools.count(1)


def make_work(priority: Priority = Priority.REFILL, pool_priority: int = 0, *, pool: str = "debian",
              not_before: float = 0.0, op: Op = Op.CREATE) -> Work:
    p = Pool(name=pool, template=f"tmpl-{pool}", size=3, provider="sim", priority=pool_priority)
    spec = VmSpec(name=f"vm-{next(_names)}", pool=pool, template=p.template)
    return Work(op=op, spec=spec, pool=p, priority=priority, pool_priority=pool_priority, not_before=not_before)


def names(works: list[Work]) -> list[str]:
    return [w.name for w in works]


# --- order of service ---------------------------------------------------------------------------

def test_classes_go_most_urgent_first_whatever_the_order_of_arrival():
    q = WorkQueue(100)
    by_class = {c: make_work(c) for c in (Priority.REFILL, Priority.ONDEMAND, Priority.RERUN, Priority.HA_RESTART)}
    for work in by_class.values():  # the least urgent arrives first
        q.put(work, now=0.0)
    taken = q.take(10, now=0.0)
    assert [w.priority for w in taken] == [Priority.HA_RESTART, Priority.RERUN, Priority.ONDEMAND, Priority.REFILL]
    assert len(q) == 0


def test_within_a_class_the_higher_pool_priority_goes_first_then_arrival():
    q = WorkQueue(100)
    low1, high1, mid, low2, high2 = (make_work(Priority.REFILL, p) for p in (0, 5, 2, 0, 5))
    urgent_low = make_work(Priority.ONDEMAND, -10)
    for work in (low1, high1, mid, low2, high2, urgent_low):
        q.put(work, now=0.0)
    taken = q.take(10, now=0.0)
    # the class outranks the pool priority; in a class, the pool priority outranks arrival
    assert names(taken) == names([urgent_low, high1, high2, mid, low1, low2])


def test_first_come_first_served_among_equals():
    q = WorkQueue(1000)
    works = [make_work() for _ in range(50)]
    for work in works:
        q.put(work, now=0.0)
    assert [w.seq for w in works] == sorted({w.seq for w in works}), "arrival numbers are distinct and rising"
    out = q.take(20, now=0.0) + q.take(100, now=0.0)
    assert out == works


def test_mixed_load_comes_out_sorted_by_key():
    q = WorkQueue(1000)
    classes = list(Priority)
    works = [make_work(classes[(i * 7) % 4], (i * 3) % 5) for i in range(200)]
    for work in works:
        q.put(work, now=0.0)
    out = []
    while chunk := q.take(13, now=0.0):
        out.extend(chunk)
    assert out == sorted(works, key=lambda w: (w.priority, -w.pool_priority, works.index(w)))


# --- the bound ----------------------------------------------------------------------------------

def test_a_full_queue_refuses_and_says_how_full_it_is():
    q = WorkQueue(3)
    for _ in range(3):
        q.put(make_work(), now=0.0)
    assert q.refused == 0
    extra = make_work()
    with pytest.raises(QueueFull, match=r"\b3 of 3\b"):
        q.put(extra, now=0.0)
    assert q.refused == 1
    assert len(q) == 3
    assert not extra.queued and extra.seq == 0, "a refused work is not queued"
    with pytest.raises(QueueFull):
        q.put(make_work(Priority.HA_RESTART), now=0.0)  # the bound holds for every class
    assert q.refused == 2
    assert extra not in q.works()


def test_over_limit_bypasses_the_bound():
    q = WorkQueue(2)
    q.put(make_work(), now=0.0)
    q.put(make_work(), now=0.0)
    rerun = make_work(Priority.RERUN)
    q.put(rerun, now=0.0, over_limit=True)
    assert len(q) == 3 and q.refused == 0
    assert q.room() == 0
    with pytest.raises(QueueFull, match=r"\b3 of 2\b"):
        q.put(make_work(), now=0.0)
    assert q.take(1, now=0.0) == [rerun]


def test_a_taken_work_frees_its_place():
    q = WorkQueue(1)
    q.put(make_work(), now=0.0)
    with pytest.raises(QueueFull):
        q.put(make_work(), now=0.0)
    q.take(1, now=0.0)
    q.put(make_work(), now=0.0)  # room again
    assert len(q) == 1


def test_room_is_what_fits_below_a_share_of_the_limit():
    q = WorkQueue(10)
    assert q.room() == 10
    assert q.room(0.5) == 5
    for _ in range(4):
        q.put(make_work(), now=0.0)
    assert q.room() == 6
    assert q.room(0.5) == 1
    assert q.room(0.3) == 0, "never negative"
    assert q.room(0.0) == 0


def test_a_queue_must_hold_something():
    with pytest.raises(ValueError):
        WorkQueue(0)


# --- delayed works ------------------------------------------------------------------------------

def test_a_delayed_work_is_not_taken_before_it_is_due():
    q = WorkQueue(10)
    later = make_work(Priority.RERUN, not_before=10.0)
    q.put(later, now=0.0)
    assert len(q) == 1 and later.queued
    assert q.next_due() == 10.0
    assert q.take(5, now=9.999) == []
    assert q.due(9.999) == 0
    assert later.queued and len(q) == 1
    assert q.take(5, now=10.0) == [later]
    assert q.next_due() is None
    assert len(q) == 0 and not later.queued


def test_a_work_due_exactly_now_is_ready_at_once():
    q = WorkQueue(10)
    work = make_work(not_before=5.0)
    q.put(work, now=5.0)
    assert q.next_due() is None
    assert q.take(1, now=5.0) == [work]


def test_delayed_works_become_due_in_order_and_next_due_follows():
    q = WorkQueue(10)
    at30, at10, at20 = make_work(Priority.RERUN, not_before=30.0), make_work(Priority.RERUN, not_before=10.0), \
        make_work(Priority.RERUN, not_before=20.0)
    for work in (at30, at10, at20):
        q.put(work, now=0.0)
    assert q.next_due() == 10.0
    assert q.take(5, now=15.0) == [at10]
    assert q.next_due() == 20.0
    assert q.take(5, now=25.0) == [at20]
    assert q.next_due() == 30.0
    assert q.take(5, now=30.0) == [at30]
    assert q.next_due() is None


def test_a_due_work_takes_its_place_by_class_among_ready_works():
    q = WorkQueue(10)
    refill = make_work(Priority.REFILL)
    rerun = make_work(Priority.RERUN, not_before=5.0)
    q.put(rerun, now=0.0)
    q.put(refill, now=1.0)
    assert q.take(1, now=2.0) == [refill], "the rerun is not due yet"
    q.put(refill2 := make_work(Priority.REFILL), now=3.0)
    assert q.take(5, now=6.0) == [rerun, refill2], "once due, the rerun outranks refills"


def test_arrived_is_set_on_put_and_on_promotion():
    q = WorkQueue(10)
    now_work = make_work()
    q.put(now_work, now=7.5)
    assert now_work.arrived == 7.5
    later = make_work(Priority.RERUN, not_before=20.0)
    later.arrived = 1.0  # from its first time in the queue
    q.put(later, now=8.0)
    assert later.arrived == 1.0, "not arrived while it waits out its backoff"
    assert q.oldest_arrival(8.0) == 7.5
    q.take(1, now=8.0)
    assert q.oldest_arrival(8.0) is None
    assert q.due(25.0) == 1
    assert later.arrived == 20.0, "a delayed work arrives when it becomes due"
    assert q.oldest_arrival(25.0) == 20.0


def test_counts_include_delayed_works():
    q = WorkQueue(2)
    q.put(make_work(Priority.RERUN, not_before=100.0), now=0.0)
    q.put(make_work(), now=0.0)
    assert len(q) == 2
    assert q.by_class[Priority.RERUN] == 1 and q.by_class[Priority.REFILL] == 1
    with pytest.raises(QueueFull):
        q.put(make_work(), now=0.0)


# --- take ---------------------------------------------------------------------------------------

def test_take_returns_at_most_count():
    q = WorkQueue(10)
    works = [make_work() for _ in range(5)]
    for work in works:
        q.put(work, now=0.0)
    assert q.take(0, now=0.0) == []
    assert q.take(2, now=0.0) == works[:2]
    assert len(q) == 3
    assert q.take(10, now=0.0) == works[2:]
    assert q.take(10, now=0.0) == []
    assert all(not w.queued for w in works)
    assert sum(q.by_class.values()) == 0


def test_works_turned_down_by_accept_stay_queued_in_their_order():
    q = WorkQueue(20)
    a = [make_work(Priority.REFILL, pool="a") for _ in range(3)]
    b = [make_work(Priority.REFILL, pool="b") for _ in range(3)]
    urgent_a = make_work(Priority.HA_RESTART, pool="a")
    for work in (a[0], b[0], a[1], b[1], a[2], b[2], urgent_a):
        q.put(work, now=0.0)
    seen: list[Work] = []

    def only_b(work: Work) -> bool:
        seen.append(work)
        return work.pool.name == "b"

    # service order: urgent_a, a0, b0, a1, b1, a2, b2; a pool's refills turned down once are
    # passed over for the rest of the take (the same provider would turn them down again)
    assert q.take(4, now=0.0, accept=only_b) == b
    assert seen == [urgent_a, a[0], b[0], b[1], b[2]], "accept is asked in order of service"
    assert len(q) == 4
    assert all(w.queued for w in a + [urgent_a]) and not any(w.queued for w in b)
    assert q.by_class[Priority.HA_RESTART] == 1 and q.by_class[Priority.REFILL] == 3
    assert q.take(10, now=0.0) == [urgent_a, a[0], a[1], a[2]]


def test_accept_turns_down_at_most_count_refill_pools() -> None:
    q = WorkQueue(20)
    works = [make_work(Priority.REFILL, pool=f"p{i}") for i in range(5)]
    for work in works:
        q.put(work, now=0.0)
    seen: list[Work] = []

    def only_p4(work: Work) -> bool:
        seen.append(work)
        return work.pool.name == "p4"

    assert q.take(3, now=0.0, accept=only_p4) == []
    assert seen == works[:3], "three looks for a take of three"


def test_accept_turning_everything_down_takes_nothing():
    q = WorkQueue(10)
    works = [make_work() for _ in range(4)]
    for work in works:
        q.put(work, now=0.0)
    assert q.take(4, now=0.0, accept=lambda w: False) == []
    assert len(q) == 4
    assert q.take(4, now=0.0) == works


def test_take_looks_at_no_more_than_count_turned_down_works():
    q = WorkQueue(100)
    works = [make_work() for _ in range(50)]
    for work in works:
        q.put(work, now=0.0)
    asked: list[Work] = []
    assert q.take(3, now=0.0, accept=lambda w: asked.append(w) or False) == []
    assert asked == works[:1], "one pool's refills: its first turned down, the rest are passed over"
    assert len(q) == 50 and q.take(50, now=0.0) == works


def test_take_before_a_class_takes_only_more_urgent_classes():
    q = WorkQueue(10)
    refill, ondemand, rerun = make_work(Priority.REFILL), make_work(Priority.ONDEMAND), make_work(Priority.RERUN)
    for work in (refill, ondemand, rerun):
        q.put(work, now=0.0)
    assert q.most_urgent(0.0) is Priority.RERUN
    assert q.take(10, now=0.0, before=Priority.RERUN) == []
    assert q.take(10, now=0.0, before=Priority.REFILL) == [rerun, ondemand]
    assert q.most_urgent(0.0) is Priority.REFILL
    assert q.take(10, now=0.0, before=Priority.REFILL) == []
    assert len(q) == 1
    assert q.take(10, now=0.0) == [refill]
    assert q.most_urgent(0.0) is None


def test_most_urgent_skips_cancelled_and_counts_due_delayed_works():
    q = WorkQueue(10)
    ha, refill = make_work(Priority.HA_RESTART), make_work()
    rerun = make_work(Priority.RERUN, not_before=5.0)
    for work in (ha, refill, rerun):
        q.put(work, now=0.0)
    q.cancel([ha])
    assert q.most_urgent(1.0) is Priority.REFILL
    assert q.most_urgent(5.0) is Priority.RERUN
    assert q.take(1, now=5.0, before=Priority.ONDEMAND) == [rerun]


# --- cancellation -------------------------------------------------------------------------------

def test_cancel_drops_queued_works_and_they_never_come_out():
    q = WorkQueue(10)
    keep1, drop1, keep2, drop2 = make_work(Priority.ONDEMAND), make_work(Priority.ONDEMAND), make_work(), make_work()
    for work in (keep1, drop1, keep2, drop2):
        q.put(work, now=0.0)
    assert q.by_class[Priority.ONDEMAND] == 2 and q.by_class[Priority.REFILL] == 2
    assert q.cancel([drop1, drop2]) == 2
    assert len(q) == 2
    assert q.by_class[Priority.ONDEMAND] == 1 and q.by_class[Priority.REFILL] == 1
    assert drop1.cancelled and not drop1.queued
    assert set(q.works()) == {keep1, keep2}
    assert q.take(10, now=0.0) == [keep1, keep2]
    assert len(q) == 0 and sum(q.by_class.values()) == 0


def test_cancelling_the_top_work_leaves_the_rest_in_order():
    q = WorkQueue(10)
    works = [make_work() for _ in range(4)]
    for work in works:
        q.put(work, now=0.0)
    assert q.cancel([works[0]]) == 1
    assert q.due(0.0) == 3
    assert q.take(1, now=0.0) == [works[1]]
    assert q.oldest_arrival(0.0) == 0.0


def test_cancelling_twice_is_harmless():
    q = WorkQueue(10)
    work, other = make_work(), make_work()
    q.put(work, now=0.0)
    q.put(other, now=0.0)
    assert q.cancel([work]) == 1
    assert q.cancel([work]) == 0
    assert q.cancel([work, work]) == 0
    assert len(q) == 1 and q.by_class[Priority.REFILL] == 1
    assert q.take(10, now=0.0) == [other]
    assert len(q) == 0


def test_cancel_only_counts_works_still_queued():
    q = WorkQueue(10)
    taken, waiting = make_work(), make_work()
    q.put(taken, now=0.0)
    q.put(waiting, now=0.0)
    assert q.take(1, now=0.0) == [taken]
    never_queued = make_work()
    assert q.cancel([taken, never_queued, waiting]) == 1
    assert taken.cancelled and never_queued.cancelled, "cancel marks every work it is given"
    assert len(q) == 0 and sum(q.by_class.values()) == 0
    assert q.room() == 10


def test_cancelled_delayed_works_do_not_come_due():
    q = WorkQueue(10)
    first, second = make_work(Priority.RERUN, not_before=5.0), make_work(Priority.RERUN, not_before=8.0)
    q.put(first, now=0.0)
    q.put(second, now=0.0)
    assert q.cancel([first]) == 1
    assert len(q) == 1 and q.by_class[Priority.RERUN] == 1
    assert q.next_due() == 8.0, "a cancelled work no longer sets the next wake-up"
    assert q.works() == [second]
    assert q.take(10, now=6.0) == []
    assert q.take(10, now=9.0) == [second]
    assert q.next_due() is None


def test_a_cancelled_work_frees_its_place_in_the_bound():
    q = WorkQueue(2)
    a, b = make_work(), make_work()
    q.put(a, now=0.0)
    q.put(b, now=0.0)
    q.cancel([a])
    q.put(c := make_work(), now=0.0)
    assert len(q) == 2
    assert q.take(10, now=0.0) == [b, c]


def test_works_lists_every_live_work_ready_or_delayed():
    q = WorkQueue(10)
    ready, delayed, gone = make_work(), make_work(Priority.RERUN, not_before=50.0), make_work()
    for work in (ready, delayed, gone):
        q.put(work, now=0.0)
    q.cancel([gone])
    assert sorted(names(q.works())) == sorted(names([ready, delayed]))
    q.take(10, now=0.0)
    assert q.works() == [delayed]


# --- reruns -------------------------------------------------------------------------------------

def test_a_rerun_keeps_its_arrival_number():
    q = WorkQueue(10)
    first, second = make_work(), make_work()
    q.put(first, now=0.0)
    q.put(second, now=0.0)
    seqs = (first.seq, second.seq)
    assert q.take(2, now=0.0) == [first, second]
    # the second fails first and is queued again as a rerun, then the first
    for work in (second, first):
        work.priority = Priority.RERUN
        work.tries += 1
        q.put(work, now=1.0, over_limit=True)
    assert (first.seq, second.seq) == seqs
    fresh = make_work(Priority.RERUN)
    q.put(fresh, now=1.0)
    assert fresh.seq > max(seqs)
    assert q.by_class[Priority.RERUN] == 3 and q.by_class[Priority.REFILL] == 0
    assert q.take(10, now=1.0) == [first, second, fresh], "reruns go by their original arrival"


def test_delayed_reruns_that_come_due_together_go_by_original_arrival():
    q = WorkQueue(10)
    first, second = make_work(), make_work()
    q.put(first, now=0.0)
    q.put(second, now=0.0)
    q.take(2, now=0.0)
    second.priority, second.not_before = Priority.RERUN, 4.0
    first.priority, first.not_before = Priority.RERUN, 6.0
    q.put(second, now=1.0, over_limit=True)
    q.put(first, now=2.0, over_limit=True)
    assert q.take(10, now=10.0) == [first, second]


# --- refills in order of need -------------------------------------------------------------------

def pools_of(works: list[Work]) -> list[str]:
    return [w.pool.name for w in works]


@pytest.mark.parametrize(("needs", "arrivals", "served"), [
    # the neediest pool's refills first, whenever they arrived
    ({"a": 0.5, "b": 0.5, "c": 0.0}, "aabbc", "cabab"),
    # equally needy: round-robin, the pool with fewer taken first, then arrival
    ({"a": 0.0, "b": 0.0}, "aaabbb", "ababab"),
    # a pool arriving late among equals takes its turn at once
    ({"a": 0.0, "b": 0.0, "c": 0.0}, "aaaabbbbc", "abcababab"),
    # a lower need goes first
    ({"a": 2.0, "b": 1.0}, "aabb", "bbaa"),
])
def test_refills_go_in_order_of_need(needs: dict[str, float], arrivals: str, served: str) -> None:
    q = WorkQueue(100, need=needs.__getitem__)
    for pool in arrivals:
        q.put(make_work(pool=pool), now=0.0)
    assert "".join(pools_of(q.take(100, now=0.0))) == served


def test_need_is_read_when_works_are_taken_not_when_they_arrive() -> None:
    needs = {"a": 0.0, "b": 1.0}
    q = WorkQueue(100, need=needs.__getitem__)
    works = [make_work(pool=p) for p in "aabb"]
    for work in works:
        q.put(work, now=0.0)
    assert pools_of(q.take(1, now=0.0)) == ["a"]
    needs.update(a=1.0, b=0.0)  # b ran dry meanwhile
    assert pools_of(q.take(2, now=0.0)) == ["b", "b"]
    assert q.take(5, now=0.0) == [works[1]], "arrival order kept within a pool"


def test_pool_priority_orders_refills_before_need() -> None:
    q = WorkQueue(100, need={"low": 0.0, "high": 5.0}.__getitem__)
    low, high = make_work(pool="low"), make_work(pool="high", pool_priority=3)
    ondemand = make_work(Priority.ONDEMAND, pool="high")
    for work in (low, high, ondemand):
        q.put(work, now=0.0)
    assert q.take(3, now=0.0) == [ondemand, high, low]


def test_without_need_refills_go_by_arrival() -> None:
    q = WorkQueue(100)
    works = [make_work(pool=p) for p in "aabbc"]
    for work in works:
        q.put(work, now=0.0)
    assert q.take(100, now=0.0) == works


def test_cancelled_refills_are_skipped_and_counts_kept() -> None:
    q = WorkQueue(100, need={"a": 0.0, "b": 1.0}.__getitem__)
    works = [make_work(pool=p) for p in "aabb"]
    for work in works:
        q.put(work, now=0.0)
    assert q.cancel(works[:2]) == 2
    assert len(q) == 2 and q.by_class[Priority.REFILL] == 2
    assert q.most_urgent(0.0) is Priority.REFILL
    assert q.take(10, now=0.0) == works[2:]
    assert q.most_urgent(0.0) is None and q.due(0.0) == 0 and q.oldest_arrival(0.0) is None
