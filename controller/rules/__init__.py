"""Closed-loop rules: the engine, control blocks and the energy and water rules."""
