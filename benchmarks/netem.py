"""A TCP proxy on 127.0.0.1 that gives a loopback server a real network's latency and bandwidth.

Each request (client -> server chunk) is held for ``rtt`` seconds; each response byte stream is paced to
``mbps`` MB/s per connection. Crude, but it makes a local S3 behave like S3 seen from an EC2 instance in
the same region (tens of milliseconds to first byte, tens of MB/s per connection) instead of a
zero-latency, memory-speed loopback, where reading fewer bytes cannot show.
"""

from __future__ import annotations

import asyncio
import threading

CHUNK = 64 * 1024


class LinkEmulator:
    """``with LinkEmulator(target_port, rtt=0.02, mbps=50) as port:`` connect to ``127.0.0.1:port``."""

    def __init__(self, target_port: int, rtt: float = 0.02, mbps: float | None = 50.0) -> None:
        self.target_port = target_port
        self.rtt = rtt
        self.bytes_per_second = mbps * 1e6 if mbps else None  # None: no pacing (a plain proxy)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, paced: bool) -> None:
        try:
            while chunk := await reader.read(CHUNK):
                if delay:
                    await asyncio.sleep(delay)
                if paced and self.bytes_per_second:
                    await asyncio.sleep(len(chunk) / self.bytes_per_second)
                writer.write(chunk)
                await writer.drain()
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        await asyncio.gather(
            self._pipe(client_reader, server_writer, self.rtt, paced=False),
            self._pipe(server_reader, client_writer, 0.0, paced=True),
        )

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    def __enter__(self) -> int:
        self._thread.start()
        self._ready.wait(10)
        return self.port

    def __exit__(self, *exc: object) -> None:
        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._loop.stop()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        self._thread.join(5)
