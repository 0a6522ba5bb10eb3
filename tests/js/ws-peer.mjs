// A JS automerge-repo peer over WebSocket, for tandem's interop tests. Prints one JSON line per
// result on stdout; logs go to stderr.
//
//   node ws-peer.mjs create <ws-url>              create the rich document, wait for the server's
//                                                 ack, print {url, heads, content}
//   node ws-peer.mjs find <ws-url> <doc-url>      print {heads, content}
//   node ws-peer.mjs find-status <ws-url> <doc-url>
//                                                 print {heads} if found, {error} if not
//   node ws-peer.mjs missing <ws-url>             find an unknown document: print {ms, error}
//   node ws-peer.mjs edit <ws-url> <doc-url> <n>  make n sequential changes (counter += 1, text
//                                                 appended), each acked; print {heads, content}
//   node ws-peer.mjs edit-until <ws-url> <doc-url> <n> <count>
//                                                 make n changes as `edit` does, each acked, then
//                                                 wait (connected) until the counter reaches
//                                                 <count> through others' changes; print
//                                                 {heads, content}
//   node ws-peer.mjs big <ws-url> <bytes>         create a document holding <bytes> of text
//   node ws-peer.mjs ephemeral <ws-url> <doc-url> broadcast {from: "js"}, print the first
//                                                 ephemeral message received, then exit
//   node ws-peer.mjs gossip <ws-url> <doc-url> <storage-id>
//                                                 print the heads gossip reports for a storage
//   node ws-peer.mjs reconnect <ws-url> <doc-url> follow a document across a server restart
//   node ws-peer.mjs write-then-follow <ws-url> <doc-url> <key>
//                                                 as peer "reader": set js = true, and once a
//                                                 sync message for the document has gone out
//                                                 after it, broadcast {sent: true} and print
//                                                 {ready}; then print {content} once the
//                                                 document holds <key> (a change from elsewhere)
//   node ws-peer.mjs presence <ws-url> <doc-url>   share presence as {name: "js"} (heartbeats every
//                                                 200 ms); print {saw} once a peer present is
//                                                 named "rust", broadcast cursor = 42, print
//                                                 {cursor} once that peer's cursor is 7, then stop
//                                                 (a goodbye) and print {stopped}
//   node ws-peer.mjs hold-then-edit <ws-url> <doc-url>
//                                                 find the document, print {found}; on a line
//                                                 on stdin, change it (after_delete = true) and
//                                                 print how the server answers: {answer:
//                                                 "doc-unavailable"}, or "acknowledged" if it
//                                                 stored the change
//   node ws-peer.mjs oversize <ws-url> <doc-url> <bytes>
//                                                 add <bytes> of text to the document in one
//                                                 change; print the heads of the server's next
//                                                 sync message and ours: {server, mine}
//   node ws-peer.mjs token-outcome <ws-url> <peer-id>
//                                                 connect as <peer-id> and print what happens, a
//                                                 line each: {joined: true} when the server
//                                                 accepts the join, {error} if the connection
//                                                 fails (an upgrade refused with 401, say),
//                                                 {closed: code} when the server closes it; exit
//                                                 after an error or a close
//   node ws-peer.mjs server <dir> <port>          a JS sync server (NodeFS storage, sharePolicy
//                                                 false); prints "listening on ws://…"
//
// Content is printed "tagged" so that Rust can compare types, not only JSON shapes: bytes as
// {"$bytes": [...]}, counters as {"$counter": n}, text as strings.
import * as A from "@automerge/automerge"
import { Repo, Presence, generateAutomergeUrl, decodeHeads } from "@automerge/automerge-repo"
import { WebSocketClientAdapter, WebSocketServerAdapter } from "@automerge/automerge-repo-network-websocket"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"
import { WebSocketServer } from "ws"

const [command, ...args] = process.argv.slice(2)
const out = value => process.stdout.write(JSON.stringify(value) + "\n")

function tagged(value) {
  if (value instanceof Uint8Array) return { $bytes: Array.from(value) }
  if (value instanceof A.Counter) return { $counter: value.value }
  if (value instanceof A.RawString) return value.val
  if (Array.isArray(value)) return value.map(tagged)
  if (value !== null && typeof value === "object") {
    const result = {}
    for (const [k, v] of Object.entries(value)) result[k] = tagged(v)
    return result
  }
  return value
}

async function client(url, options = {}) {
  const repo = new Repo({ network: [new WebSocketClientAdapter(url, 100)], sharePolicy: async () => true, ...options })
  await repo.networkSubsystem.whenReady()
  // Wait for the server to be a peer (the adapter is "ready" after 1 s even without one).
  while (repo.peers.length === 0) await new Promise(r => repo.networkSubsystem.once("peer", r))
  return repo
}

// Resolves once the server's storage reports holding the handle's current heads.
async function acked(repo, handle) {
  const storageId = Object.values(repo.peerMetadataByPeerId).find(m => m.storageId)?.storageId
  if (!storageId) throw new Error("the server has no storage id")
  const same = () => {
    const info = handle.getSyncInfo(storageId)
    const mine = handle.heads()
    return info && info.lastHeads.length === mine.length && mine.every(h => info.lastHeads.includes(h))
  }
  while (!same()) await new Promise(r => handle.once("remote-heads", r))
}

const content = () => ({
  title: "hello from js",
  text: "some text",
  raw: new A.RawString("a scalar string"),
  count: new A.Counter(5),
  int: 42,
  negative: -7,
  float: 3.5,
  yes: true,
  no: false,
  nothing: null,
  bytes: new Uint8Array([0, 1, 2, 250]),
  list: [1, "two", [3], { four: 4 }],
  nested: { deeper: { deepest: ["x"] } },
})

switch (command) {
  case "create": {
    const repo = await client(args[0])
    const handle = repo.create(content())
    await acked(repo, handle)
    out({ url: handle.url, heads: A.getHeads(handle.doc()), content: tagged(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "find": {
    const repo = await client(args[0])
    const handle = await repo.find(args[1])
    out({ heads: A.getHeads(handle.doc()), content: tagged(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "find-status": {
    const repo = await client(args[0])
    try {
      const handle = await repo.find(args[1])
      out({ heads: A.getHeads(handle.doc()) })
    } catch (e) {
      out({ error: String(e.message ?? e) })
    }
    await repo.shutdown()
    break
  }
  case "missing": {
    const repo = await client(args[0])
    const unknown = generateAutomergeUrl()
    const started = Date.now()
    let error = null
    try {
      await repo.find(unknown)
    } catch (e) {
      error = String(e.message ?? e)
    }
    out({ ms: Date.now() - started, error })
    await repo.shutdown()
    break
  }
  case "edit": {
    const repo = await client(args[0])
    const handle = await repo.find(args[1])
    const n = Number(args[2])
    for (let i = 0; i < n; i++) {
      handle.change(d => {
        d.count.increment(1)
        A.splice(d, ["text"], d.text.length, 0, "!")
      })
    }
    await acked(repo, handle)
    out({ heads: A.getHeads(handle.doc()), content: tagged(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "edit-until": {
    const repo = await client(args[0])
    const handle = await repo.find(args[1])
    const [n, until] = [Number(args[2]), Number(args[3])]
    for (let i = 0; i < n; i++) {
      handle.change(d => {
        d.count.increment(1)
        A.splice(d, ["text"], d.text.length, 0, "!")
      })
      await acked(repo, handle)
    }
    while (handle.doc().count.value < until) await new Promise(r => handle.once("change", r))
    out({ heads: A.getHeads(handle.doc()), content: tagged(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "big": {
    const repo = await client(args[0])
    const size = Number(args[1])
    let text = ""
    while (text.length < size) text += Math.random().toString(36).slice(2)
    const handle = repo.create({ blob: text.slice(0, size) })
    await acked(repo, handle)
    out({ url: handle.url, heads: A.getHeads(handle.doc()), length: handle.doc().blob.length })
    await repo.shutdown()
    break
  }
  case "ephemeral": {
    const repo = await client(args[0])
    const handle = await repo.find(args[1])
    const received = new Promise(r => handle.on("ephemeral-message", ({ message, senderId }) => r({ message, senderId })))
    // Ready for the other side's message before telling it ours.
    out({ ready: true })
    handle.broadcast({ from: "js" })
    out({ received: await received })
    await repo.shutdown()
    break
  }
  case "reconnect": {
    // Follows a document across a server restart: prints connected, disconnected, then synced
    // (after a change made once the server is back has been acknowledged).
    const repo = await client(args[0])
    const handle = await repo.find(args[1])
    out({ phase: "connected" })
    await new Promise(r => repo.networkSubsystem.once("peer-disconnected", r))
    out({ phase: "disconnected" })
    await new Promise(r => repo.networkSubsystem.once("peer", r))
    handle.change(d => { d.after_restart = true })
    await acked(repo, handle)
    out({ phase: "synced", heads: A.getHeads(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "write-then-follow": {
    const [url, docUrl, key] = args
    const repo = await client(url, { peerId: "reader" })
    const handle = await repo.find(docUrl)
    // A sync message sent after the change: the server has it (and has decided on it) before
    // anything sent after it on the same socket.
    const send = repo.networkSubsystem.send.bind(repo.networkSubsystem)
    let changed = false
    const syncedAfterChange = new Promise(resolve => {
      repo.networkSubsystem.send = message => {
        send(message)
        if (changed && message.type === "sync" && message.documentId === handle.documentId) resolve()
      }
    })
    handle.change(d => { d.js = true })
    changed = true
    await syncedAfterChange
    handle.broadcast({ sent: true })
    out({ ready: true })
    while (handle.doc()[key] === undefined) await new Promise(r => handle.once("change", r))
    out({ content: tagged(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "hold-then-edit": {
    const [url, docUrl] = args
    const repo = await client(url)
    const handle = await repo.find(docUrl)
    out({ found: true, content: tagged(handle.doc()) })
    const lines = (await import("node:readline")).createInterface({ input: process.stdin })
    await new Promise(r => lines.once("line", r))
    const unavailable = new Promise(resolve => {
      repo.networkSubsystem.on("message", message => {
        if (message.documentId === handle.documentId && message.type === "doc-unavailable") {
          resolve("doc-unavailable")
        }
      })
    })
    handle.change(d => { d.after_delete = true })
    const acknowledged = acked(repo, handle).then(() => "acknowledged")
    out({ answer: await Promise.race([unavailable, acknowledged]) })
    lines.close()
    await repo.shutdown()
    break
  }
  case "oversize": {
    const [url, docUrl, bytes] = args
    const repo = await client(url)
    const handle = await repo.find(docUrl)
    // The server's answer is its first sync message after ours carrying the change went out
    // (one already on its way, from the find, would say nothing about the change).
    const network = repo.networkSubsystem
    const send = network.send.bind(network)
    // Nothing is sent before the change below: it is made before this task yields.
    let sent = false
    network.send = message => {
      if (message.type === "sync" && message.documentId === handle.documentId) sent = true
      return send(message)
    }
    const next = new Promise(resolve => {
      network.on("message", message => {
        if (sent && message.documentId === handle.documentId && message.type === "sync") {
          resolve(A.decodeSyncMessage(message.data).heads)
        }
      })
    })
    handle.change(d => { d.oversize = "y".repeat(Number(bytes)) })
    out({ server: await next, mine: A.getHeads(handle.doc()) })
    await repo.shutdown()
    break
  }
  case "token-outcome": {
    const [url, peerId] = args
    // No retry within the test: after a refusal, the Node adapter's retry throws.
    const adapter = new WebSocketClientAdapter(url, 600000)
    const ended = new Promise(resolve => {
      adapter.on("peer-candidate", () => out({ joined: true }))
      adapter.onError = event => resolve({ error: String(event.error?.message ?? event.message ?? "error") })
      adapter.onClose = event => resolve({ closed: event.code })
    })
    const repo = new Repo({ network: [adapter], peerId, sharePolicy: async () => true })
    out(await ended)
    process.exit(0)
  }
  case "presence": {
    const [url, docUrl] = args
    const repo = await client(url)
    const handle = await repo.find(docUrl)
    const presence = new Presence({ handle })
    const heard = () => new Promise(r => {
      presence.once("snapshot", r)
      presence.once("update", r)
    })
    const rust = () =>
      Object.values(presence.getPeerStates().value).find(peer => peer.value.name === "rust")
    presence.start({ initialState: { name: "js" }, heartbeatMs: 200, peerTtlMs: 1000 })
    while (!rust()) await heard()
    out({ saw: rust().value, peerId: rust().peerId })
    presence.broadcast("cursor", 42)
    while (rust()?.value.cursor !== 7) await heard()
    out({ cursor: rust().value.cursor })
    presence.stop()
    out({ stopped: true })
    await repo.shutdown()
    break
  }
  case "gossip": {
    // Subscribes to a storage id it never meets and prints the heads gossip reports for it.
    const [url, docUrl, storageId] = args
    const repo = await client(url, { enableRemoteHeadsGossiping: true })
    repo.subscribeToRemotes([storageId])
    const handle = await repo.find(docUrl)
    while (!handle.getSyncInfo(storageId)) await new Promise(r => handle.once("remote-heads", r))
    out({ heads: decodeHeads(handle.getSyncInfo(storageId).lastHeads) })
    await repo.shutdown()
    break
  }
  case "server": {
    const [dir, port] = args
    const wss = new WebSocketServer({ host: "127.0.0.1", port: Number(port) })
    await new Promise(r => wss.once("listening", r))
    const repo = new Repo({
      network: [new WebSocketServerAdapter(wss)],
      storage: new NodeFSStorageAdapter(dir),
      sharePolicy: async () => false,
    })
    // The adapter takes connections only once the repo has read its storage id and connected it
    // (a reaction to the same promise, registered first); a client that came earlier went
    // unheard until the keepalive dropped it 5 s later.
    await repo.networkSubsystem.peerMetadata
    await new Promise(r => setImmediate(r))
    out({ listening: `ws://127.0.0.1:${wss.address().port}`, peerId: repo.peerId })
    process.on("SIGTERM", async () => {
      await repo.flush()
      process.exit(0)
    })
    break
  }
  default:
    console.error(`unknown command ${command}`)
    process.exit(2)
}
