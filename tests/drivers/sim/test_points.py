"""drivers/sim/points.py's DictPoints, the hand-set process image the tests and benches serve
over real Modbus: what is set is read, what the server writes is kept, an unknown point is a
KeyError as the PointSource contract says."""

from __future__ import annotations

import pytest

from drivers.sim.points import DictPoints, PointSource


def test_a_value_set_by_hand_or_written_is_read_back() -> None:
    given = {"plc.power_kw": 90.0, "plc.rate_pct": 0.0}
    image: PointSource = DictPoints(given)
    assert list(image.point_names()) == ["plc.power_kw", "plc.rate_pct"]
    image.write_point("plc.rate_pct", 25.0)
    assert image.read_point("plc.rate_pct") == 25.0
    assert given["plc.rate_pct"] == 0.0  # a copy: the caller's mapping is not the image


def test_an_unknown_point_is_a_key_error_on_read_and_write() -> None:
    image = DictPoints({"plc.power_kw": 90.0})
    with pytest.raises(KeyError):
        image.read_point("plc.nope")
    with pytest.raises(KeyError):
        image.write_point("plc.nope", 1.0)
    assert list(image.point_names()) == ["plc.power_kw"]
