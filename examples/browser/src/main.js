// A collaborative notes page: automerge-repo in the browser, syncing through tandem-server over
// a WebSocket and keeping a copy in IndexedDB, so the page works offline and catches up later.
//
// The document: { notes: [{ id, text }] }. Notes are a list (so concurrent additions all survive,
// in a stable order) and each text is an Automerge string (so concurrent edits to one note merge
// character by character instead of one overwriting the other).

// Automerge's core is WebAssembly. The "slim" entry points leave loading it to us: esbuild's
// "file" loader copies automerge.wasm next to the bundle and gives us its URL, and the browser
// compiles it while it downloads. (The default entry would need a bundler that understands
// `import ... from "x.wasm"`, which esbuild does not; the base64 entry would inline 4.9 MB of text
// into the bundle.)
import { initializeWasm, updateText, getCursor, getCursorPosition } from "@automerge/automerge/slim";
import wasmUrl from "@automerge/automerge/automerge.wasm";
import { Repo, isValidAutomergeUrl } from "@automerge/automerge-repo/slim";
import { BrowserWebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket";
import { IndexedDBStorageAdapter } from "@automerge/automerge-repo-storage-indexeddb";

await initializeWasm(wasmUrl);

const serverUrl = new URLSearchParams(location.search).get("server") ?? "ws://127.0.0.1:3030";
// The adapter retries a lost connection every `retryInterval` ms; its default (5 s) feels slow
// on a demo page, so retry every second.
const network = new BrowserWebSocketClientAdapter(serverUrl, 1000);
const repo = new Repo({ network: [network], storage: new IndexedDBStorageAdapter("tandem-notes") });

const statusEl = document.getElementById("status");
const docUrlEl = document.getElementById("doc-url");
const addButton = document.getElementById("add");
const list = document.getElementById("notes");

// The document named in the hash, or a new one. Putting its URL in the hash is what lets a
// second tab (or another browser) open the same document: copy the whole address.
let handle;
const wanted = location.hash.slice(1);
try {
  handle = isValidAutomergeUrl(wanted) ? await repo.find(wanted) : repo.create({ notes: [] });
} catch (error) {
  // Not in IndexedDB and the server does not have it (or could not be reached).
  docUrlEl.textContent = `cannot open ${wanted}: ${error.message}`;
  throw error;
}
history.replaceState(null, "", `#${handle.url}`);
// Another document's URL pasted into the hash: start over with that one.
window.addEventListener("hashchange", () => location.reload());
docUrlEl.textContent = handle.url;

// --- Connection status ---------------------------------------------------------------------
// "online" while the server is a peer of our repo. "saved" when the server's storage holds
// everything we have: the server tells us its storage id when it becomes a peer, and the repo
// records, per storage id, the heads that peer's sync messages say it has.
function serverStorageId() {
  const peer = repo.peers[0];
  return peer && repo.getStorageIdOfPeer(peer);
}

function sameHeads(a, b) {
  return !!a && !!b && a.length === b.length && a.every(h => b.includes(h));
}

function showStatus() {
  const online = repo.peers.length > 0;
  // Until the first connection attempt settles, "connecting…" (from the HTML) is the truth.
  if (!online && !network.isReady()) return;
  const storageId = serverStorageId();
  const saved = online && storageId && sameHeads(handle.getRemoteHeads(storageId), handle.heads());
  statusEl.dataset.state = online ? "online" : "offline";
  statusEl.dataset.saved = saved ? "yes" : "no";
  statusEl.textContent = !online
    ? "offline: edits stay in this browser until the server is back"
    : saved ? "online, saved on the server" : "online, syncing…";
}

// A browser keeps a WebSocket open when the network goes away, and may take minutes to notice
// that it is dead. When the browser itself says it is offline, close the socket: the status shows
// it at once, and the adapter's retries reconnect (and resync) when the network is back.
window.addEventListener("offline", () => network.socket?.close());

repo.networkSubsystem.on("peer", showStatus);
repo.networkSubsystem.on("peer-disconnected", showStatus);
handle.on("remote-heads", showStatus);
network.whenReady().then(showStatus);

// --- Notes ---------------------------------------------------------------------------------
const items = new Map(); // note id -> <li>, reused across renders so typing keeps focus

function makeItem(id) {
  const li = document.createElement("li");
  li.dataset.id = id;
  const area = document.createElement("textarea");
  area.placeholder = "Write something…";
  // Look the note up by id at change time: its index moves when others add notes concurrently.
  area.addEventListener("input", () => {
    handle.change(doc => {
      const index = doc.notes.findIndex(n => n.id === id);
      // updateText turns the new value into a minimal splice, so concurrent edits merge.
      if (index >= 0) updateText(doc, ["notes", index, "text"], area.value);
    });
  });
  li.append(area);
  return li;
}

// Draws `doc` into the list. `before` (the previous version) lets us keep the caret of the note
// being edited in the right place when someone else's edit changes its text.
function render(doc, before) {
  const seen = new Set();
  doc.notes.forEach((note, index) => {
    seen.add(note.id);
    let li = items.get(note.id);
    if (!li) items.set(note.id, (li = makeItem(note.id)));
    // Move only what is out of place: moving the focused element would blur it.
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] ?? null);
    const area = li.firstChild;
    if (area.value === note.text) return;
    const beforeIndex = before?.notes.findIndex(n => n.id === note.id) ?? -1;
    if (document.activeElement === area && beforeIndex >= 0) {
      // An Automerge cursor points at a character, not an offset, so it follows remote inserts.
      const cursor = getCursor(before, ["notes", beforeIndex, "text"], area.selectionStart);
      area.value = note.text;
      const caret = getCursorPosition(doc, ["notes", index, "text"], cursor);
      area.setSelectionRange(caret, caret);
    } else {
      area.value = note.text;
    }
  });
  for (const [id, li] of items) {
    if (!seen.has(id)) {
      li.remove();
      items.delete(id);
    }
  }
}

handle.on("change", ({ doc, patchInfo }) => {
  render(doc, patchInfo.before);
  showStatus(); // our own edits make us "syncing" until the server has them
});
render(handle.doc());
showStatus();

addButton.disabled = false;
addButton.addEventListener("click", () => {
  // getRandomValues, unlike randomUUID, also works when the page is not a secure context.
  const id = Array.from(crypto.getRandomValues(new Uint32Array(2)), n => n.toString(36)).join("");
  handle.change(doc => {
    doc.notes.push({ id, text: "" });
  });
  items.get(id)?.firstChild.focus();
});
