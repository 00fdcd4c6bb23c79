"""Push and pull one big blob through beakerd over a SeaweedFS bucket, and time each way.

    .venv/bin/python -m bench.s3_push_pull --size-mib 1024

The blob is pushed as one PATCH (streamed from memory, 1 MiB at a time) and a PUT, then pulled
by following the presigned redirect and again streamed through beakerd.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import yaml
from aiohttp import web

from beakerd.app import create_app
from beakerd.settings import Settings
from tests.backends.seaweedfs import SeaweedFS

_BLOCK = 1 << 20


async def _body(size: int, block: bytes) -> AsyncIterator[bytes]:
    for _ in range(size // len(block)):
        yield block


async def _pull(session: aiohttp.ClientSession, url: str, **kwargs: object) -> tuple[float, str]:
    started = time.monotonic()
    hasher = hashlib.sha256()
    async with session.get(url, **kwargs) as resp:  # type: ignore[arg-type]
        resp.raise_for_status()
        async for data in resp.content.iter_chunked(_BLOCK):
            hasher.update(data)
    return time.monotonic() - started, hasher.hexdigest()


async def run(size_mib: int, folder: Path) -> None:
    size = size_mib * _BLOCK
    block = os.urandom(_BLOCK)
    expected = hashlib.sha256()
    for _ in range(size_mib):
        expected.update(block)
    digest = f"sha256:{expected.hexdigest()}"
    with SeaweedFS(folder / "weed", memory_limit="1GiB") as weed:
        os.environ.update(weed.environment())
        results = {}
        for redirect in (True, False):
            home = folder / f"home-{redirect}"  # each server's first start writes its login here
            home.mkdir()
            os.environ["HOME"] = str(home)
            settings = Settings(
                data_dir=folder / f"data-{redirect}",
                blob_store=f"s3://{weed.bucket}/bench-{redirect}",
                bootstrap_account="bench",
                gc_interval_seconds=0,
                blob_redirect=redirect,
                port=0,
            )
            runner = web.AppRunner(create_app(settings))
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = runner.addresses[0][1]
            token = yaml.safe_load((home / ".beaker" / "config.yml").read_text())["user_token"]
            login = {"Authorization": aiohttp.encode_basic_auth("bench", token)}
            base = f"http://127.0.0.1:{port}/v2/bench/big"
            async with aiohttp.ClientSession(headers=login) as session:
                if redirect:
                    started = time.monotonic()
                    async with session.post(f"{base}/blobs/uploads/") as resp:
                        location = resp.headers["Location"]
                    async with session.patch(
                        f"http://127.0.0.1:{port}{location}", data=_body(size, block)
                    ) as resp:
                        resp.raise_for_status()
                    async with session.put(
                        f"http://127.0.0.1:{port}{location}", params={"digest": digest}
                    ) as resp:
                        resp.raise_for_status()
                    results["push (PATCH + PUT)"] = time.monotonic() - started
                else:
                    started = time.monotonic()
                    async with session.post(
                        f"{base}/blobs/uploads/", params={"digest": digest}, data=_body(size, block)
                    ) as resp:
                        resp.raise_for_status()
                    results["push (monolithic POST)"] = time.monotonic() - started
                seconds, got = await _pull(session, f"{base}/blobs/{digest}")
                assert got == expected.hexdigest()
                results["pull (redirect)" if redirect else "pull (streamed)"] = seconds
            await runner.cleanup()
        for what, seconds in results.items():
            print(f"{what:24} {seconds:6.2f} s  {size / seconds / 1e6:7.0f} MB/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="beakerd-s3-bench-") as folder:
        asyncio.run(run(args.size_mib, Path(folder)))


if __name__ == "__main__":
    main()
