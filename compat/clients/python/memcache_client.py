"""pymemcache (Debian's python3-pymemcache) against dynakv's memcached port.

Usage: /usr/bin/python3 memcache_client.py HOST:PORT[,HOST:PORT...]

Writes go through the first address, reads through the last; a HashClient over
every address shards keys over the nodes. Exits non-zero with a traceback on the
first failed check; prints the number of checks otherwise. Driven by
compat/clients_test.go.
"""

import sys

import pymemcache
from pymemcache import serde
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheClientError, MemcacheIllegalInputError, MemcacheServerError

import check
from check import addr, eq

OPTS = dict(connect_timeout=5, timeout=10)


def main():
    addrs = [addr(a) for a in sys.argv[1].split(",")]
    # default_noreply=False: wait for every storage reply (pymemcache's default
    # sends noreply and never sees NOT_STORED).
    w = Client(addrs[0], default_noreply=False, **OPTS)
    r = Client(addrs[-1], default_noreply=False, **OPTS)
    blind = Client(addrs[0], **OPTS)  # pymemcache's default: noreply storage

    if not w.version():
        raise AssertionError("empty version")
    eq("set", w.set("pm:k", "v1"), True)
    eq("get", r.get("pm:k"), b"v1")
    eq("get missing", r.get("pm:missing"), None)
    eq("get missing with a default", r.get("pm:missing", default=b"d"), b"d")

    # Storage commands and their NOT_STORED answers.
    eq("add existing", w.add("pm:k", "x"), False)
    eq("add new", w.add("pm:a", "b"), True)
    eq("replace missing", w.replace("pm:missing", "x"), False)
    eq("replace", w.replace("pm:a", "b"), True)
    eq("append", w.append("pm:a", "c"), True)
    eq("prepend", w.prepend("pm:a", "a"), True)
    eq("append missing", w.append("pm:missing", "x"), False)
    eq("after replace/append/prepend", r.get("pm:a"), b"abc")

    # gets / cas, with a unique read through another node.
    value, cas = r.gets("pm:k")
    eq("gets", value, b"v1")
    eq("cas fresh", w.cas("pm:k", "v2", cas), True)
    eq("cas stale", w.cas("pm:k", "v3", cas), False)
    eq("cas missing", w.cas("pm:missing", "x", cas), None)
    eq("after cas", r.get("pm:k"), b"v2")
    many = r.gets_many(["pm:k", "pm:a", "pm:missing"])
    eq("gets_many keys", sorted(many), ["pm:a", "pm:k"])
    eq("gets_many value", many["pm:k"][0], b"v2")

    # incr / decr: 64-bit wrap, floor at 0, None for a missing key.
    eq("set counter", w.set("pm:n", "18446744073709551614"), True)
    eq("incr past 2^64", w.incr("pm:n", 3), 1)
    eq("decr below 0", w.decr("pm:n", 5), 0)
    eq("incr", w.incr("pm:n", 10), 10)
    eq("counter read elsewhere", r.get("pm:n"), b"10")
    eq("incr missing", w.incr("pm:missing", 1), None)
    check.fails("incr of a non-number", lambda: w.incr("pm:k", 1), "non-numeric value", MemcacheClientError)

    # touch and expiry: a negative expiration is already past.
    eq("touch", w.touch("pm:k", 3600), True)
    eq("touch missing", w.touch("pm:missing", 10), False)
    eq("set expired", w.set("pm:gone", "x", expire=-1), True)
    eq("get expired", r.get("pm:gone"), None)
    eq("set with expiry", w.set("pm:ttl", "x", expire=100), True)
    eq("get before expiry", r.get("pm:ttl"), b"x")

    # Flags round-trip through pymemcache's pickle serde.
    typed = Client(addrs[0], serde=serde.pickle_serde, default_noreply=False, **OPTS)
    typed_r = Client(addrs[-1], serde=serde.pickle_serde, **OPTS)
    for key, val in (("pm:int", 42), ("pm:str", "text"), ("pm:obj", {"a": [1, 2]})):
        eq("typed set " + key, typed.set(key, val), True)
        eq("typed get " + key, typed_r.get(key), val)

    # Default noreply storage: the next request on the connection sees the write.
    eq("noreply set", blind.set("pm:blind", "b"), True)
    eq("get after noreply set", blind.get("pm:blind"), b"b")
    eq("noreply delete", blind.delete("pm:blind"), True)
    eq("get after noreply delete", blind.get("pm:blind"), None)

    # set_many / get_many / delete_many, through one node and sharded.
    values = {f"pm:m{i}": str(i) for i in range(40)}
    eq("set_many", w.set_many(values), [])
    got = r.get_many(list(values) + ["pm:missing"])
    eq("get_many", {k: v.decode() for k, v in got.items()}, values)
    ring = HashClient(addrs, **OPTS)
    sharded = {f"pm:h{i}": str(i).encode() for i in range(40)}
    eq("HashClient set_many", ring.set_many(sharded, noreply=False), [])
    eq("HashClient get_many", ring.get_many(list(sharded)), sharded)
    eq("get_many of sharded keys through one node", len(r.get_many(list(sharded))), 40)
    eq("delete_many", w.delete_many([f"pm:m{i}" for i in range(10)]), True)
    eq("get_many after delete_many", len(r.get_many(list(values))), 30)

    # Client-side and server-side errors; the connection stays usable.
    check.fails("key with a space", lambda: w.set("pm:bad key", "x"), "Key contains whitespace", MemcacheIllegalInputError)
    check.fails("2 MiB value", lambda: w.set("pm:big", b"x" * (2 << 20)), "object too large for cache", MemcacheServerError)
    eq("get after errors", w.get("pm:k"), b"v2")

    stats = r.stats()
    for key in (b"pid", b"uptime", b"curr_items", b"cmd_get", b"get_hits"):
        if not isinstance(stats.get(key), int):
            raise AssertionError(f"stats {key!r} = {stats.get(key)!r}, want an integer")

    # delete, flush_all (every node).
    eq("delete", w.delete("pm:a"), True)
    eq("delete again", w.delete("pm:a"), False)
    eq("get deleted", r.get("pm:a"), None)
    eq("flush_all", w.flush_all(), True)
    eq("get after flush_all", r.get("pm:k"), None)
    eq("get_many after flush_all", ring.get_many(list(sharded)), {})
    for c in (w, r, blind, typed, typed_r, ring):
        c.close()
    print(f"ok: {check.count} checks, pymemcache {pymemcache.__version__}")


if __name__ == "__main__":
    main()
