"""A gateway's MQTT side in its own process, for tests that kill it (Last Will, SIGKILL
durability). Prints `connected` once connected; after a `go` line on stdin publishes one sample
batch every 100 ms and prints `durable <seq>` once that batch is on disk or acknowledged.

usage: publisher_child.py HOST PORT BASE CLIENT_ID STATE_DIR DURABILITY
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import structlog

from controller.clock import SYSTEM_CLOCK
from controller.model import Quality, Sample
from controller.mqtt import topics
from controller.mqtt.config import MqttConfig
from controller.mqtt.publisher import MqttPublisher


async def main(argv: list[str]) -> None:
    host, port, base, client_id, state_dir, durability = argv
    config = MqttConfig.model_validate(
        {
            "host": host,
            "port": int(port),
            "reconnect_min": "50ms",
            "reconnect_max": "300ms",
            "keepalive": "5s",
            "buffer": {"durability": durability},
        }
    )
    birth = topics.birth(version="child", config_hash="0", started=SYSTEM_CLOCK.wall_ms())
    publisher = MqttPublisher(
        config,
        base_topic=base,
        client_id=client_id,
        state_dir=Path(state_dir),
        clock=SYSTEM_CLOCK,
        birth=birth,
    )
    loop = asyncio.get_running_loop()
    async with publisher:
        await publisher.connected()
        print("connected", flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            await asyncio.Event().wait()  # stay connected until killed
        while True:
            now = SYSTEM_CLOCK.wall_ms()
            sample = Sample("press", "power_kw", 1.5, Quality.GOOD, now, now)
            seq = publisher.publish_samples("press", [sample])
            await publisher.persisted()
            print(f"durable {seq}", flush=True)
            await asyncio.sleep(0.1)


if __name__ == "__main__":
    # stdout is the protocol with the test; logs go to stderr.
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))
    asyncio.run(main(sys.argv[1:7]))
