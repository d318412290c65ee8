"""A SLOW HOP (not a server): a TCP relay in front of one real worker that holds each answer back a fixed time.

It plays the slower node of a fleet (an old driver, a busier host) for the gateway, which reaches that worker
through it. The first bytes of each answer wait ``delay`` seconds; everything else passes as it came, with
TCP_NODELAY on both sides, so that the relay adds no delayed-ACK stall of its own.
"""

import asyncio
import socket
import threading


class SlowHop:
    def __init__(self, target_port: int, delay: float, host: str = "127.0.0.1"):
        self.target, self.delay, self.host = (host, target_port), delay, host
        self.port: int | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def __enter__(self) -> "SlowHop":
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._relay, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _relay(self, client_reader, client_writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        for writer in (client_writer, upstream_writer):
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        asked = asyncio.Event()  # a request went up since the last answer began: hold the next answer back

        async def pump(reader, writer, hold: bool) -> None:
            try:
                while chunk := await reader.read(1 << 16):
                    if hold and asked.is_set():
                        asked.clear()
                        await asyncio.sleep(self.delay)
                    elif not hold:
                        asked.set()
                    writer.write(chunk)
                    await writer.drain()
            except (ConnectionError, asyncio.CancelledError):
                pass
            finally:
                writer.close()

        await asyncio.gather(pump(client_reader, upstream_writer, False), pump(upstream_reader, client_writer, True))
