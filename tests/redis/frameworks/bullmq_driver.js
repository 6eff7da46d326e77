// Drives BullMQ through its own API for the tests:
//   node bullmq_driver.js REDIS_URL            sets the state up, prints {"ready": true}, then answers
//                                              stdin lines: `truth` (what BullMQ's API says, as JSON),
//                                              `fail QUEUE N` (N more failed jobs), `quit`
//   node bullmq_driver.js REDIS_URL add QUEUE N   adds N jobs to QUEUE, prints its getJobCounts()
const { Queue, Worker, FlowProducer } = require("bullmq");
const IORedis = require("ioredis");
const readline = require("readline");

const [url, command, addTo, addN] = process.argv.slice(2);
const connection = () => new IORedis(url, { maxRetriesPerRequest: null });
const names = command === "add" ? [addTo] : ["default", "prio-only", "failing", "slow", "held", "flows", "children", "retrying"];
const queues = Object.fromEntries(names.map((n) => [n, new Queue(n, { connection: connection() })]));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");

async function until(predicate, what) {
  for (let i = 0; i < 600; i++) {
    if (await predicate()) return;
    await sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function setup() {
  const q = queues;
  // Prioritized jobs older than the waiting ones: the queue's latency is theirs.
  await q.default.add("p", { n: 1 }, { priority: 5 });
  await q.default.add("p", { n: 2 }, { priority: 1 });
  await q["prio-only"].add("p", { n: 1 }, { priority: 3 });
  await q["prio-only"].add("p", { n: 2 }, { priority: 2 });
  await sleep(1500);
  for (let i = 0; i < 3; i++) await q.default.add("w", { i });
  await q.default.add("d", {}, { delay: 600000 });
  await q.default.add("d", {}, { delay: 1200000 });
  await q.default.add("d", {}, { delay: 50 }); // overdue soon: no worker promotes it
  // Failures with reasons.
  new Worker("failing", async (job) => { throw new Error(job.data.reason); }, { connection: connection() });
  await fail("failing", 2, "connect ECONNREFUSED");
  await fail("failing", 1, "invalid payload");
  // A job retried again and again: its worker fails it three times, then goes away, leaving
  // it delayed (waiting for its next attempt) with attemptsMade 3 (or 4 if a retry won the race).
  const flaky = new Worker("retrying", async () => { throw new Error("flaky"); }, { connection: connection() });
  await q.retrying.add("r", {}, { attempts: 10, backoff: { type: "fixed", delay: 100 } });
  await until(async () => {
    const [j] = await q.retrying.getDelayed(0, 0);
    return j && j.attemptsMade >= 3;
  }, "three attempts");
  await flaky.close();
  // One job active for as long as the tests run.
  new Worker("slow", () => new Promise(() => {}), { connection: connection(), lockDuration: 600000 });
  await q.slow.add("s", {});
  await until(async () => (await q.slow.getActiveCount()) === 1, "the slow job to be active");
  // A paused queue holding jobs.
  await q.held.add("h", {});
  await q.held.add("h", {});
  await q.held.pause();
  // A parent waiting for its children.
  await new FlowProducer({ connection: connection() }).add({
    name: "parent", queueName: "flows", children: [
      { name: "c", queueName: "children", data: {} }, { name: "c", queueName: "children", data: {} }],
  });
  await sleep(100);
}

async function fail(name, n, reason = "connect ECONNREFUSED") {
  const before = await queues[name].getFailedCount();
  for (let i = 0; i < n; i++) await queues[name].add("f", { reason });
  await until(async () => (await queues[name].getFailedCount()) === before + n, "failed jobs");
}

async function truth() {
  const now = Date.now();
  const result = { now: now / 1000, queues: {} };
  for (const [name, q] of Object.entries(queues)) {
    const waiting = await q.getJobs(["waiting", "prioritized"], 0, -1, true);
    const oldest = waiting.length ? Math.min(...waiting.map((j) => j.timestamp)) : null;
    const delayed = await q.getDelayed(0, -1);
    const failed = await q.getFailed(0, -1);
    const reasons = {};
    for (const j of failed) reasons[j.failedReason] = (reasons[j.failedReason] || 0) + 1;
    result.queues[name] = {
      counts: await q.getJobCounts(),
      paused: await q.isPaused(),
      latency: oldest === null ? 0 : (now - oldest) / 1000,
      overdue: delayed.filter((j) => j.timestamp + j.delay <= now).length,
      reasons,
      max_attempts: Math.max(0, ...delayed.map((j) => j.attemptsMade || 0)),
    };
  }
  return result;
}

(async () => {
  if (command === "add") {
    for (let i = 0; i < Number(addN); i++) await queues[addTo].add("job", { i });
    out(await queues[addTo].getJobCounts());
    process.exit(0);
  }
  await setup();
  out({ ready: true });
  const rl = readline.createInterface({ input: process.stdin });
  for await (const line of rl) {
    const [cmd, ...args] = line.trim().split(/\s+/);
    if (cmd === "truth") out(await truth());
    else if (cmd === "fail") { await fail(args[0], Number(args[1])); out({ done: true }); }
    else if (cmd === "quit") process.exit(0);
  }
})().catch((e) => { console.error(e); process.exit(1); });
