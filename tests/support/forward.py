"""A tiny byte forwarder between a TCP port and a Unix socket (either direction).

    python3 -m tests.support.forward --listen 127.0.0.1:PORT --unix PATH
    python3 -m tests.support.forward --listen-unix PATH --connect 127.0.0.1:PORT

The first form runs inside a lab host (a network namespace): its own loopback port then
reaches a server of the root namespace through a Unix socket, since namespaces share the
filesystem. The second form runs in the root namespace in front of a TCP server. Bytes are
copied as they are (an HTTP Host header, and so an S3 signature, stays intact).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(Exception):
            if writer.can_write_eof():
                writer.write_eof()


async def _serve(args: argparse.Namespace) -> None:
    async def connect() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        if args.unix:
            return await asyncio.open_unix_connection(args.unix)
        host, _, port = args.connect.rpartition(":")
        return await asyncio.open_connection(host, int(port))

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await connect()
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    if args.listen_unix:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.listen_unix)
        server = await asyncio.start_unix_server(handle, args.listen_unix)
    else:
        host, _, port = args.listen.rpartition(":")
        server = await asyncio.start_server(handle, host, int(port), reuse_address=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
    if args.listen_unix:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(args.listen_unix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m tests.support.forward")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--listen", help="HOST:PORT to listen on (TCP)")
    where.add_argument("--listen-unix", help="Unix socket path to listen on")
    to = parser.add_mutually_exclusive_group(required=True)
    to.add_argument("--unix", help="Unix socket path to forward to")
    to.add_argument("--connect", help="HOST:PORT to forward to (TCP)")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
