"""LW003: starting an event loop from inside a coroutine.

`load_settings()` is sync code that calls `asyncio.run()`. Called from a coroutine it raises
"asyncio.run() cannot be called from a running event loop" — or, with `run_until_complete`
on another loop, freezes every other task until it returns.
"""

import asyncio


async def fetch_settings() -> dict[str, int]:
    await asyncio.sleep(0.01)
    return {"workers": 4}


def load_settings() -> dict[str, int]:
    return asyncio.run(fetch_settings())


async def main() -> None:
    try:
        settings = load_settings()
    except RuntimeError as exc:
        print(f"failed: {exc}")
    else:
        print(settings)


if __name__ == "__main__":
    asyncio.run(main())
