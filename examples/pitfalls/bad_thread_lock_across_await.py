"""LW016: a threading lock held across an `await` deadlocks the event loop.

`save()` holds a `threading.Lock` while it awaits. The second task then tries to take the
lock: `threading.Lock` blocks the whole thread, which is the loop's thread, so the first task
is never resumed to release it. The loop runs in a worker thread here so that the program
can report the deadlock and exit instead of hanging.
"""

import asyncio
import threading


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.saved: list[str] = []

    async def save(self, item: str) -> None:
        with self._lock:
            await asyncio.sleep(0.01)  # the write
            self.saved.append(item)


async def main(store: Store) -> None:
    await asyncio.gather(store.save("a"), store.save("b"))


def run_loop(store: Store) -> None:
    asyncio.run(main(store))


if __name__ == "__main__":
    store = Store()
    worker = threading.Thread(target=run_loop, args=(store,), daemon=True)
    worker.start()
    worker.join(timeout=1)
    state = "deadlocked" if worker.is_alive() else "finished"
    print(f"event loop {state} after saving {store.saved}")
