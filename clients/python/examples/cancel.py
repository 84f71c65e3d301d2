"""Cancel a request mid-stream, two ways: drop the stream, or Abort it by its id.

usage: python cancel.py [ADDR]
"""
import sys
import threading

from tessera_client import Client

addr = sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"
with Client(addr) as client:
    # 1. Cancel the call: the server frees the request's KV at the next step.
    call = client.stream("Count to one thousand:", max_tokens=500, ignore_eos=True)
    for i, event in enumerate(call):
        if i == 5:
            call.cancel()
            break
    print("cancelled the call after 5 events")

    # 2. Abort by request id, from anywhere (here another thread).
    done = threading.Event()
    def watch():
        r = client.generate("Count to one thousand:", max_tokens=500, ignore_eos=True,
                            request_id="count-1")
        print("aborted request finished with", r.finish_reason, "after", len(r.ids), "tokens")
        done.set()
    t = threading.Thread(target=watch)
    t.start()
    while not done.wait(0.2):
        if client.abort("count-1"):
            break
    t.join()
