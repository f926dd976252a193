// An independent Sparkplug B host for edgecell's tests, on Eclipse Tahu's JavaScript
// sparkplug-payload (encode, decode, its compiled sparkplug_b.proto) and MQTT.js: nothing of
// edgecell's own encoder. It subscribes to one group and to the JSON contract's data topics,
// builds the node / device / metric tree from the births alone, resolves DDATA aliases and
// datatypes through that tree, and sends DCMD writes and NCMD rebirths when told on stdin.
//
// usage: node host.js MQTT_URL GROUP_ID JSON_BASE_TOPIC
// stdout: one JSON object a line: {event: ready | nbirth | dbirth | ddata | ddeath | ndeath |
//   unborn (a message of a node before its NBIRTH) | json | write_event | sent | error, ...}; stdin: {"cmd": "rebirth", "node": ...} or
//   {"cmd": "write", "node": ..., "device": ..., "metric": ..., "value": ...}.
"use strict";

const mqtt = require("mqtt");
const readline = require("readline");
const sparkplug = require("sparkplug-payload").get("spBv1.0");
const proto = require("sparkplug-payload/lib/sparkplugPayloadProto");

const Payload = proto.org.eclipse.tahu.protobuf.Payload;
const [url, group, jsonBase] = process.argv.slice(2);

// The tree, from births only: nodes[node] = {bdSeq, metrics: {name: {alias, type, value}},
// devices: {device: {metrics: {name: ...}, byAlias: {alias: name}}}}.
const nodes = {};

function emit(event) {
  process.stdout.write(JSON.stringify(event) + "\n");
}

function num(value) {
  if (value !== null && typeof value === "object" && "low" in value) {
    return value.toNumber ? value.toNumber() : value.high * 4294967296 + (value.low >>> 0);
  }
  return value;
}

// The proto field a datatype's value lives in (Sparkplug 3.0, "Datatypes").
const FIELD = {
  Int8: "intValue", Int16: "intValue", Int32: "intValue",
  UInt8: "intValue", UInt16: "intValue", UInt32: "intValue",
  Int64: "longValue", UInt64: "longValue", DateTime: "longValue",
  Float: "floatValue", Double: "doubleValue", Boolean: "booleanValue",
  String: "stringValue", Text: "stringValue", UUID: "stringValue",
};

function plainProperties(properties) {
  const out = {};
  for (const [key, value] of Object.entries(properties || {})) {
    out[key] = { type: value.type, value: num(value.value) };
  }
  return out;
}

function birthMetrics(payload) {
  return payload.metrics.map((metric) => ({
    name: metric.name,
    alias: metric.alias === undefined ? null : num(metric.alias),
    type: metric.type,
    value: metric.value === null ? null : num(metric.value),
    timestamp: num(metric.timestamp),
    properties: plainProperties(metric.properties),
  }));
}

function onSparkplug(topic, message) {
  const [, , kind, node, device] = topic.split("/");
  if (kind === "NCMD" || kind === "DCMD") return;
  if (kind === "NBIRTH") {
    const payload = sparkplug.decodePayload(message);
    const metrics = birthMetrics(payload);
    const bdSeq = metrics.find((m) => m.name === "bdSeq");
    nodes[node] = { bdSeq: bdSeq ? bdSeq.value : null, metrics: {}, devices: {} };
    for (const metric of metrics) nodes[node].metrics[metric.name] = metric;
    emit({ event: "nbirth", node, seq: num(payload.seq), bdSeq: nodes[node].bdSeq, metrics });
    return;
  }
  if (kind === "NDEATH") {
    const payload = sparkplug.decodePayload(message);
    const bdSeq = payload.metrics.find((m) => m.name === "bdSeq");
    emit({ event: "ndeath", node, bdSeq: bdSeq ? num(bdSeq.value) : null,
           hasSeq: payload.seq !== undefined && payload.seq !== null });
    return;
  }
  const tree = nodes[node];
  if (tree === undefined) {
    // A host that joins a live node sees its data before any birth: it keeps none of it
    // (no tree to read it with) and waits for the births it asks for.
    emit({ event: "unborn", kind, node, device });
    return;
  }
  if (kind === "DBIRTH") {
    const payload = sparkplug.decodePayload(message);
    const metrics = birthMetrics(payload);
    const entry = { metrics: {}, byAlias: {} };
    for (const metric of metrics) {
      entry.metrics[metric.name] = metric;
      if (metric.alias !== null) entry.byAlias[metric.alias] = metric.name;
    }
    tree.devices[device] = entry;
    emit({ event: "dbirth", node, device, seq: num(payload.seq), metrics });
    return;
  }
  if (kind === "DDEATH") {
    delete tree.devices[device];
    emit({ event: "ddeath", node, device });
    return;
  }
  if (kind === "DDATA") {
    const entry = tree.devices[device];
    if (entry === undefined) {
      emit({ event: "error", error: `DDATA of ${device} before its DBIRTH` });
      return;
    }
    // Raw protobuf: DATA metrics carry an alias and no datatype; the tree has both.
    const raw = Payload.decode(message);
    const values = {};
    const historical = {};
    for (const metric of raw.metrics) {
      const name = metric.name || entry.byAlias[num(metric.alias)];
      if (name === undefined) {
        emit({ event: "error", error: `unknown alias ${num(metric.alias)} of ${device}` });
        continue;
      }
      const type = entry.metrics[name].type;
      values[name] = metric.isNull ? null : num(metric[FIELD[type]]);
      if (metric.isHistorical) historical[name] = true;
    }
    emit({ event: "ddata", node, device, seq: num(raw.seq), values, historical });
  }
}

function onJson(topic, message) {
  if (topic.endsWith("/events/writes")) {
    emit({ event: "write_event", payload: JSON.parse(message.toString()) });
    return;
  }
  const device = topic.split("/").pop();
  const batch = JSON.parse(message.toString());
  const values = {};
  for (const [tag, value] of Object.entries(batch.values)) values[tag] = value.v;
  emit({ event: "json", device, values });
}

const client = mqtt.connect(url, { protocolVersion: 4, clean: true, reconnectPeriod: 200 });
client.on("error", (error) => emit({ event: "error", error: String(error) }));
client.on("message", (topic, message) => {
  try {
    if (topic.startsWith("spBv1.0/")) onSparkplug(topic, message);
    else onJson(topic, message);
  } catch (error) {
    emit({ event: "error", error: String(error && error.stack ? error.stack : error) });
  }
});
client.on("connect", () => {
  const filters = [`spBv1.0/${group}/#`, `${jsonBase}/data/+`, `${jsonBase}/events/writes`];
  client.subscribe(filters, { qos: 1 }, (error) => {
    emit(error ? { event: "error", error: String(error) } : { event: "ready" });
  });
});

function send(command) {
  const now = Date.now();
  if (command.cmd === "rebirth") {
    const payload = sparkplug.encodePayload({
      timestamp: now,
      metrics: [{ name: "Node Control/Rebirth", type: "Boolean", value: true }],
    });
    client.publish(`spBv1.0/${group}/NCMD/${command.node}`, payload, { qos: 0 });
  } else if (command.cmd === "write") {
    const metric = nodes[command.node].devices[command.device].metrics[command.metric];
    const payload = sparkplug.encodePayload({
      timestamp: now,
      metrics: [{ alias: metric.alias, type: metric.type, value: command.value }],
    });
    client.publish(`spBv1.0/${group}/DCMD/${command.node}/${command.device}`, payload,
                   { qos: 0 });
  }
  emit({ event: "sent", command });
}

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  try {
    send(JSON.parse(line));
  } catch (error) {
    emit({ event: "error", error: String(error) });
  }
});
process.stdin.on("end", () => client.end(true, () => process.exit(0)));
