"""MQTT: the topic contract, the publisher, the store-and-forward buffer and commands."""
