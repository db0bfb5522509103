"""LW014: polling a flag that the program sets itself.

The handshake completes after 10 ms, but `wait_ready()` only looks every 200 ms, so every
caller waits up to 20 times longer than needed (and a shorter interval burns CPU instead).
The program knows the moment it sets `ready`: an `asyncio.Event` would wake the waiter then.
"""

import asyncio
import time


class Connection:
    def __init__(self) -> None:
        self.ready = False

    def on_handshake(self) -> None:
        self.ready = True

    async def wait_ready(self) -> None:
        while not self.ready:
            await asyncio.sleep(0.2)


async def main() -> None:
    connection = Connection()
    started = time.perf_counter()
    asyncio.get_running_loop().call_later(0.01, connection.on_handshake)
    await connection.wait_ready()
    print(f"ready after {time.perf_counter() - started:.2f} s (the handshake took 0.01 s)")


if __name__ == "__main__":
    asyncio.run(main())
