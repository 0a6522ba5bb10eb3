throw new Error("native cbor-extract is not available here; cbor-x uses its JS decoder")
