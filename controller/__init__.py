"""edgecell controller: the daemon that polls devices, runs rules and publishes to MQTT."""

__version__ = "0.1.0"
