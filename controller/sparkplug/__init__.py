"""A Sparkplug B 3.0 edge node beside the JSON contract: its own MQTT session (whose Will is
NDEATH with bdSeq), births from the config and the tag table, data by exception, device deaths,
commands through the actuator, primary host awareness and historical replay (docs/sparkplug.md).

`sparkplug_b_pb2` is generated from Eclipse Tahu's sparkplug_b.proto by
`scripts/gen-sparkplug-proto`; do not edit it.
"""
