"""LW016 fixed: an `asyncio.Lock` suspends the waiting task, not the loop's thread."""

import asyncio
import threading


class Store:
    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.saved: list[str] = []

    async def save(self, item: str) -> None:
        async with self._lock:
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
    worker.join(timeout=5)
    state = "deadlocked" if worker.is_alive() else "finished"
    print(f"event loop {state} after saving {store.saved}")
