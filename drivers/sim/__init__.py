"""The simulated factory cell: plant physics and real Modbus and OPC UA servers in front of it."""
