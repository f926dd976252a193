"""The energy rules, one module per rule kind (named as the `kind:` in config): peak_shaving,
compressed_air, chiller_reset, idle_standby; and what two of them share: the trim-and-respond
requirement (requirement.py) and load/unload cycles (load_cycles.py)."""
