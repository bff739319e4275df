"""redis-py (Debian's python3-redis) against dynakv.

Usage: /usr/bin/python3 redis_client.py HOST:PORT[,HOST:PORT...]

Writes go through the first address, reads through the last (on a cluster every
read crosses nodes). Exits non-zero with a traceback on the first failed check;
prints the number of checks otherwise. Driven by compat/clients_test.go.
"""

import sys
import time

import redis

import check
from check import addr, eq

PREFIX = "py:"


def k(name):
    return PREFIX + name


def fails(what, fn, want):
    check.fails(what, fn, want, redis.ResponseError)


def client(a):
    host, port = addr(a)
    return redis.Redis(host=host, port=port, socket_timeout=10, socket_connect_timeout=5)


def main():
    addrs = sys.argv[1].split(",")
    w, r = client(addrs[0]), client(addrs[-1])

    eq("PING", w.ping(), True)
    eq("SET", w.set(k("a"), "1"), True)
    eq("GET", r.get(k("a")), b"1")
    eq("GET missing", r.get(k("missing")), None)
    eq("INCR", w.incr(k("a")), 2)
    eq("INCRBY", w.incrby(k("a"), 40), 42)
    eq("DECR", w.decr(k("a")), 41)
    eq("INCRBYFLOAT", w.incrbyfloat(k("f"), 1.5), 1.5)
    eq("SETNX existing", w.setnx(k("a"), "x"), False)
    eq("SET NX new", w.set(k("nx"), "v", nx=True), True)
    eq("SET XX missing", w.set(k("xx"), "v", xx=True), None)
    eq("MSET", w.mset({k("m1"): "one", k("m2"): "two"}), True)
    eq("MGET", r.mget([k("a"), k("missing"), k("m1"), k("m2")]), [b"41", None, b"one", b"two"])
    eq("EXISTS", r.exists(k("a"), k("missing"), k("m1")), 2)
    eq("APPEND", w.append(k("m1"), "!"), 4)
    eq("STRLEN", r.strlen(k("m1")), 4)
    eq("GETRANGE", r.getrange(k("m1"), 1, 2), b"ne")
    eq("GETSET", w.getset(k("m2"), "deux"), b"two")

    # Expiry.
    eq("SET EX", w.set(k("ttl"), "v", ex=100), True)
    ttl = r.ttl(k("ttl"))
    if not 90 < ttl <= 100:
        raise AssertionError(f"TTL = {ttl}")
    eq("EXPIRE", w.expire(k("m1"), 3600), True)
    eq("EXPIRE missing", w.expire(k("missing"), 3600), False)
    eq("TTL without expiry", r.ttl(k("m2")), -1)
    eq("TTL missing", r.ttl(k("missing")), -2)
    eq("PERSIST", w.persist(k("m1")), True)
    eq("TTL after PERSIST", r.ttl(k("m1")), -1)
    eq("PEXPIRE", w.pexpire(k("m2"), 100), True)
    deadline = time.monotonic() + 5
    while r.exists(k("m2")):
        if time.monotonic() > deadline:
            raise AssertionError("a key with a 100ms PEXPIRE still exists after 5s")
        time.sleep(0.02)
    eq("DEL", w.delete(k("a"), k("missing")), 1)
    eq("GET deleted", r.get(k("a")), None)
    eq("TYPE", r.type(k("ttl")), b"string")

    # The errors Redis gives.
    fails("INCR of a string", lambda: w.incr(k("ttl")), "value is not an integer or out of range")
    fails("GET without a key", lambda: w.execute_command("GET"), "wrong number of arguments for 'get' command")
    fails("LPUSH", lambda: w.lpush(k("l"), "x"), "unknown command 'LPUSH'")
    fails("SET EX 0", lambda: w.set(k("x"), "v", ex=0), "invalid expire time")
    fails("DPUT with a bad context", lambda: w.execute_command("DPUT", k("x"), "garbage", "v"), "invalid causal context")
    eq("PING after errors", w.ping(), True)

    # A pipeline without a transaction: one round trip, in order, errors in place.
    pipe = w.pipeline(transaction=False)
    for i in range(100):
        pipe.set(k(f"pipe{i}"), i)
    pipe.incr(k("pipe42"))
    pipe.incr(k("ttl"))
    res = pipe.execute(raise_on_error=False)
    eq("pipeline length", len(res), 102)
    eq("pipelined SETs", res[:100], [True] * 100)
    eq("pipelined INCR", res[100], 43)
    if not isinstance(res[101], redis.ResponseError):
        raise AssertionError(f"pipelined INCR of a string = {res[101]!r}")
    pipe = r.pipeline(transaction=False)
    for i in range(100):
        pipe.get(k(f"pipe{i}"))
    eq("pipelined GETs", pipe.execute(), [str(43 if i == 42 else i).encode() for i in range(100)])

    # redis-py's pipeline() is a MULTI/EXEC transaction by default: refused as a
    # whole, with the reason.
    pipe = w.pipeline()
    pipe.set(k("tx"), "v")
    pipe.incr(k("pipe0"))
    fails("transaction", pipe.execute, "MULTI is not supported by dynakv")
    eq("a refused transaction's SET did not run", r.exists(k("tx")), 0)
    eq("a refused transaction's INCR did not run", r.get(k("pipe0")), b"0")
    eq("PING after the transaction", w.ping(), True)

    # Siblings: blind DPUTs through both clients, resolved with the DGET context.
    for c, v in ((w, "apple"), (r, "pear")):
        c.execute_command("DPUT", k("cart"), "", v)
    ctx, sibs = r.execute_command("DGET", k("cart"))
    eq("DGET siblings", sorted(sibs), [b"apple", b"pear"])
    w.execute_command("DPUT", k("cart"), ctx, "apple+pear")
    eq("DGET after resolving", r.execute_command("DGET", k("cart"))[1], [b"apple+pear"])

    # SCAN with MATCH through the iterator.
    eq("SCAN MATCH", len(set(r.scan_iter(match=k("pipe*"), count=7))), 100)

    info = r.info("server")
    if "redis_version" not in info:
        raise AssertionError(f"INFO server lacks redis_version: {sorted(info)}")
    print(f"ok: {check.count} checks, redis-py {redis.__version__}")


if __name__ == "__main__":
    main()
