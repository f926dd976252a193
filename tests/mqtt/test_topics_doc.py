"""docs/mqtt-topics.md stays true: its JSON parses, and its examples have the fields the
payload builders produce."""

from __future__ import annotations

import re
import struct
import typing
from pathlib import Path

import orjson
import pytest
from asyncua import ua

from controller.actuation import Outcome
from controller.model import DeviceStatus, Quality, Sample
from controller.mqtt import topics
from controller.mqtt.config import BufferConfig
from controller.mqtt.publisher import PublisherStats
from controller.rules.common import RuleMode
from drivers.modbus import codec as modbus_codec
from drivers.modbus.config import ByteOrder, DataType
from drivers.opcua import codec as opcua_codec

DOC = Path(__file__).parents[2] / "docs" / "mqtt-topics.md"
EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\n```json\n(.*?)\n```", re.S)


def examples() -> dict[str, dict]:
    return {name: orjson.loads(body) for name, body in EXAMPLE.findall(DOC.read_text())}


def built(name: str) -> dict:
    good = Sample("press", "power_kw", 1.0, Quality.GOOD, 1, 2)
    payloads = {
        "status-online": topics.online(
            topics.birth(version="0", config_hash="0", started=0), epoch="0", broker="b:1883"
        ),
        "status-offline": topics.decode(topics.death(ts=0, clean=True)),
        "data": topics.decode(topics.data_batch([good], epoch="0", seq=1, ts=0)),
        "tag": topics.decode(topics.tag_value(good)),
        "device-status": topics.decode(topics.device_status_payload(DeviceStatus("press"), ts=0)),
    }
    return payloads[name]


def test_every_json_block_of_the_page_parses():
    blocks = re.findall(r"```json\n(.*?)\n```", DOC.read_text(), re.S)
    assert len(blocks) >= 14
    for block in blocks:
        orjson.loads(block)


BUILT = ["status-online", "status-offline", "data", "tag", "device-status"]


@pytest.mark.parametrize("name", BUILT)
def test_example_has_the_fields_of_the_builder(name):
    assert set(examples()[name]) == set(built(name))


def test_data_example_samples_have_the_fields_of_the_builder():
    bad = Sample("press", "oil_temp_c", None, Quality.BAD, 1, 2, "timeout after 500 ms")
    batch = topics.data_batch([bad], epoch="0", seq=1, ts=0)
    built_bad = topics.decode(batch)["values"]["oil_temp_c"]
    documented = examples()["data"]["values"]
    assert set(documented["power_kw"]) == {"v", "q", "ts"}
    assert set(documented["oil_temp_c"]) == set(built_bad)


def test_health_example_has_every_publisher_stat():
    assert set(examples()["health"]["mqtt"]) == set(PublisherStats.__dataclass_fields__)


def test_buffer_settings_table_lists_every_setting():
    table = DOC.read_text().split("### `mqtt.buffer` settings", 1)[1]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
    assert documented == set(BufferConfig.model_fields)


def quoted(cell: str) -> set[str]:
    return set(re.findall(r'"([a-z_]+)"', cell))


def rows(field: str) -> list[str]:
    """The type cells of every field table row for `field` on the page."""
    cell = r"([^|]+(?:\\\|[^|]+)*)"
    return re.findall(rf"^\| `{re.escape(field)}` \| {cell} \|", DOC.read_text(), re.M)


def test_every_mode_listed_is_a_mode_the_engine_takes():
    modes = [quoted(cell) for cell in rows("mode")]
    assert len(modes) >= 3
    taken = set(typing.get_args(RuleMode))
    for listed in modes:
        assert listed <= taken
    assert modes[0] == taken  # the rule state's own table lists all of them
    answers = " ".join(body for name, body in EXAMPLE.findall(DOC.read_text()) if "command" in name)
    assert "manual" not in answers


# Write events publish every outcome but these two (rule state's `results` has them).
NOT_PUBLISHED = {Outcome.UNCHANGED, Outcome.OVERRULED}


def test_write_event_outcomes_are_the_actuators_in_both_tables():
    published = {o.value for o in Outcome} - {o.value for o in NOT_PUBLISHED}
    section = DOC.read_text().split("## `{base}/events/writes`", 1)[1].split("\n## ", 1)[0]
    (first,) = re.findall(r"^\| `outcome` \| ([^\n]+) \|$", section, re.M)
    assert quoted(first) == published
    full = DOC.read_text().split("### Write events, in full", 1)[1].split("<!-- example", 1)[0]
    table = re.findall(r"^\| `([a-z_]+)` \| ", full.split("| outcome | meaning |", 1)[1], re.M)
    assert set(table) == published


def test_float_values_are_described_as_each_driver_decodes_them():
    (row,) = re.findall(r"^\| `values\.\*\.v` \|.*$", DOC.read_text(), re.M)
    exact, nearest = "230.24888610839844", "230.24889"
    words = list(struct.unpack(">HH", struct.pack(">f", float(nearest))))
    assert str(modbus_codec.decode(words, DataType.FLOAT32, ByteOrder.ABCD)) == exact
    widened = struct.unpack(">f", struct.pack(">f", float(nearest)))[0]
    opcua_value = opcua_codec.decode_variant(ua.Variant(widened, ua.VariantType.Float))
    assert str(opcua_value) == nearest
    modbus_part, opcua_part = row.split("OPC UA Float", 1)
    assert exact in modbus_part
    assert nearest in opcua_part
    assert exact not in opcua_part


def test_opcua_event_example_has_the_fields_the_gateway_publishes():
    from controller.model import ConditionState, DeviceEvent, DeviceEventKind

    condition = ConditionState("ns=2;s=C.A", "A", True, False, True, b"\x01")
    event = DeviceEvent(
        "plc", DeviceEventKind.EVENT, "i=10637", "C", "ns=2;s=C", 1, 700, "m", b"\x01", condition
    )
    fields = {"ts", "alarm", *event.payload()}
    example = examples()["opcua-event"]
    assert set(example) == fields
    assert set(example["condition"]) == set(event.payload()["condition"])


def test_the_topic_table_lists_every_topic_of_the_gateway():
    """The page's first table names every topic `controller/mqtt/topics.py` builds (a topic
    the scheduler added was missing from it)."""
    table = DOC.read_text().split("| topic | retained | buffered | what |", 1)[1].split("\n\n")[0]
    listed = set(re.findall(r"^\| \[`([^`]+)`\]", table, re.M))
    names = {"device": "{device}", "tag_name": "{tag}", "rule": "{rule}", "alarm_name": "{alarm}"}
    built = set()
    for function in vars(topics).values():
        if not callable(function) or getattr(function, "__module__", "") != topics.__name__:
            continue
        parameters = list(typing.get_type_hints(function))
        if parameters[:1] != ["base"] or typing.get_type_hints(function)["return"] is not str:
            continue
        args = {p: names.get(p, "opcua") for p in parameters[1:-1]}
        built.add(function(base="{base}", **args).replace("/cmd/#", "/cmd/..."))
    assert built - listed == set()
