#!/usr/bin/env python3
"""Seeds each target's corpus from the bytes captured from the JS packages
(crates/core/tests/fixtures): frames for the decoders, ids and URLs for the parser, storage keys
for the path mapping. Idempotent: a seed is named by its content's hash."""
import hashlib
import json
import pathlib
import re
import struct

HERE = pathlib.Path(__file__).resolve().parent
FIXTURES = HERE.parent / "crates" / "core" / "tests" / "fixtures"
HEX = re.compile(r"^(?:[0-9a-fA-F]{2}){4,}$")


def walk(value, key=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield from walk(v, k)
    elif isinstance(value, list):
        if key == "storageKey" and all(isinstance(p, str) for p in value):
            yield ("key", value)
        for v in value:
            yield from walk(v, key)
    elif isinstance(value, str):
        yield ("text", key, value)


def main():
    seeds = {"message_decode": set(), "peer_messages": set(), "url_parse": set(), "storage_key_path": set()}
    for path in sorted(FIXTURES.glob("*.json")):
        for item in walk(json.loads(path.read_text())):
            if item[0] == "key":
                seeds["storage_key_path"].add(b"\xff".join(p.encode() for p in item[1]))
                continue
            _, key, text = item
            lowered = key.lower()
            if HEX.match(text) and any(w in lowered for w in ("hex", "cbor", "frame", "bytes")):
                frame = bytes.fromhex(text)
                seeds["message_decode"].add(frame)
                if len(frame) < 65536:
                    seeds["peer_messages"].add(struct.pack("<H", len(frame)) + frame)
            if text.startswith("automerge:") or lowered in ("documentid", "url", "docurl"):
                seeds["url_parse"].add(text.encode())
    for target, items in seeds.items():
        corpus = HERE / "corpus" / target
        corpus.mkdir(parents=True, exist_ok=True)
        for data in items:
            (corpus / hashlib.sha1(data).hexdigest()).write_bytes(data)
        print(f"{target}: {len(items)} seeds")


if __name__ == "__main__":
    main()
