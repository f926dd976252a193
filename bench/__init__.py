"""edgecell's benchmark harness: simulated Modbus devices, a real mosquitto, edgecell and its
peers (Node-RED, ThingsBoard IoT Gateway) measured from outside. See bench/README.md."""
