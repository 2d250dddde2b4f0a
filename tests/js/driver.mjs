// Drive centrifuge-js (the JavaScript SDK, in Node) from another process: one JSON command a
// line on stdin, one JSON line on stdout per result, and unsolicited event lines.
//
//   node tests/js/driver.mjs <node_modules folder>        (scripts/install-js prints it)
//
// Commands carry an "id" (echoed in the result) and an "op":
//   {"op": "connect", "client": "c1", "url": "ws://...", "data": {...}}
//       -> {"id", "ok": true, "client_id", "data"}  (the connect reply's data)
//   {"op": "subscribe", "client": "c1", "channel": "room"}  -> {"id", "ok": true, "data"}
//   {"op": "subscribed", "client": "c1", "channel": "room"}  -> waits until subscribed (again)
//   {"op": "publish", "client": "c1", "channel": "room", "data": {...}}  -> {"id", "ok": true}
//   {"op": "rpc", "client": "c1", "method": "echo", "data": {...}}  -> {"id", "ok": true, "data"}
//   {"op": "presence" | "history", "client": "c1", "channel": "room"}  -> {"id", "ok": true, "result"}
//   {"op": "ready", "client": "c1"}  -> waits until connected (again): {"id", "ok": true, "client_id"}
//   {"op": "disconnect", "client": "c1"}  -> {"id", "ok": true}
//   {"op": "exit"}
// A failed command answers {"id", "ok": false, "code", "message"}. Every result carries "ms",
// the command's duration. Events: {"event": "publication", "client", "channel", "data"},
// {"event": "connected" | "disconnected" | "unsubscribed", "client", ...}.
import { createRequire } from "node:module";
import path from "node:path";
import readline from "node:readline";

const modules = process.argv[2];
if (!modules) {
  process.stderr.write("usage: driver.mjs <node_modules folder>\n");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), "driver.cjs"));
const { Centrifuge } = require("centrifuge");
// Node 20 has no global WebSocket: centrifuge-js takes the ws package's.
const WebSocket = require("ws");

const TIMEOUT = Number(process.env.DRIVER_TIMEOUT_MS || 10000);
const clients = new Map();
const clientIds = new Map(); // the id of each client's latest connection

function emit(line) {
  process.stdout.write(JSON.stringify(line) + "\n");
}

function client(name) {
  const c = clients.get(name);
  if (!c) throw Object.assign(new Error(`no client ${name}`), { code: -1 });
  return c;
}

function subscription(name, channel) {
  const c = client(name);
  let sub = c.getSubscription(channel);
  if (!sub) {
    sub = c.newSubscription(channel);
    sub.on("publication", (ctx) =>
      emit({ event: "publication", client: name, channel, data: ctx.data }),
    );
    sub.on("unsubscribed", (ctx) =>
      emit({ event: "unsubscribed", client: name, channel, code: ctx.code, reason: ctx.reason }),
    );
  }
  return sub;
}

const ops = {
  async connect(cmd) {
    const c = new Centrifuge(cmd.url, {
      websocket: WebSocket,
      data: cmd.data ?? null,
      name: "js",
      timeout: TIMEOUT,
      minReconnectDelay: 50,
      maxReconnectDelay: 1000,
    });
    clients.set(cmd.client, c);
    let connected = null;
    c.on("connected", (ctx) => {
      connected = ctx;
      clientIds.set(cmd.client, ctx.client);
      emit({ event: "connected", client: cmd.client, client_id: ctx.client });
    });
    c.on("disconnected", (ctx) =>
      emit({ event: "disconnected", client: cmd.client, code: ctx.code, reason: ctx.reason }),
    );
    c.connect();
    await c.ready(TIMEOUT);
    return { client_id: connected.client, data: connected.data ?? null };
  },
  async ready(cmd) {
    const c = client(cmd.client);
    await c.ready(TIMEOUT);
    return { client_id: clientIds.get(cmd.client) };
  },
  async subscribe(cmd) {
    const sub = subscription(cmd.client, cmd.channel);
    const subscribed = new Promise((resolve) => sub.once("subscribed", resolve));
    sub.subscribe();
    await sub.ready(TIMEOUT);
    const ctx = await subscribed;
    return { data: ctx.data ?? null };
  },
  async subscribed(cmd) {
    await subscription(cmd.client, cmd.channel).ready(TIMEOUT);
    return {};
  },
  async publish(cmd) {
    await subscription(cmd.client, cmd.channel).publish(cmd.data);
    return {};
  },
  async rpc(cmd) {
    const result = await client(cmd.client).rpc(cmd.method, cmd.data ?? null);
    return { data: result.data ?? null };
  },
  async presence(cmd) {
    return { result: await subscription(cmd.client, cmd.channel).presence() };
  },
  async history(cmd) {
    const result = await subscription(cmd.client, cmd.channel).history({ limit: 100 });
    return { result: { publications: result.publications.map((p) => p.data) } };
  },
  async disconnect(cmd) {
    const c = client(cmd.client);
    c.disconnect();
    clients.delete(cmd.client);
    return {};
  },
};

async function run(cmd) {
  const started = performance.now();
  try {
    const result = await ops[cmd.op](cmd);
    emit({ id: cmd.id, ok: true, ms: performance.now() - started, ...result });
  } catch (error) {
    emit({
      id: cmd.id,
      ok: false,
      ms: performance.now() - started,
      code: error?.code ?? 0,
      message: String(error?.message ?? error),
    });
  }
}

const lines = readline.createInterface({ input: process.stdin });
lines.on("line", (line) => {
  if (!line.trim()) return;
  const cmd = JSON.parse(line);
  if (cmd.op === "exit") {
    lines.close();
    return;
  }
  if (!(cmd.op in ops)) {
    emit({ id: cmd.id, ok: false, code: -1, message: `unknown op ${cmd.op}` });
    return;
  }
  run(cmd);
});
lines.on("close", () => {
  for (const c of clients.values()) c.disconnect();
  // Let the close frames go out, then leave.
  setTimeout(() => process.exit(0), 100);
});
