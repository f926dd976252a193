"""Modbus TCP and RTU: codec, read planner, shared links and the device driver."""
