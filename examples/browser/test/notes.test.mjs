// Two browsers (two Chromium contexts, so two separate IndexedDBs) edit one notes document
// through a real tandem-server: edits cross both ways, and edits made while one of them is
// offline arrive once it is back, in both directions.
//
// Needs the tandem-server binary (TANDEM_SERVER_BIN, default ../../target/debug/tandem-server)
// and Chromium (CHROMIUM, default /usr/bin/chromium).
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { build } from "../build.mjs";
import { serve } from "../serve.mjs";
import { startServer, stopServer } from "../tandem-server.mjs";

const example = fileURLToPath(new URL("..", import.meta.url));
const serverBin = process.env.TANDEM_SERVER_BIN
  ? path.resolve(process.env.TANDEM_SERVER_BIN)
  : path.join(example, "../../target/debug/tandem-server");
const chromiumBin = process.env.CHROMIUM ?? "/usr/bin/chromium";
const PATIENCE = 15_000; // ms for any one condition; all of them hold within a second or two

// --- Reading and driving the page ----------------------------------------------------------

const notesOf = page => page.$$eval("#notes textarea", areas => areas.map(a => a.value));

/**
 * Waits until `predicate(notes, arg)` holds in the page (it runs there, so it must not use
 * anything from this file), or fails saying what was awaited and what the page shows.
 */
async function waitForNotes(page, what, predicate, arg) {
  try {
    await page.waitForFunction(
      ([source, arg]) => {
        const notes = [...document.querySelectorAll("#notes textarea")].map(a => a.value);
        return (0, eval)(`(${source})`)(notes, arg);
      },
      [predicate.toString(), arg],
      { timeout: PATIENCE },
    );
  } catch (error) {
    throw new Error(`${page.name}: ${what}; it has ${JSON.stringify(await notesOf(page))}`, {
      cause: error,
    });
  }
}

const waitForExactNotes = (page, expected) =>
  waitForNotes(page, `waited for ${JSON.stringify(expected)}`,
    (notes, expected) => JSON.stringify(notes) === JSON.stringify(expected), expected);

/** Waits for the status indicator: `state` "online"/"offline", `saved` "yes"/"no". */
async function waitForStatus(page, { state, saved }) {
  const selector = `#status${state ? `[data-state="${state}"]` : ""}${saved ? `[data-saved="${saved}"]` : ""}`;
  try {
    await page.waitForSelector(selector, { timeout: PATIENCE });
  } catch (error) {
    const status = await page.$eval("#status", s => `${s.dataset.state}/${s.dataset.saved}: ${s.textContent}`);
    throw new Error(`${page.name}: waited for ${selector}; the status is ${status}`, { cause: error });
  }
}

/** Types `text` at the end of note `index`, key by key as a user would. */
async function appendTo(page, index, text) {
  const area = page.locator("#notes textarea").nth(index);
  await area.focus();
  await page.keyboard.press("Control+End");
  await page.keyboard.type(text);
}

async function addNote(page, text) {
  const count = (await notesOf(page)).length;
  await page.click("#add");
  // The new note's textarea has focus.
  await waitForNotes(page, "waited for the new note", (notes, count) => notes.length === count, count + 1);
  await page.keyboard.type(text);
}

// --- The test ------------------------------------------------------------------------------

test("two browsers edit one notes document, online and offline", { timeout: 120_000 }, async t => {
  assert.ok(
    existsSync(chromiumBin),
    `Chromium not found at ${chromiumBin}: install Debian's chromium package: apt-get install -y chromium (or set CHROMIUM)`,
  );
  assert.ok(
    existsSync(serverBin),
    `tandem-server not found at ${serverBin}: build it (cargo build -p tandem-server) or set TANDEM_SERVER_BIN`,
  );

  // Whatever was started is stopped at the end, pass or fail, last started first.
  const cleanups = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(e => console.error(e));
  });
  const server = await startServer(serverBin, ["--memory", "--port", "0"]);
  cleanups.push(() => stopServer(server.child));
  await build();
  const site = await serve({ host: "127.0.0.1", port: 0 });
  cleanups.push(async () => {
    site.server.closeAllConnections();
    await new Promise(resolve => site.server.close(resolve));
  });
  const browser = await chromium.launch({
    executablePath: chromiumBin,
    headless: true,
    args: ["--no-sandbox"],
  });
  cleanups.push(() => browser.close());

  // Two contexts: two profiles, each with its own IndexedDB, like two people's browsers.
  const pageErrors = [];
  async function open(name, url) {
    const context = await browser.newContext();
    const tab = await context.newPage();
    tab.name = name;
    tab.on("pageerror", error => pageErrors.push(`${name}: ${error.stack ?? error}`));
    await tab.goto(url);
    await waitForStatus(tab, { state: "online" });
    return { context, tab };
  }

  // Alice creates the document; its URL lands in her location hash.
  const { context: aliceContext, tab: alice } = await open("alice", `${site.url}?server=${server.url}`);
  await addNote(alice, "shopping: milk");
  // Bob asks the server for the document, so it must have it first.
  await waitForStatus(alice, { saved: "yes" });
  const docUrl = alice.url();
  assert.match(new URL(docUrl).hash, /^#automerge:/);

  // Bob opens the same address (hash included): the second tab of the brief.
  const { tab: bob } = await open("bob", docUrl);
  await waitForExactNotes(bob, ["shopping: milk"]);

  // Bob -> Alice.
  await appendTo(bob, 0, ", eggs");
  await addNote(bob, "call Bob");
  await waitForExactNotes(alice, ["shopping: milk, eggs", "call Bob"]);
  // Alice -> Bob.
  await appendTo(alice, 1, " tomorrow");
  await waitForExactNotes(bob, ["shopping: milk, eggs", "call Bob tomorrow"]);

  // Alice's browser goes offline. Chromium then fails new connections but leaves an open
  // WebSocket open (stalled), so the page closes it on the window's "offline" event.
  await aliceContext.setOffline(true);
  await waitForStatus(alice, { state: "offline" });
  await appendTo(alice, 0, ", bread");
  await addNote(alice, "written offline");
  // Meanwhile Bob edits the same note and another one, and the server takes his edits.
  await appendTo(bob, 0, " (Bob)");
  await appendTo(bob, 1, " at 5");
  await waitForStatus(bob, { state: "online", saved: "yes" });
  // Neither has seen the other's edits: the server has Bob's, so an open link would have
  // carried them to Alice by now.
  assert.deepEqual(await notesOf(bob), ["shopping: milk, eggs (Bob)", "call Bob tomorrow at 5"]);
  assert.deepEqual(await notesOf(alice), ["shopping: milk, eggs, bread", "call Bob tomorrow", "written offline"]);
  await waitForStatus(alice, { state: "offline", saved: "no" });

  // Back online: the adapter reconnects, and each side gets what the other wrote.
  await aliceContext.setOffline(false);
  await waitForStatus(alice, { state: "online" });
  // Both appended to note 0 at the same place; Automerge keeps both insertions, in an order
  // every replica agrees on.
  const merged = notes =>
    notes.length === 3 &&
    [", bread (Bob)", " (Bob), bread"].some(tail => notes[0] === `shopping: milk, eggs${tail}`) &&
    notes[1] === "call Bob tomorrow at 5" &&
    notes[2] === "written offline";
  await waitForNotes(alice, "waited for Bob's offline-time edits", merged);
  await waitForNotes(bob, "waited for Alice's offline edits", merged);
  assert.deepEqual(await notesOf(alice), await notesOf(bob));
  await waitForStatus(alice, { state: "online", saved: "yes" });
  await waitForStatus(bob, { state: "online", saved: "yes" });

  assert.deepEqual(pageErrors, [], "uncaught errors in the pages");
});
