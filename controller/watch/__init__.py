"""`edgecell watch`: a live terminal console of one gateway, built from its MQTT topics alone
(docs/mqtt-topics.md), so that it runs from any laptop that reaches the broker.

`state` and `text` are plain Python (what the console knows, and how a value becomes safe text);
`link` is the MQTT side; only `app` imports textual, the optional `console` extra, and only
`edgecell watch` imports `app`, so the daemon never loads it.
"""
