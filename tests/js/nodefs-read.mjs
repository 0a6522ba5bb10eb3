// Opens a directory through automerge-repo's NodeFSStorageAdapter and prints the documents.
//
//   node nodefs-read.mjs <dir> <url>...
//
// Prints JSON: [{url, heads (hex), content}], in argument order.
import * as A from "@automerge/automerge"
import { Repo } from "@automerge/automerge-repo"
import { NodeFSStorageAdapter } from "@automerge/automerge-repo-storage-nodefs"

const [dir, ...urls] = process.argv.slice(2)
const repo = new Repo({ storage: new NodeFSStorageAdapter(dir), network: [] })
const out = []
for (const url of urls) {
  const handle = await repo.find(url)
  out.push({ url, heads: A.getHeads(handle.doc()), content: handle.doc() })
}
await repo.shutdown()
process.stdout.write(JSON.stringify(out))
