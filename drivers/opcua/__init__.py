"""OPC UA client driver: subscriptions, batched polled reads, writes, security, reconnect."""
