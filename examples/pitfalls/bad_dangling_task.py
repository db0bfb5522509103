"""LW004: a task nobody keeps a reference to.

The event loop keeps only a weak reference to a task: one that nobody else references can be
garbage-collected while it waits, and nobody awaits it, so its failure is never seen and
shutdown does not wait for it. Here every audit record is lost, silently.
"""

import asyncio

AUDIT_LOG: list[str] = []


async def write_audit_record(request_id: int) -> None:
    await asyncio.sleep(0.01)  # a slow write to some audit store
    AUDIT_LOG.append(f"request {request_id} served")


async def handle(request_id: int) -> str:
    asyncio.create_task(write_audit_record(request_id))  # fire and forget
    return f"response {request_id}"


async def main() -> None:
    responses = [await handle(n) for n in range(3)]
    print(responses)
    # main() returns at once: asyncio.run() cancels the audit tasks nobody waits for.
    print(f"audit records written: {len(AUDIT_LOG)} of {len(responses)}")


if __name__ == "__main__":
    asyncio.run(main())
