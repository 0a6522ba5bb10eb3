// Writes documents through automerge-repo's NodeFSStorageAdapter and prints what it wrote.
//
//   node nodefs-write.mjs <dir> <count>
//
// Document i is {title: "doc i", items: [0..9], meta: {index: i, even: bool}}; document 0 then
// gets 30 more changes (random text), so that its storage holds a snapshot and incrementals.
// Prints JSON: [{url, heads (hex), content}].
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const [dir, countText] = process.argv.slice(2)
const count = Number(countText)
const repo = new Repo({ storage: new NodeFSStorageAdapter(dir), network: [] })

const handles = []
for (let i = 0; i < count; i++) {
  handles.push(repo.create({ title: `doc ${i}`, items: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], meta: { index: i, even: i % 2 === 0 } }))
}
await repo.flush()
for (let n = 0; n < 30; n++) {
  handles[0].change(d => {
    if (!d.log) d.log = []
    // Random text: it does not compress, so the snapshot outgrows NodeFS's 1 KiB threshold.
    d.log.push(`entry ${n}: ${Math.random().toString(36).slice(2)}${Math.random().toString(36).slice(2)}`)
  })
  // Let each change be saved on its own, so that incrementals accumulate between compactions.
  await repo.flush()
}
const out = handles.map(h => ({ url: h.url, heads: A.getHeads(h.doc()), content: h.doc() }))
await repo.shutdown()
process.stdout.write(JSON.stringify(out))
