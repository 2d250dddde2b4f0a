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

// -- load: the soak's clients ---------------------------------------------------------------
//   {"op": "load", "url", "names": ["js0-0", ...], "mix": {"rpc": 0.5, ...}, "expire": 3}
// runs one client per name until {"op": "stop"}: each connects (data {"user": name,
// "expire"}), subscribes to room-<name>, then loops over random operations (rpc "echo",
// publish into its room, subscribe to and leave a fresh channel, reconnect). The result holds
// one record per operation, [event, key, start, end (unix ms), ok, code], and what the clients
// saw: connects and room subscriptions per name, publications delivered, disconnects.
// Progress events {"event": "progress", "ops": n} come every second.
let stopping = false;

async function loadClient(cmd, name, out) {
  const c = new Centrifuge(cmd.url, {
    websocket: WebSocket,
    data: { user: name, expire: cmd.expire ?? 0 },
    name: "js",
    timeout: TIMEOUT,
    minReconnectDelay: 50,
    maxReconnectDelay: 1000,
  });
  c.on("connected", () => {
    out.connected[name] = (out.connected[name] ?? 0) + 1;
    out.connected_at.push([name, Date.now()]);
  });
  c.on("disconnected", (ctx) => out.disconnects.push([Date.now(), ctx.code, ctx.reason]));
  c.on("connecting", (ctx) => out.disconnects.push([Date.now(), ctx.code, ctx.reason]));
  const room = c.newSubscription(`room-${name}`);
  room.on("subscribed", () => (out.subscribed[room.channel] = (out.subscribed[room.channel] ?? 0) + 1));
  room.on("publication", (ctx) => out.delivered.push(ctx.data.id));
  const record = async (event, key, action) => {
    const start = Date.now();
    try {
      await action();
      out.records.push([event, key, start, Date.now(), true, null]);
    } catch (error) {
      out.records.push([event, key, start, Date.now(), false, error?.code ?? String(error)]);
    }
    out.ops += 1;
  };
  await record("connect", name, async () => {
    c.connect();
    await c.ready(TIMEOUT);
  });
  await record("subscribe", room.channel, async () => {
    room.subscribe();
    await room.ready(TIMEOUT);
  });
  const mix = Object.entries(cmd.mix);
  let seq = 0;
  while (!stopping) {
    seq += 1;
    const id = `${name}-${seq}`;
    let r = Math.random();
    let op = mix[mix.length - 1][0];
    for (const [name, weight] of mix) {
      if (r < weight) {
        op = name;
        break;
      }
      r -= weight;
    }
    if (op === "rpc") {
      await record("rpc", id, async () => {
        const result = await c.rpc("echo", { id });
        if (result.data?.id !== id) throw Object.assign(new Error("wrong reply"), { code: -2 });
      });
    } else if (op === "publish") {
      await record("publish", id, () => room.publish({ id }));
    } else if (op === "subscribe") {
      const channel = `s-${id}`;
      const sub = c.newSubscription(channel);
      await record("subscribe", channel, async () => {
        sub.subscribe();
        await sub.ready(TIMEOUT);
      });
      sub.unsubscribe();
      c.removeSubscription(sub);
    } else {
      await record("connect", name, async () => {
        c.disconnect();
        c.connect();
        await c.ready(TIMEOUT);
      });
    }
  }
  await new Promise((resolve) => setTimeout(resolve, 500)); // the last publications' delivery
  c.disconnect();
}

ops.load = async (cmd) => {
  const out = {
    records: [],
    connected: {},
    connected_at: [],
    subscribed: {},
    delivered: [],
    disconnects: [],
    ops: 0,
  };
  const progress = setInterval(() => emit({ event: "progress", ops: out.ops }), 1000);
  await Promise.all(cmd.names.map((name) => loadClient(cmd, name, out)));
  clearInterval(progress);
  delete out.ops;
  return out;
};

ops.stop = async () => {
  stopping = true;
  return {};
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
