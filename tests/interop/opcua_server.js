// A small OPC UA server on node-opcua (an independent stack: not asyncua) for the driver
// tests. Usage: node opcua_server.js PORT PKI_DIR [EXTRA_NAMESPACES]
// Prints "@@ ready PORT" once it listens; stdin lines "NAME VALUE" set a variable of M1,
// each answered "@@ set NAME" (node-opcua logs to stdout too: protocol lines carry "@@ ").
// EXTRA_NAMESPACES other namespaces are registered first, moving ours to a higher index.
"use strict";
const { OPCUAServer } = require("node-opcua-server");
const { nodesets } = require("node-opcua-nodesets");
const { Variant, DataType } = require("node-opcua-variant");
const { MessageSecurityMode, SecurityPolicy } = require("node-opcua-secure-channel");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");
const { standardUnits } = require("node-opcua-data-access");
const { StatusCodes } = require("node-opcua-status-code");
const readline = require("readline");

const NS_URI = "urn:loopline:interop:node-opcua";
const port = parseInt(process.argv[2], 10);
const pki = process.argv[3];
const extraNs = parseInt(process.argv[4] || "0", 10);

// name -> [DataType, initial value, writable, unit or null]
const VARIABLES = {
  Temp: [DataType.Double, 20.5, false, standardUnits.degree_celsius],
  SpeedSP: [DataType.Float, 0.0, true, standardUnits.revolutions_per_minute],
  State: [DataType.Int16, 1, true, null],
  Mode: [DataType.UInt16, 0, true, null],
  Good: [DataType.UInt32, 7, false, null],
  Enabled: [DataType.Boolean, false, true, null],
  Lot: [DataType.String, "L-00001", true, null],
};

async function main() {
  const serverCertificateManager = new OPCUACertificateManager({
    automaticallyAcceptUnknownCertificate: true,
    rootFolder: pki,
  });
  const server = new OPCUAServer({
    port,
    resourcePath: "/interop",
    nodeset_filename: [nodesets.standard],
    serverCertificateManager,
    securityModes: [MessageSecurityMode.None],
    securityPolicies: [SecurityPolicy.None],
    allowAnonymous: true,
    buildInfo: { productName: "loopline interop (node-opcua)" },
  });
  await server.initialize();
  const addressSpace = server.engine.addressSpace;
  for (let k = 0; k < extraNs; k++) addressSpace.registerNamespace(`urn:loopline:other-${k}`);
  const ns = addressSpace.registerNamespace(NS_URI);
  const m1 = ns.addObject({ organizedBy: addressSpace.rootFolder.objects, browseName: "M1", nodeId: "s=M1" });
  const vars = {};
  for (const [name, [dataType, init, writable, unit]] of Object.entries(VARIABLES)) {
    const opts = {
      componentOf: m1,
      browseName: name,
      nodeId: `s=M1.${name}`,
      dataType,
      accessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      userAccessLevel: writable ? "CurrentRead | CurrentWrite" : "CurrentRead",
      value: new Variant({ dataType, value: init }),
    };
    let v;
    if (unit) {
      v = ns.addAnalogDataItem({ ...opts, engineeringUnits: unit, engineeringUnitsRange: { low: -1e6, high: 1e6 } });
    } else {
      v = ns.addVariable(opts);
    }
    v.setValueFromSource(new Variant({ dataType, value: init }), StatusCodes.Good);
    vars[name] = [v, dataType];
  }
  ns.addVariable({
    componentOf: m1, browseName: "History", nodeId: "s=M1.History", dataType: DataType.Double,
    valueRank: 1, arrayDimensions: [3],
    value: new Variant({ dataType: DataType.Double, arrayType: 1, value: new Float64Array([1, 2, 3]) }),
  });
  await server.start();
  process.stdout.write(`@@ ready ${port}\n`);

  const rl = readline.createInterface({ input: process.stdin });
  rl.on("line", (line) => {
    const [name, ...rest] = line.trim().split(" ");
    const entry = vars[name];
    if (!entry) return;
    const [v, dataType] = entry;
    const text = rest.join(" ");
    let value = text;
    if (dataType === DataType.Boolean) value = text === "true";
    else if (dataType !== DataType.String) value = Number(text);
    v.setValueFromSource(new Variant({ dataType, value }), StatusCodes.Good);
    process.stdout.write(`@@ set ${name}\n`);
  });
  const stop = async () => {
    await server.shutdown(0);
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

main().catch((err) => {
  process.stderr.write(`${err.stack || err}\n`);
  process.exit(1);
});
