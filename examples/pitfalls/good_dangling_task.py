"""LW004, fixed: keep a reference to every background task until it is done.

A set holds the tasks; each removes itself when it finishes. On shutdown the program waits
for what is still running, and a failure surfaces instead of vanishing. (An `asyncio.TaskGroup`
does the same when the tasks must finish within one block.)
"""

import asyncio

AUDIT_LOG: list[str] = []
BACKGROUND_TASKS: set[asyncio.Task[None]] = set()


async def write_audit_record(request_id: int) -> None:
    await asyncio.sleep(0.01)  # a slow write to some audit store
    AUDIT_LOG.append(f"request {request_id} served")


async def handle(request_id: int) -> str:
    task = asyncio.create_task(write_audit_record(request_id))
    BACKGROUND_TASKS.add(task)
    task.add_done_callback(BACKGROUND_TASKS.discard)
    return f"response {request_id}"


async def main() -> None:
    responses = [await handle(n) for n in range(3)]
    print(responses)
    await asyncio.gather(*BACKGROUND_TASKS)  # shutdown: let the background work finish
    print(f"audit records written: {len(AUDIT_LOG)} of {len(responses)}")


if __name__ == "__main__":
    asyncio.run(main())
