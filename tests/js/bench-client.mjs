// The JS automerge-repo client of tandem-bench, so that a server is also measured with a client
// that is not ours. The bench spawns it, one scenario per process:
//
//   node bench-client.mjs s1 <ws-url> <n>      S1: create n documents, wait until the server's
//                                              storage holds them, then a fresh repo finds all
//   node bench-client.mjs s2 <ws-url> <trips>  S2: sequential round trips between two repos
//
// Protocol on stdio: once both repos are connected it prints {"ready": true} and waits for a line
// on stdin; the timed part starts when that line arrives (the bench starts its server stopwatch
// just before sending it). It ends by printing one JSON object of figures: wall_ms,
// client_cpu_ms (this process, user + system) and the scenario's own. Errors go to stderr with
// exit code 1.
import { Repo } from "@automerge/automerge-repo"
import { WebSocketClientAdapter } from "@automerge/automerge-repo-network-websocket"
import { createInterface } from "node:readline"

// stdout carries the protocol; automerge-repo's own console.log lines go to stderr instead.
const out = value => process.stdout.write(JSON.stringify(value) + "\n")
console.log = console.error

const [scenario, url, sizeArg] = process.argv.slice(2)
const size = Number(sizeArg)

// Finds run this many at a time. (The Rust client asks for 1,000 at once; here that blocks Node's
// event loop for longer than a server's keepalive allows, and both tandem-server and the JS
// server drop a client that does not answer a ping within 5-10 s.)
const BATCH = 100

async function client() {
  const repo = new Repo({ network: [new WebSocketClientAdapter(url, 100)], sharePolicy: async () => true })
  await repo.networkSubsystem.whenReady()
  // The adapter reports ready after 1 s even without a peer: wait for the server itself.
  while (repo.peers.length === 0) await new Promise(r => repo.networkSubsystem.once("peer", r))
  return repo
}

function storageIdOf(repo) {
  const storageId = Object.values(repo.peerMetadataByPeerId).find(m => m.storageId)?.storageId
  if (!storageId) throw new Error("the server advertises no storage id: cannot tell when it has the documents")
  return storageId
}

// Resolves once the server reports holding the handle's current heads under its storage id (its
// sync state's heads for us, as the Rust client's `acknowledged` reads them).
async function acked(handle, storageId) {
  const same = () => {
    const info = handle.getSyncInfo(storageId)
    const mine = handle.heads()
    return info && info.lastHeads.length === mine.length && mine.every(h => info.lastHeads.includes(h))
  }
  while (!same()) await new Promise(r => handle.once("remote-heads", r))
}

// Resolves once the handle has exactly `heads`.
async function hasHeads(handle, heads) {
  const same = () => {
    const now = handle.heads()
    return now.length === heads.length && heads.every(h => now.includes(h))
  }
  while (!same()) await new Promise(r => handle.once("change", r))
}

async function go() {
  out({ ready: true })
  const lines = createInterface({ input: process.stdin })
  // Without a bench to tell it to go (it died or gave up), this process has nothing to do.
  const orphaned = () => process.exit(1)
  lines.once("close", orphaned)
  await new Promise(r => lines.once("line", r))
  lines.off("close", orphaned)
  lines.close()
}

// Runs `timed` between the go line and the figures; adds wall and CPU time.
async function measure(timed) {
  await go()
  const cpu = process.cpuUsage()
  const started = performance.now()
  const figures = await timed(started)
  const used = process.cpuUsage(cpu)
  out({ wall_ms: performance.now() - started, client_cpu_ms: (used.user + used.system) / 1000, ...figures })
}

async function s1(n) {
  const a = await client()
  const b = await client()
  const storageId = storageIdOf(a)
  await measure(async started => {
    const handles = []
    for (let i = 0; i < n; i++) {
      handles.push(a.create({ title: `doc ${i}`, items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9] }))
      // Let the event loop run now and then: blocked for the whole loop, the client cannot
      // answer the server's keepalive pings, and the server drops it as dead.
      if (i % 100 === 99) await new Promise(r => setImmediate(r))
    }
    const created = performance.now()
    for (const handle of handles) await acked(handle, storageId)
    const stored = performance.now()
    const urls = handles.map(h => h.url)
    for (let from = 0; from < n; from += BATCH) {
      // B may have been dropped and be reconnecting: a find with no peer to ask fails at once.
      while (b.peers.length === 0) await new Promise(r => b.networkSubsystem.once("peer", r))
      const asked = performance.now()
      const found = await Promise.all(urls.slice(from, from + BATCH).map(u => b.find(u))).catch(error => {
        // automerge-repo gives up on a document after 60 s of asking: say how long this took.
        const s = ms => (ms / 1000).toFixed(1)
        throw new Error(`finding documents ${from}…: ${error.message}, ${s(performance.now() - asked)} s after ` +
          `asking (created at ${s(created - started)} s, stored at ${s(stored - started)} s)`)
      })
      found.forEach((handle, k) => {
        const i = from + k
        const doc = handle.doc()
        if (doc?.title !== `doc ${i}` || doc?.items?.length !== 10) throw new Error(`document ${i} arrived wrong`)
      })
    }
    return { created_ms: created - started, stored_ms: stored - started, found_ms: performance.now() - stored }
  })
}

async function s2(trips) {
  const a = await client()
  const b = await client()
  const doc = a.create({ n: 0 })
  await acked(doc, storageIdOf(a))
  const seen = await b.find(doc.url)
  await hasHeads(seen, doc.heads())
  await measure(async () => {
    const samples = []
    for (let i = 0; i < trips; i++) {
      const sent = performance.now()
      doc.change(d => { d.n = i + 1 })
      await hasHeads(seen, doc.heads())
      samples.push(performance.now() - sent)
    }
    samples.sort((x, y) => x - y)
    const at = q => samples[Math.round((samples.length - 1) * q)]
    return { p50_ms: at(0.5), p90_ms: at(0.9), p99_ms: at(0.99) }
  })
}

try {
  if (!url || !(size > 0)) throw new Error("usage: bench-client.mjs s1|s2 <ws-url> <size>")
  if (scenario === "s1") await s1(size)
  else if (scenario === "s2") await s2(size)
  else throw new Error(`unknown scenario ${scenario}`)
  process.exit(0)
} catch (error) {
  console.error(error?.stack ?? String(error))
  process.exit(1)
}
