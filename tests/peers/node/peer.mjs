// Independent peer for kvbm's NATS transport: subscribes with the official nats.js client,
// decodes every payload with @msgpack/msgpack (not kvbm's decoder) and checks it has the
// reference's wire shape (SPEC section 5): [events, instance_id], events = {"Create": [..]}
// | {"Remove": [..]} | "Shutdown", every hash and the id a 16-byte bin. Prints "ready" once
// subscribed, then one JSON line per message:
//   {"subject": "...", "kind": "Create", "hashes": ["<32 hex>", ...], "instance": "<32 hex>"}
// and exits 0 after <count> messages, 1 on the first malformed one, 2 on a timeout.
//
// usage: node peer.mjs <nats-url> <subject> <count>
import { connect } from "nats";
import { decode } from "@msgpack/msgpack";

const [url, subject, countArg] = process.argv.slice(2);
const count = Number(countArg);

function fail(code, why) {
  process.stderr.write(`node peer: ${why}\n`);
  process.exit(code);
}

function hex16(v, what) {
  if (!(v instanceof Uint8Array) || v.length !== 16) {
    fail(1, `${what} is not a 16-byte bin: ${JSON.stringify(v)}`);
  }
  return Buffer.from(v).toString("hex");
}

function check(payload) {
  const msg = decode(payload);
  if (!Array.isArray(msg) || msg.length !== 2) {
    fail(1, `message is not an array of 2: ${JSON.stringify(msg)}`);
  }
  const [events, instance] = msg;
  let kind;
  let hashes = [];
  if (events === "Shutdown") {
    kind = "Shutdown";
  } else if (events !== null && typeof events === "object" && !Array.isArray(events) &&
             Object.keys(events).length === 1 && ["Create", "Remove"].includes(Object.keys(events)[0])) {
    kind = Object.keys(events)[0];
    if (!Array.isArray(events[kind])) {
      fail(1, `${kind} carries no array`);
    }
    hashes = events[kind].map((h, i) => hex16(h, `${kind}[${i}]`));
  } else {
    fail(1, `unexpected events value: ${JSON.stringify(events)}`);
  }
  return { kind, hashes, instance: hex16(instance, "instance_id") };
}

const timer = setTimeout(() => fail(2, `timed out waiting for ${count} messages`), 60000);
const nc = await connect({ servers: url });
const sub = nc.subscribe(subject, { max: count });
await nc.flush();  // the subscription is registered with the server
process.stdout.write("ready\n");
for await (const m of sub) {
  process.stdout.write(JSON.stringify({ subject: m.subject, ...check(m.data) }) + "\n");
}
clearTimeout(timer);
await nc.close();
