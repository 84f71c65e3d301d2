"""Many requests at once with asyncio: the server batches them into the same steps.

usage: python many_requests.py [ADDR] [N]
"""
import asyncio
import sys
import time

from tessera_client import AsyncClient


async def main(addr: str, n: int) -> None:
    async with AsyncClient(addr) as client:
        start = time.perf_counter()
        results = await asyncio.gather(*(
            client.generate(f"Write a sentence about the number {i}.", max_tokens=32,
                            temperature=0.7, seed=i)
            for i in range(n)))
        elapsed = time.perf_counter() - start
        tokens = sum(len(r.ids) for r in results)
        for r in results[:3]:
            print(repr(r.text[:60]), r.finish_reason)
        print(f"{n} requests, {tokens} tokens in {elapsed:.2f} s ({tokens / elapsed:.1f} tok/s)")


asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051",
                 int(sys.argv[2]) if len(sys.argv) > 2 else 8))
