"""The water rules, one module per rule kind (named as the `kind:` in config): water_leak,
cooling_tower_blowdown, rinse_reuse; and the tower's water balance (tower_chemistry.py)."""
