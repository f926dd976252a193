"""The energy rules, one module per rule kind (named as the `kind:` in config): peak_shaving,
compressed_air, chiller_reset, idle_standby, battery_peak_shaving, pv_self_consumption; and what
some of them share: the trim-and-respond requirement (requirement.py), load/unload cycles
(load_cycles.py) and the battery's inputs, output and rate (battery.py)."""
