// Starting and stopping a tandem-server process: for `npm start` and for the test.
import { spawn } from "node:child_process";

/**
 * Starts tandem-server (`command` with `args`, which should pick a free port); resolves to
 * { child, url } once it says where it listens, or fails after `patience` ms.
 */
export function startServer(command, args, { patience = 30_000, ...options } = {}) {
  const child = spawn(command, args, {
    ...options,
    env: { ...process.env, RUST_LOG: "warn" },
    stdio: ["ignore", "pipe", "inherit"],
  });
  // Stopped even if the test runner exits without running the after hooks.
  const backstop = () => child.kill("SIGKILL");
  process.on("exit", backstop);
  child.on("exit", () => process.off("exit", backstop));
  return new Promise((resolve, reject) => {
    let out = "";
    const timer = setTimeout(() => fail(new Error("tandem-server never said where it listens")), patience);
    const fail = error => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(error);
    };
    const early = code => fail(new Error(`tandem-server exited (${code}) before listening`));
    child.once("error", fail);
    child.once("exit", early);
    child.stdout.on("data", chunk => {
      out += chunk;
      const match = out.match(/^listening on (\S+)$/m);
      if (match) {
        clearTimeout(timer);
        child.off("exit", early);
        child.stdout.resume(); // keep the pipe drained
        resolve({ child, url: match[1] });
      }
    });
  });
}

/** SIGTERM (a clean shutdown), then SIGKILL if it takes too long. */
export async function stopServer(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise(resolve => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
  await exited;
  clearTimeout(timer);
}

