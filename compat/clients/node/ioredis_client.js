// ioredis against dynakv, with its default ready check (INFO before the first
// command). Usage: node ioredis_client.js HOST:PORT[,HOST:PORT...]
// Writes go through the first address, reads through the last (on a cluster
// every read crosses nodes). Driven by compat/clients_test.go.
"use strict";
const Redis = require("ioredis");
const { eq, fails, addrs, waitGone, run } = require("./check");

const k = (s) => "io:" + s;

function connect(a) {
  const c = new Redis({ host: a.host, port: a.port, maxRetriesPerRequest: 1, retryStrategy: () => null, connectTimeout: 5000 });
  return new Promise((resolve, reject) => {
    c.once("ready", () => resolve(c));
    c.once("error", reject);
  });
}

run(`ioredis ${require("ioredis/package.json").version}`, async () => {
  const as = addrs();
  const w = await connect(as[0]);
  const r = await connect(as[as.length - 1]);
  // "ready" fires only after INFO answered and did not say loading:1.
  eq("ready check on", w.options.enableReadyCheck, true);
  eq("status", w.status, "ready");
  const info = await r.client("INFO");
  eq("CLIENT INFO shows the library", /lib-name=ioredis/.test(info), true);

  eq("SET", await w.set(k("a"), "1"), "OK");
  eq("GET", await r.get(k("a")), "1");
  eq("GET missing", await r.get(k("missing")), null);
  eq("INCR", await w.incr(k("a")), 2);
  eq("INCRBY", await w.incrby(k("a"), 40), 42);
  eq("DECR", await w.decr(k("a")), 41);
  eq("SET NX existing", await w.set(k("a"), "x", "NX"), null);
  eq("MSET", await w.mset(k("m1"), "one", k("m2"), "two"), "OK");
  eq("MGET", await r.mget(k("a"), k("missing"), k("m1"), k("m2")), ["41", null, "one", "two"]);
  eq("EXISTS", await r.exists(k("a"), k("missing"), k("m1")), 2);
  eq("SET EX", await w.set(k("ttl"), "v", "EX", 100), "OK");
  const ttl = await r.ttl(k("ttl"));
  eq("TTL in range", ttl > 90 && ttl <= 100, true);
  eq("EXPIRE", await w.expire(k("m1"), 3600), 1);
  eq("EXPIRE missing", await w.expire(k("missing"), 3600), 0);
  eq("TTL without expiry", await r.ttl(k("m2")), -1);
  eq("PEXPIRE", await w.pexpire(k("m2"), 100), 1);
  await waitGone("a key with a 100ms PEXPIRE", () => r.exists(k("m2")));
  eq("DEL", await w.del(k("a"), k("missing")), 1);
  eq("GETBUFFER", (await r.getBuffer(k("m1"))).toString(), "one");

  await fails("INCR of a string", w.incr(k("ttl")), "ERR value is not an integer or out of range");
  await fails("GET without a key", w.call("GET"), "ERR wrong number of arguments for 'get' command");
  await fails("LPUSH", w.lpush(k("l"), "x"), "ERR unknown command 'lpush', with args beginning with: 'io:l' 'x' ");
  await fails("DPUT with a bad context", w.call("DPUT", k("x"), "garbage", "v"), "ERR invalid causal context");

  // Pipelines: [err, result] per command, in order.
  const p = w.pipeline();
  for (let i = 0; i < 100; i++) p.set(k("pipe" + i), String(i));
  p.incr(k("pipe42"));
  p.incr(k("ttl"));
  const res = await p.exec();
  eq("pipeline length", res.length, 102);
  eq("pipelined SETs", res.slice(0, 100).every(([e, v]) => e === null && v === "OK"), true);
  eq("pipelined INCR", res[100], [null, 43]);
  eq("pipelined INCR of a string", /not an integer/.test(res[101][0] && res[101][0].message), true);
  const gets = r.pipeline();
  for (let i = 0; i < 100; i++) gets.get(k("pipe" + i));
  eq("pipelined GETs", (await gets.exec()).map(([, v]) => v), Array.from({ length: 100 }, (_, i) => String(i === 42 ? 43 : i)));

  // multi(): refused as a whole, with the reason.
  await fails("MULTI/EXEC", w.multi().set(k("tx"), "v").incr(k("pipe0")).exec(), "MULTI is not supported by dynakv");
  eq("a refused transaction's SET did not run", await r.exists(k("tx")), 0);
  eq("a refused transaction's INCR did not run", await r.get(k("pipe0")), "0");
  eq("PING after the transaction", await w.ping(), "PONG");

  // Siblings through both nodes, resolved with the DGET context.
  await w.call("DPUT", k("cart"), "", "apple");
  await r.call("DPUT", k("cart"), "", "pear");
  const [ctx, sibs] = await r.call("DGET", k("cart"));
  eq("DGET siblings", [...sibs].sort(), ["apple", "pear"]);
  await w.call("DPUT", k("cart"), ctx, "apple+pear");
  eq("DGET after resolving", (await r.call("DGET", k("cart")))[1], ["apple+pear"]);

  // SCAN through scanStream.
  const seen = new Set();
  for await (const keys of r.scanStream({ match: k("pipe*"), count: 7 })) keys.forEach((x) => seen.add(x));
  eq("scanStream MATCH", seen.size, 100);

  w.disconnect();
  r.disconnect();
});
