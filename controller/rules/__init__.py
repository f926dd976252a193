"""Closed-loop rules: the engine, control blocks and the energy and water rules."""

# The config module first: the energy and water rule kinds it lists import it in turn.
from controller.rules import config as _config  # noqa: F401
