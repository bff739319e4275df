// Checks shared by the client scripts: a failed check throws, so the script exits
// non-zero with the stack; passed checks are counted for the summary line.
"use strict";
const assert = require("node:assert/strict");

let count = 0;

// eq checks that got deep-equals want.
function eq(what, got, want) {
  assert.deepStrictEqual(got, want, what);
  count++;
}

// fails checks that the promise rejects with an error whose message (or, for a
// transaction, one of the errors it carries) contains want.
async function fails(what, promise, want) {
  let err;
  try {
    const got = await promise;
    throw new assert.AssertionError({ message: `${what}: no error, got ${JSON.stringify(got)}; want ${want}` });
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    err = e;
  }
  const messages = [err.message, ...(err.previousErrors || []).map((e) => e.message),
    ...(err.errorIndexes ? (err.replies || []).filter((r) => r instanceof Error).map((e) => e.message) : [])];
  if (!messages.some((m) => m.includes(want))) {
    throw new assert.AssertionError({ message: `${what}: errors ${JSON.stringify(messages)}, want one containing ${JSON.stringify(want)}` });
  }
  count++;
}

// addrs parses the comma-separated HOST:PORT list the Go test passes.
function addrs() {
  return process.argv[2].split(",").map((a) => {
    const i = a.lastIndexOf(":");
    return { host: a.slice(0, i), port: Number(a.slice(i + 1)) };
  });
}

// waitGone polls exists() until it returns 0, at most 5s.
async function waitGone(what, exists) {
  const deadline = Date.now() + 5000;
  while ((await exists()) !== 0) {
    if (Date.now() > deadline) throw new assert.AssertionError({ message: `${what}: still there after 5s` });
    await new Promise((r) => setTimeout(r, 20));
  }
  count++;
}

// run runs main, prints the summary and exits non-zero on any failure.
function run(name, main) {
  main().then(
    (extra) => { console.log(`ok: ${count} checks, ${name}${extra ? " " + extra : ""}`); process.exit(0); },
    (err) => { console.error(err); process.exit(1); },
  );
}

module.exports = { eq, fails, addrs, waitGone, run };
