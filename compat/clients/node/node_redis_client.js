// node-redis (npm package "redis") against dynakv, twice: with its defaults
// (RESP2, no HELLO) and with RESP: 3 (HELLO 3 in the handshake).
// Usage: node node_redis_client.js HOST:PORT[,HOST:PORT...]
// Writes go through the first address, reads through the last (on a cluster
// every read crosses nodes). Driven by compat/clients_test.go.
"use strict";
const { createClient } = require("redis");
const { eq, fails, addrs, waitGone, run } = require("./check");

async function connect(a, resp) {
  const c = createClient({ socket: { host: a.host, port: a.port, reconnectStrategy: false, connectTimeout: 5000 }, RESP: resp });
  c.on("error", () => {}); // failures surface as rejected commands
  await c.connect();
  return c;
}

async function workload(as, resp) {
  const w = await connect(as[0], resp);
  const r = await connect(as[as.length - 1], resp);
  const k = (s) => `nr${resp || 2}:${s}`;
  eq("CLIENT INFO shows the protocol", (await r.sendCommand(["CLIENT", "INFO"])).includes(` resp=${resp || 2} `), true);

  eq("SET", await w.set(k("a"), "1"), "OK");
  eq("GET", await r.get(k("a")), "1");
  eq("GET missing", await r.get(k("missing")), null);
  eq("INCR", await w.incr(k("a")), 2);
  eq("INCRBY", await w.incrBy(k("a"), 40), 42);
  eq("DECR", await w.decr(k("a")), 41);
  eq("SET NX existing", await w.set(k("a"), "x", { condition: "NX" }), null);
  eq("MSET", await w.mSet([[k("m1"), "one"], [k("m2"), "two"]]), "OK");
  eq("MGET", await r.mGet([k("a"), k("missing"), k("m1"), k("m2")]), ["41", null, "one", "two"]);
  eq("EXISTS", await r.exists([k("a"), k("missing"), k("m1")]), 2);
  eq("SET EX", await w.set(k("ttl"), "v", { expiration: { type: "EX", value: 100 } }), "OK");
  const ttl = await r.ttl(k("ttl"));
  eq("TTL in range", ttl > 90 && ttl <= 100, true);
  eq("EXPIRE", await w.expire(k("m1"), 3600), 1);
  eq("EXPIRE missing", await w.expire(k("missing"), 3600), 0);
  eq("TTL without expiry", await r.ttl(k("m2")), -1);
  eq("PEXPIRE", await w.pExpire(k("m2"), 100), 1);
  await waitGone("a key with a 100ms PEXPIRE", () => r.exists(k("m2")));
  eq("DEL", await w.del([k("a"), k("missing")]), 1);
  eq("INCRBYFLOAT", await w.incrByFloat(k("f"), 1.5), "1.5"); // a bulk string in RESP3 too, as Redis 7.2

  await fails("INCR of a string", w.incr(k("ttl")), "ERR value is not an integer or out of range");
  await fails("GET without a key", w.sendCommand(["GET"]), "ERR wrong number of arguments for 'get' command");
  await fails("LPUSH", w.lPush(k("l"), "x"), "ERR unknown command 'LPUSH'");
  await fails("DPUT with a bad context", w.sendCommand(["DPUT", k("x"), "garbage", "v"]), "ERR invalid causal context");

  // Commands issued together are auto-pipelined on the connection.
  const sets = await Promise.all(Array.from({ length: 100 }, (_, i) => w.set(k("pipe" + i), String(i))));
  eq("pipelined SETs", sets.every((v) => v === "OK"), true);
  const piped = await w.multi().incr(k("pipe42")).get(k("pipe41")).execAsPipeline();
  eq("execAsPipeline", piped, [43, "41"]);
  const gets = await Promise.all(Array.from({ length: 100 }, (_, i) => r.get(k("pipe" + i))));
  eq("pipelined GETs", gets, Array.from({ length: 100 }, (_, i) => String(i === 42 ? 43 : i)));

  // multi().exec(): refused as a whole, with the reason.
  await fails("MULTI/EXEC", w.multi().set(k("tx"), "v").incr(k("pipe0")).exec(), "MULTI is not supported by dynakv");
  eq("a refused transaction's SET did not run", await r.exists(k("tx")), 0);
  eq("a refused transaction's INCR did not run", await r.get(k("pipe0")), "0");
  eq("PING after the transaction", await w.ping(), "PONG");

  // Siblings through both nodes, resolved with the DGET context.
  await w.sendCommand(["DPUT", k("cart"), "", "apple"]);
  await r.sendCommand(["DPUT", k("cart"), "", "pear"]);
  const [ctx, sibs] = await r.sendCommand(["DGET", k("cart")]);
  eq("DGET siblings", [...sibs].sort(), ["apple", "pear"]);
  await w.sendCommand(["DPUT", k("cart"), ctx, "apple+pear"]);
  eq("DGET after resolving", (await r.sendCommand(["DGET", k("cart")]))[1], ["apple+pear"]);

  const seen = new Set();
  for await (const keys of r.scanIterator({ MATCH: k("pipe*"), COUNT: 7 })) keys.forEach((x) => seen.add(x));
  eq("scanIterator MATCH", seen.size, 100);

  w.destroy();
  r.destroy();
}

run(`node-redis ${require("redis/package.json").version} (RESP2 default and RESP3)`, async () => {
  const as = addrs();
  await workload(as, undefined);
  await workload(as, 3);
});
