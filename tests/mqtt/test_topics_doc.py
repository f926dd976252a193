"""docs/mqtt-topics.md stays true: its JSON parses, and its examples have the fields the
payload builders produce."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from controller.model import DeviceStatus, Quality, Sample
from controller.mqtt import topics
from controller.mqtt.config import BufferConfig
from controller.mqtt.publisher import PublisherStats

DOC = Path(__file__).parents[2] / "docs" / "mqtt-topics.md"
EXAMPLE = re.compile(r"<!-- example: ([a-z-]+) -->\n```json\n(.*?)\n```", re.S)


def examples() -> dict[str, dict]:
    return {name: orjson.loads(body) for name, body in EXAMPLE.findall(DOC.read_text())}


def built(name: str) -> dict:
    good = Sample("press", "power_kw", 1.0, Quality.GOOD, 1, 2)
    payloads = {
        "status-online": topics.online(
            topics.birth(version="0", config_hash="0", started=0), epoch="0"
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
