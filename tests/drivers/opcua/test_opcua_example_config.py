"""configs/examples/opcua-plc.yaml loads as the config the operator means."""

from __future__ import annotations

from pathlib import Path

import pytest

from controller.config import load_config
from drivers.opcua.config import OpcUaDevice, SecurityMode, TagMode

EXAMPLE = Path(__file__).resolve().parents[3] / "configs" / "examples" / "opcua-plc.yaml"


def test_example_opcua_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "plc-password").write_text("secret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = load_config(EXAMPLE).config
    (device,) = config.devices
    assert isinstance(device, OpcUaDevice)
    assert device.security.mode is SecurityMode.SIGN_AND_ENCRYPT
    assert device.auth.resolve_password() == "secret"
    setpoint = next(t for t in device.tags if t.name == "air_pressure_setpoint_bar")
    assert (setpoint.mode, setpoint.writable, setpoint.max) == (TagMode.POLL, True, 7.5)
    assert device.tags[0].node == 'ns=3;s="DB_Utilities"."Compressor"."Pressure"'
