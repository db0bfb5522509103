"""LW014 fixed: the flag is an `asyncio.Event`, so the waiter wakes the moment it is set."""

import asyncio
import time


class Connection:
    def __init__(self) -> None:
        self._ready = asyncio.Event()

    def on_handshake(self) -> None:
        self._ready.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()


async def main() -> None:
    connection = Connection()
    started = time.perf_counter()
    asyncio.get_running_loop().call_later(0.01, connection.on_handshake)
    await connection.wait_ready()
    print(f"ready after {time.perf_counter() - started:.2f} s (the handshake took 0.01 s)")


if __name__ == "__main__":
    asyncio.run(main())
