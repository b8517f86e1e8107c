// Starts the Probot 14 labeler for the bench, as a Probot user would with
// Probot's own Server: node bench/probot/server.mjs
//
// Environment: PORT, APP_ID, PRIVATE_KEY_PATH, WEBHOOK_SECRET, GITHUB_API_URL,
// WEBHOOK_PATH (default /api/github/webhooks), PROBOT_PACING (on|off, default
// on), LOG_LEVEL (default warn). Prints "listening <port>" on stdout when
// ready; stops on SIGTERM or SIGINT.
//
// Probot's run() is not used: it only derives the API URL from GHE_HOST and
// always appends /api/v3, while the bench's fake serves the REST API at its root.

import { readFileSync } from "node:fs";
import { pino } from "pino";
import { Probot, ProbotOctokit, Server } from "probot";

import labeler from "./labeler.mjs";

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

const pacing = process.env.PROBOT_PACING ?? "on";
if (pacing !== "on" && pacing !== "off") {
  console.error(`PROBOT_PACING must be "on" or "off", not ${JSON.stringify(pacing)}`);
  process.exit(2);
}

// Logs go to stderr so stdout carries only the "listening" line.
const log = pino(
  { name: "probot", level: process.env.LOG_LEVEL || "warn" },
  pino.destination(2),
);

// Pacing off: the throttling plugin is disabled for every client Probot makes.
// It must be a function: Probot always passes its own throttle callbacks to the
// constructor, and the object form of defaults() merges shallowly, so
// ProbotOctokit.defaults({ throttle: { enabled: false } }) is silently
// overridden (probot/probot#2039). The retry plugin stays, as in the default.
const Octokit =
  pacing === "off"
    ? ProbotOctokit.defaults((options) => ({
        ...options,
        throttle: { ...options.throttle, enabled: false },
      }))
    : ProbotOctokit;

const server = new Server({
  host: "127.0.0.1",
  port: Number(required("PORT")),
  webhookPath: process.env.WEBHOOK_PATH || "/api/github/webhooks",
  log,
  Probot: Probot.defaults({
    appId: required("APP_ID"),
    privateKey: readFileSync(required("PRIVATE_KEY_PATH"), "utf8"),
    secret: required("WEBHOOK_SECRET"),
    baseUrl: required("GITHUB_API_URL").replace(/\/+$/, ""),
    Octokit,
  }),
});

let stopping = false;
function stop(signal) {
  if (stopping) return;
  stopping = true;
  log.info(`${signal}: stopping`);
  // Closes the listener; in-flight handlers and paced requests are not awaited,
  // and a connection that stays busy does not hold the exit past 5 s.
  setTimeout(() => process.exit(0), 5000).unref();
  server
    .stop()
    .catch((error) => log.error({ err: error }, "stop failed"))
    .finally(() => process.exit(0));
}
process.on("SIGTERM", () => stop("SIGTERM"));
process.on("SIGINT", () => stop("SIGINT"));

await server.load(labeler);
await server.start();
console.log(`listening ${server.port}`);
