"""Which revision a call goes to: a tag's, strictly; by the split, exactly its percents
over every 100 calls, among the revisions that have replicas in routing; the latest,
with the rollout's fallback, when all calls go to it."""

from __future__ import annotations

from collections import Counter

import pytest

from events.projections.traffic import Rollout, Traffic
from services.api.routing import Route, RouteTable
from services.api.traffic import Chooser, Target, UnknownTag, split_name


def traffic(split: dict[int, int] | None = None, **tags: int) -> Traffic:
    return Traffic(revision=4, split=split or {}, tags=tags, rollout=None)


def test_a_split_of_90_10_is_exact_over_every_100_calls() -> None:
    chooser = Chooser()
    counts = Counter(
        chooser.target("f", traffic({3: 90, 4: 10}), "", {3, 4}).revision for _ in range(2000)
    )
    assert counts == {3: 1800, 4: 200}
    first_20 = [
        chooser.target("g", traffic({3: 90, 4: 10}), "", {3, 4}).revision for _ in range(20)
    ]
    assert first_20.count(4) == 2  # spread out, not 10 in a row


def test_a_canary_takes_its_percent_and_the_stable_the_rest() -> None:
    rollout = Rollout(canary=4, stable=3, step=1, percent=5)
    shared = Traffic(revision=4, split={}, tags={}, rollout=rollout)
    chooser = Chooser()
    counts = Counter(chooser.target("f", shared, "", {3, 4}).revision for _ in range(1000))
    assert counts == {3: 950, 4: 50}


def test_a_revision_with_no_replica_in_routing_gives_its_share_to_the_others() -> None:
    chooser = Chooser()
    assert {chooser.target("f", traffic({3: 90, 4: 10}), "", {3}).revision for _ in range(50)} == {
        3
    }
    assert chooser.target("f", traffic({3: 90, 4: 10}), "", set()) == Target(3, strict=False)


def test_tags_are_strict_and_an_unknown_tag_is_refused() -> None:
    chooser = Chooser()
    assert chooser.target("f", traffic(old=2), "old", set()) == Target(2, strict=True)
    with pytest.raises(UnknownTag):
        chooser.target("f", traffic(old=2), "new", {2})


def test_all_calls_to_the_latest_fall_back_during_a_rollout() -> None:
    assert Chooser().target("f", traffic(), "", {3}) == Target(4, strict=False, latest=True)
    table = RouteTable()
    table.add("f", Route(replica_id="old", revision=3, node="n", endpoint="e", limit=0))
    assert table.pick("f", Target(4, strict=False)).replica_id == "old"  # type: ignore[union-attr]
    assert table.pick("f", Target(4, strict=True)) is None


def test_a_name_may_carry_a_tag() -> None:
    assert split_name("hello@canary") == ("hello", "canary")
    assert split_name("hello") == ("hello", "")
