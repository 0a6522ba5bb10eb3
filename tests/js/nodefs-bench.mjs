// The NodeFS half of tandem-storage-fs's benchmark (crates/storage-fs/benches/vs_nodefs.rs).
//
//   node nodefs-bench.mjs save <dir> <corpus.jsonl>   saves every {key, hex} line through NodeFS
//   node nodefs-bench.mjs load <dir>                  loads every document in <dir> as the repo does
//
// Prints JSON: {ms, docs, cpuMs}.
import * as fs from "node:fs"
import * as A from "@automerge/automerge"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const [mode, dir, corpus] = process.argv.slice(2)
const adapter = new NodeFSStorageAdapter(dir)
const cpuStart = process.cpuUsage()

if (mode === "save") {
  const entries = fs.readFileSync(corpus, "utf8").trim().split("\n").map(line => JSON.parse(line))
  const values = entries.map(e => [e.key, Buffer.from(e.hex, "hex")])
  const start = performance.now()
  await Promise.all(values.map(([key, bytes]) => adapter.save(key, bytes)))
  report(performance.now() - start, values.length)
} else if (mode === "load") {
  // Document ids from the directory layout: <2 chars>/<rest>.
  const ids = []
  for (const head of fs.readdirSync(dir)) {
    if (head.length !== 2) continue
    for (const rest of fs.readdirSync(`${dir}/${head}`)) ids.push(head + rest)
  }
  const start = performance.now()
  const docs = await Promise.all(ids.map(async id => {
    const snapshots = await adapter.loadRange([id, "snapshot"])
    const incrementals = await adapter.loadRange([id, "incremental"])
    const chunks = [...snapshots, ...incrementals].map(c => c.data)
    const bytes = Buffer.concat(chunks)
    return A.loadIncremental(A.init(), bytes)
  }))
  report(performance.now() - start, docs.filter(d => A.getHeads(d).length > 0).length)
} else {
  throw new Error(`unknown mode ${mode}`)
}

function report(ms, docs) {
  const cpu = process.cpuUsage(cpuStart)
  process.stdout.write(JSON.stringify({ ms, docs, cpuMs: (cpu.user + cpu.system) / 1000 }))
}
