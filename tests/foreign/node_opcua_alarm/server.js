// A foreign OPC UA server (node-opcua) with a real alarm condition, for edgecell's tests.
// argv[2]: port. stdin lines: "set <number>" sets Tank.Level; "state" prints the condition.
const { OPCUAServer } = require("node-opcua-server");
const { nodesets } = require("node-opcua-nodesets");
const { DataType, Variant } = require("node-opcua-variant");
const readline = require("readline");

async function main() {
  const port = parseInt(process.argv[2], 10);
  const server = new OPCUAServer({
    port,
    hostname: "127.0.0.1",
    nodeset_filename: [nodesets.standard],
    serverInfo: { applicationUri: "urn:edgecell:test:node-opcua" },
    alternateHostname: ["127.0.0.1"],
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  addressSpace.installAlarmsAndConditionsService(); // binds ConditionRefresh, Acknowledge, ...
  const namespace = addressSpace.getOwnNamespace();
  const tank = namespace.addObject({
    browseName: "Tank",
    organizedBy: addressSpace.rootFolder.objects,
    eventSourceOf: addressSpace.rootFolder.objects.server,
    eventNotifier: 0x01,
  });
  let level = 50.0;
  const levelNode = namespace.addVariable({
    componentOf: tank,
    browseName: "Level",
    nodeId: "s=Tank.Level",
    dataType: "Double",
    value: new Variant({ dataType: DataType.Double, value: level }),
  });
  const alarm = namespace.instantiateExclusiveLimitAlarm("ExclusiveLimitAlarmType", {
    browseName: "LevelHigh",
    conditionName: "LevelHigh",
    nodeId: "s=Tank.LevelHigh",
    conditionSource: tank,
    inputNode: levelNode,
    highHighLimit: 95.0,
    highLimit: 80.0,
    lowLimit: 5.0,
    optionals: ["ConfirmedState", "Confirm"],
  });

  await server.start();
  console.log(`ready ${server.endpoints[0].port}`);
  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [cmd, arg] = line.trim().split(/\s+/);
    if (cmd === "set") {
      level = parseFloat(arg);
      levelNode.setValueFromSource(new Variant({ dataType: DataType.Double, value: level }));
      console.log(`ok set ${level}`);
    } else if (cmd === "state") {
      console.log("state " + JSON.stringify({
        active: alarm.currentBranch().getActiveState(),
        acked: alarm.currentBranch().getAckedState(),
        comment: String(alarm.currentBranch().getComment().text),
      }));
    }
  });
  rl.on("close", async () => { await server.shutdown(100); process.exit(0); });
}
main().catch((err) => { console.error(err); process.exit(1); });
