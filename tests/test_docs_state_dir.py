"""docs/operations.md's "State directory" table names every file the daemon keeps under
`gateway.state_dir`: an operator moving or backing up the directory goes by it."""

from __future__ import annotations

from pathlib import Path

from controller.mqtt.buffer import BUFFER_FILE
from controller.rules.memory import RULE_MEMORY_DIR
from controller.scheduler.forecast import LOAD_FILE, PEAK_FILE, SCHEDULER_STATE_DIR
from controller.sparkplug.bdseq import BDSEQ_FILE
from controller.sparkplug.edge_node import HISTORY_FILE
from controller.statedir import LOCK_FILE
from drivers.opcua.security import CLIENT_CERT_FILE, CLIENT_KEY_FILE

OPERATIONS = Path(__file__).parents[1] / "docs" / "operations.md"


def test_the_state_directory_table_names_every_file() -> None:
    section = OPERATIONS.read_text(encoding="utf-8").split("\n## State directory\n", 1)[1]
    table = section.split("\n\n", 2)[1]
    files = [
        BUFFER_FILE,
        LOCK_FILE,
        f"{RULE_MEMORY_DIR}/{{rule}}.json",
        f"{SCHEDULER_STATE_DIR}/{LOAD_FILE}",
        f"{SCHEDULER_STATE_DIR}/{PEAK_FILE}",
        f"opcua/{CLIENT_CERT_FILE}",
        f"opcua/{CLIENT_KEY_FILE}",
        BDSEQ_FILE,
        HISTORY_FILE,
    ]
    assert [name for name in files if f"`{name}`" not in table] == []
