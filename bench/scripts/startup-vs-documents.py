#!/usr/bin/env python3
"""Time tandem-server from spawn to "listening" on an empty data directory and on one holding
N documents' chunk files in the NodeFS layout (the bytes are filler: nothing at startup reads
them, which is what this checks).

    cargo build --release -p tandem-server
    python3 bench/scripts/startup-vs-documents.py [N=100000] [STARTS=5]
"""
import os
import random
import subprocess
import sys
import tempfile
import time

SERVER = os.path.join(os.path.dirname(__file__), "../../target/release/tandem-server")
ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def fill(base, documents):
    for _ in range(documents):
        doc = "".join(random.choice(ALPHABET) for _ in range(28))
        chunk_dir = f"{base}/{doc[:2]}/{doc[2:]}/snapshot"
        os.makedirs(chunk_dir, exist_ok=True)
        with open(f"{chunk_dir}/{'ab' * 32}", "wb") as f:
            f.write(b"x" * 200)


def start_ms(data_dir):
    started = time.perf_counter()
    server = subprocess.Popen(
        [SERVER, "--port", "0", "--data-dir", data_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    server.stdout.readline()  # "listening on ws://…"
    elapsed = (time.perf_counter() - started) * 1000
    server.terminate()
    server.wait()
    return elapsed


def main():
    documents = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    starts = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    with tempfile.TemporaryDirectory() as work:
        full, empty = f"{work}/full", f"{work}/empty"
        os.makedirs(empty)
        fill(full, documents)
        os.sync()
        for _ in range(2):
            for name, path in ((f"{documents} documents", full), ("empty", empty)):
                times = [start_ms(path) for _ in range(starts)]
                print(f"{name:>18}: " + " ".join(f"{t:.1f}" for t in times) + " ms")


if __name__ == "__main__":
    main()
