"""The delivery check of the fault suite (tests/faults/delivery.py) on deliveries written by
hand: it must refuse what a broken buffer would deliver, not only pass what a good one does."""

from __future__ import annotations

import pytest

from tests.faults.delivery import Arrival, assert_delivered_in_order, assert_every_seq_in_order


@pytest.mark.parametrize(
    "received",
    [
        [1, 2, 3, 4],
        [1, 2, 6, 3, 7, 4, 5, 8],  # backlog 1-5 beside live 6-8
        [4, 1, 5, 2, 3],  # live 4-5 overtook the whole backlog
        [1, 2, 3, 2, 3, 4],  # 2 and 3 sent again after a lost acknowledgement
    ],
)
def test_a_backlog_beside_live_data_passes(received):
    assert_every_seq_in_order("press", received)


@pytest.mark.parametrize(
    "received",
    [
        [1, 3, 2, 5, 4],  # 4 overtaken by 5, yet 3 overtook 2: no single live run above
        [1, 2, 5, 4, 3],  # the live run itself out of order
        [3, 2, 1],  # the backlog drained newest first
        [1, 2, 4, 3, 6, 5],  # two overtakings: live 4 before 3, yet 5 after 6
    ],
)
def test_out_of_order_delivery_fails(received):
    with pytest.raises(AssertionError, match="not a backlog and a live run"):
        assert_every_seq_in_order("press", received)


def test_a_gap_fails():
    with pytest.raises(AssertionError, match=r"never delivered: \[3\]"):
        assert_every_seq_in_order("press", [1, 2, 4])


def test_a_seq_sent_again_with_other_data_fails():
    arrivals = [Arrival("a", 1, b"x"), Arrival("a", 2, b"y"), Arrival("a", 2, b"z")]
    with pytest.raises(AssertionError, match="seq 2 of epoch a arrived twice with different"):
        assert_delivered_in_order("press", arrivals)


def test_the_same_seq_in_two_epochs_is_two_messages():
    arrivals = [Arrival("a", 1, b"x"), Arrival("a", 2, b"y"), Arrival("b", 1, b"z")]
    assert assert_delivered_in_order("press", arrivals) == {"a": [1, 2], "b": [1]}


def test_more_re_sends_than_allowed_fail():
    arrivals = [Arrival("a", 1, b"x"), Arrival("a", 2, b"y"), Arrival("a", 1, b"x")]
    assert_delivered_in_order("press", arrivals, repeats_allowed=1)
    with pytest.raises(AssertionError, match="1 messages sent again"):
        assert_delivered_in_order("press", arrivals, repeats_allowed=0)
