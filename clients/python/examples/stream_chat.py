"""Stream a chat answer as it is generated.

usage: python stream_chat.py [ADDR] [MESSAGE]
"""
import sys

from tessera_client import Client

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
message = sys.argv[2] if len(sys.argv) > 2 else "What is the capital of France?"
with Client(addr) as client:
    for piece in client.chat_stream([{"role": "user", "content": message}], max_tokens=64):
        print(piece, end="", flush=True)
    print()
