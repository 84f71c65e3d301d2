"""A deadline is scheduling input: past it, the server drops the request (queued ones
never reach prefill) and the call fails with DEADLINE_EXCEEDED.

usage: python deadline.py [ADDR]
"""
import sys

import grpc

from tessera_client import Client

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
with Client(addr) as client:
    try:
        client.generate("Tell me a long story.", max_tokens=400, ignore_eos=True, timeout=0.5)
    except grpc.RpcError as e:
        print("status:", e.code().name, "-", e.details())
