#!/usr/bin/env python3
"""gRPC serving end to end: real processes on loopback, real sockets.

usage: rpc_test.py PATH/TO/tessera PATH/TO/mpirun

One `tessera serve` (embedded coordinator and replica) is shared by most tests; the
coordinator tests start `tessera coordinator` with two replicas (`tessera worker`, and
`mpirun -np 3 tessera worker --tp 3`). Expected tokens come from `tessera generate`.
"""
import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from tessera_client import AsyncClient, Client, GenerateError, pb
from tessera.v1 import replica_pb2, replica_pb2_grpc

TESSERA = MPIEXEC = None
MODEL = "smollm2-135m-instruct"
MODELS = os.environ.get("TESSERA_MODELS", os.path.expanduser("~/.cache/tessera/models"))
MODEL_FILE = os.path.join(MODELS, "SmolLM2-135M-Instruct.Q4_1.gguf")
MPI_FLAGS = ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
             "--mca", "btl_vader_single_copy_mechanism", "none"]
ENV = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
           TESSERA_THREADS="1")
MAX_INFLIGHT = 12


class Proc:
    """A server process whose stderr is read on a thread (so it never blocks)."""

    def __init__(self, argv, ready=None):
        self.p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  env=ENV, text=True, start_new_session=True)
        self.lines = []
        self.eof = False  # the reader has seen the end of stderr
        self.cv = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.p.stderr:
            with self.cv:
                self.lines.append(line)
                self.cv.notify_all()
        with self.cv:
            self.eof = True
            self.cv.notify_all()

    def wait_for(self, pattern, timeout=120):
        deadline = time.time() + timeout
        with self.cv:
            while True:
                for line in self.lines:
                    m = re.search(pattern, line)
                    if m:
                        return m
                if self.eof:
                    raise AssertionError(f"exited {self.p.returncode} before /{pattern}/:\n{self.text()}")
                left = deadline - time.time()
                if left <= 0:
                    raise AssertionError(f"no /{pattern}/ in {timeout}s:\n{self.text()}")
                self.cv.wait(min(left, 0.5))

    def text(self):
        return "".join(self.lines)

    def stop(self, timeout=30):
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self.p.stderr.close()
        return self.p.returncode


def serve(*extra):
    proc = Proc([TESSERA, "serve", "-m", MODEL, "--listen", "127.0.0.1:0", *extra])
    addr = proc.wait_for(r"listening on (\S+);").group(1)
    return proc, addr


def generate(prompt, *extra):
    """`tessera generate --json` (the reference for a served request)."""
    p = subprocess.run([TESSERA, "generate", "-m", MODEL, "-p", prompt, "--json", *extra],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


def kv_used(client):
    return sum(r.kv_blocks_used for r in client.model_info().replicas)


def wait_kv_idle(client, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if kv_used(client) == 0:
            return True
        time.sleep(0.05)
    return False


class ServeTest(unittest.TestCase):
    proc = addr = client = None

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.addr = serve("--max-inflight", str(MAX_INFLIGHT), "--max-seqs", "8")
        cls.client = Client(cls.addr)

    @classmethod
    def tearDownClass(cls):
        cls.client.close()
        rc = cls.proc.stop()
        assert rc == 0, f"tessera serve exited {rc}:\n{cls.proc.text()}"

    def assertStatus(self, code, fn, *needles):
        with self.assertRaises(grpc.RpcError) as cm:
            fn()
        self.assertEqual(cm.exception.code(), code, cm.exception.details())
        for n in needles:
            self.assertIn(n, cm.exception.details())
        # A valid request still succeeds.
        self.assertEqual(len(self.client.generate("Hi", max_tokens=2, ignore_eos=True).ids), 2)

    def test_text_chat_and_ids_match_generate(self):
        ref = generate("The capital of France is", "-n", "12")
        r = self.client.generate("The capital of France is", max_tokens=12)
        self.assertEqual(r.ids, ref["ids"])
        self.assertEqual(r.text, ref["text"])
        self.assertEqual(r.finish_reason, ref["finish_reason"])
        self.assertEqual(r.prompt_tokens, len(ref["prompt_ids"]))
        self.assertEqual(r.usage.completion_tokens, len(ref["ids"]))
        self.assertGreater(r.usage.time_to_first_token_s, 0)
        chat = generate("Name a colour.", "--chat", "-n", "10")
        r = self.client.generate(messages=[{"role": "user", "content": "Name a colour."}], max_tokens=10)
        self.assertEqual(r.ids, chat["ids"])
        r = self.client.generate(token_ids=ref["prompt_ids"], max_tokens=12)
        self.assertEqual(r.ids, ref["ids"])

    def test_seeded_sampling_and_logprobs_match_generate(self):
        ref = generate("Once upon a time", "-n", "16", "--temperature", "0.9", "--top-k", "40",
                       "--seed", "7")
        r = self.client.generate("Once upon a time", max_tokens=16, temperature=0.9, top_k=40,
                                 seed=7, logprobs=3)
        self.assertEqual(r.ids, ref["ids"])
        self.assertEqual(len(r.logprobs), len(r.ids))
        for (lp, top), want in zip(r.logprobs, ref["logprobs"]):
            self.assertAlmostEqual(lp, want, places=4)
            self.assertEqual(len(top), 3)
            self.assertGreaterEqual(top[0][1], top[1][1])
            self.assertGreaterEqual(top[0][1], lp - 1e-6)

    def test_stop_string_and_stream_events(self):
        ref = generate("Count: one, two, three,", "-n", "24")
        text = ref["text"]
        self.assertGreater(len(text), 6)
        stop = text[3:6]
        r = self.client.generate("Count: one, two, three,", max_tokens=24, stop=[stop])
        self.assertEqual(r.finish_reason, "stop")
        self.assertEqual(r.stop, stop)
        self.assertEqual(r.text, text[:text.index(stop)])
        kinds = [e.WhichOneof("event") for e in self.client.stream("Hello", max_tokens=4)]
        self.assertEqual(kinds[0], "accepted")
        self.assertEqual(kinds[-1], "finished")
        self.assertEqual(set(kinds[1:-1]), {"tokens"})

    def test_concurrent_requests_are_batched_and_unchanged(self):
        prompts = [f"Tell me about the number {i}." for i in range(8)]
        solo = [self.client.generate(p, max_tokens=16, ignore_eos=True) for p in prompts]
        steps0 = self.client.model_info().replicas[0].steps
        start = time.perf_counter()
        async def run():
            async with AsyncClient(self.addr) as ac:
                return await asyncio.gather(*(ac.generate(p, max_tokens=16, ignore_eos=True)
                                              for p in prompts))
        together = asyncio.run(run())
        elapsed = time.perf_counter() - start
        steps = self.client.model_info().replicas[0].steps - steps0
        for a, b in zip(solo, together):
            self.assertEqual(a.ids, b.ids)
        tokens = sum(len(r.ids) for r in together)
        self.assertEqual(tokens, 8 * 16)
        self.assertLess(steps, tokens / 2, f"{steps} steps for {tokens} tokens: not batched")
        solo_time = sum(r.usage.time_to_first_token_s + 15 * r.usage.time_per_output_token_s
                        for r in solo)
        self.assertLess(elapsed, solo_time, "8 at once took longer than one after another")

    def test_cancel_abort_and_deadline_free_the_kv(self):
        self.assertTrue(wait_kv_idle(self.client))
        # Cancel mid-stream.
        call = self.client.stream("Count to a thousand:", max_tokens=400, ignore_eos=True)
        for i, _ in enumerate(call):
            if i == 3:
                break
        self.assertGreater(kv_used(self.client), 0)
        call.cancel()
        self.assertTrue(wait_kv_idle(self.client), "cancel left KV blocks allocated")
        # Abort by id, from another thread.
        out = {}
        def run():
            out["r"] = self.client.generate("Count to a thousand:", max_tokens=400,
                                            ignore_eos=True, request_id="abort-me")
        t = threading.Thread(target=run)
        t.start()
        deadline = time.time() + 30
        while not self.client.abort("abort-me"):
            self.assertLess(time.time(), deadline)
            time.sleep(0.02)
        t.join(30)
        self.assertEqual(out["r"].finish_reason, "cancelled")
        self.assertLess(len(out["r"].ids), 400)
        self.assertFalse(self.client.abort("abort-me"))
        self.assertTrue(wait_kv_idle(self.client), "Abort left KV blocks allocated")
        # A deadline that passes while running.
        with self.assertRaises(grpc.RpcError) as cm:
            self.client.generate("Count to a thousand:", max_tokens=400, ignore_eos=True, timeout=0.5)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertTrue(wait_kv_idle(self.client), "an expired deadline left KV blocks allocated")

    def test_bad_requests_name_the_field(self):
        c, INVALID = self.client, grpc.StatusCode.INVALID_ARGUMENT
        ctx = c.model_info().context_length
        cases = [
            (lambda: c.generate(""), "text", "empty"),
            (lambda: c.generate("x", max_tokens=0), "max_tokens", "0"),
            (lambda: c.generate("x", max_tokens=ctx), "max_tokens", str(ctx)),
            (lambda: c.generate("x", temperature=-1.0), "sampling.temperature", "-1"),
            (lambda: c.generate("x", top_p=1.5), "sampling.top_p", "1.5"),
            (lambda: c.generate("x", top_p=0.0), "sampling.top_p", "(0, 1]"),
            (lambda: c.generate("x", top_k=-2), "sampling.top_k", "-2"),
            (lambda: c.generate(token_ids=[1, 10 ** 6]), "token_ids.ids[1]", "1000000"),
            (lambda: c.generate(messages=[{"role": "wizard", "content": "hi"}]),
             "chat.messages[0].role", "wizard"),
            (lambda: c.generate(token_ids=[1] * (ctx + 1)), "prompt", str(ctx)),
            (lambda: c.generate("x", stop=[""]), "stop[0]", "empty"),
            (lambda: c.generate("x", logprobs=99), "logprobs", "99"),
        ]
        for fn, *needles in cases:
            with self.subTest(needles=needles):
                self.assertStatus(INVALID, fn, *needles)
        # Invalid UTF-8 in a string field: sent as raw bytes (the Python runtime refuses to
        # serialise it), the server's parser refuses the message.
        raw = grpc.insecure_channel(self.addr).unary_stream(
            "/tessera.v1.Inference/Generate", request_serializer=lambda b: b,
            response_deserializer=pb.GenerateEvent.FromString)
        self.assertStatus(INVALID, lambda: list(raw(b"\x12\x02\xff\xfe")),  # field 2 (text) = ff fe
                          "tessera.v1.GenerateRequest.text", "UTF-8")
        self.assertStatus(grpc.StatusCode.NOT_FOUND, lambda: c.generate("x", model="nope"), "nope")
        self.assertStatus(grpc.StatusCode.RESOURCE_EXHAUSTED, lambda: c.generate("x" * (5 << 20)))

    def test_overload_refuses_at_once_and_completes_the_rest(self):
        n = 4 * MAX_INFLIGHT
        async def one(ac, i):
            try:
                r = await ac.generate(f"Request {i}:", max_tokens=8, ignore_eos=True)
                return len(r.ids)
            except grpc.aio.AioRpcError as e:
                return e.code()
        async def run():
            async with AsyncClient(self.addr) as ac:
                return await asyncio.wait_for(asyncio.gather(*(one(ac, i) for i in range(n))), 300)
        results = asyncio.run(run())
        done = [r for r in results if r == 8]
        refused = [r for r in results if r == grpc.StatusCode.RESOURCE_EXHAUSTED]
        self.assertEqual(len(done) + len(refused), n, results)
        self.assertGreaterEqual(len(done), MAX_INFLIGHT)
        self.assertGreater(len(refused), 0)

    def test_reflection_health_tokenize_and_cpp_client(self):
        channel = grpc.insecure_channel(self.addr)
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
        services = {s.name for s in reply.list_services_response.service}
        self.assertTrue({"tessera.v1.Inference", "grpc.health.v1.Health"} <= services, services)
        health = health_pb2_grpc.HealthStub(channel)
        for service in ["", "SmolLM2-135M-Instruct.Q4_1"]:
            status = health.Check(health_pb2.HealthCheckRequest(service=service)).status
            self.assertEqual(status, health_pb2.HealthCheckResponse.SERVING)
        ids = self.client.tokenize("Hello world")
        self.assertEqual(self.client.detokenize(ids), "Hello world")
        self.assertEqual(self.client.models(), ["SmolLM2-135M-Instruct.Q4_1"])
        ref = generate("The sky is", "-n", "8")
        p = subprocess.run([TESSERA, "client", "generate", "--server", self.addr, "-p", "The sky is",
                            "-n", "8", "--json"], capture_output=True, text=True, timeout=120)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(json.loads(p.stdout)["ids"], ref["ids"])
        p = subprocess.run([TESSERA, "client", "health", "--server", self.addr],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "SERVING"))
        p = subprocess.run([TESSERA, "client", "generate", "--server", self.addr, "-p", "x",
                            "--top-p", "2"], capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 1)
        self.assertIn("sampling.top_p", p.stderr)


class QueueDeadlineTest(unittest.TestCase):
    def test_a_request_expiring_in_the_queue_never_reaches_prefill(self):
        proc, addr = serve("--max-seqs", "1")
        try:
            with Client(addr) as c:
                busy = c.stream("Count to a thousand:", max_tokens=300, ignore_eos=True)
                next(iter(busy))  # accepted: it holds the only sequence slot
                self.assertEqual(c.model_info().replicas[0].expired_in_queue, 0)
                start = time.time()
                with self.assertRaises(grpc.RpcError) as cm:
                    c.generate("Hello", max_tokens=4, timeout=0.3)
                self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
                self.assertLess(time.time() - start, 5)
                deadline = time.time() + 10
                while c.model_info().replicas[0].expired_in_queue != 1:
                    self.assertLess(time.time(), deadline, "the queued request was not dropped")
                    time.sleep(0.05)
                busy.cancel()
                self.assertTrue(wait_kv_idle(c))
        finally:
            self.assertEqual(proc.stop(), 0, proc.text())


class CoordinatorTest(unittest.TestCase):
    def test_two_replicas_share_the_load_and_match_generate(self):
        coord = Proc([TESSERA, "coordinator", "-m", MODEL, "--listen", "127.0.0.1:0"])
        procs = [coord]
        try:
            addr = coord.wait_for(r"listening on (\S+);").group(1)
            procs.append(Proc([TESSERA, "worker", "-m", MODEL, "--coordinator", addr]))
            # SmolLM2's 9 heads split over 3 ranks (not 2).
            procs.append(Proc([MPIEXEC, "-np", "3", *MPI_FLAGS, TESSERA, "worker", "-m", MODEL,
                               "--tp", "3", "--coordinator", addr]))
            for p in procs[1:]:
                p.wait_for(r"registered as")
            with Client(addr) as c:
                self.assertEqual(len(c.model_info().replicas), 2)
                prompts = [f"Say something about {w}." for w in
                           ["cats", "dogs", "rain", "tea", "maps", "ice", "salt", "wind"]]
                refs = {p: generate(p, "-n", "12") for p in prompts[:3]}
                # 32 at once: text, chat and token ids from the Python client, text from the
                # C++ client.
                inputs = [dict(prompt=p) for p in prompts] + \
                         [dict(messages=[{"role": "user", "content": p}]) for p in prompts] + \
                         [dict(token_ids=refs[prompts[i % 3]]["prompt_ids"]) for i in range(8)]
                def cpp(p):
                    r = subprocess.run([TESSERA, "client", "generate", "--server", addr, "-p", p,
                                        "-n", "12", "--json"], capture_output=True, text=True,
                                       timeout=300)
                    self.assertEqual(r.returncode, 0, r.stderr)
                    return json.loads(r.stdout)
                with concurrent.futures.ThreadPoolExecutor(32) as ex:
                    from_cpp = [ex.submit(cpp, p) for p in prompts]
                    results = list(ex.map(lambda kw: c.generate(max_tokens=12, **kw), inputs))
                    from_cpp = [f.result() for f in from_cpp]
                replicas = {r.replica.split("@")[0] for r in results} | \
                           {r["replica"].split("@")[0] for r in from_cpp}
                self.assertEqual(replicas, {"replica-1", "replica-2"})
                for i, p in enumerate(prompts[:3]):
                    self.assertEqual(results[i].ids, refs[p]["ids"])
                    self.assertEqual(from_cpp[i]["ids"], refs[p]["ids"])
                for i in range(8):
                    self.assertEqual(results[16 + i].ids, refs[prompts[i % 3]]["ids"])
                self.assertGreater(len({tuple(r.ids) for r in results[8:16]}), 1)
                # The same request gives the same tokens on either replica (tp 1 and tp 2).
                by_replica = {}
                for i in range(6):
                    r = c.generate(prompts[0], max_tokens=12, session_key=f"s{i}")
                    by_replica.setdefault(r.replica, r.ids)
                    self.assertEqual(r.ids, refs[prompts[0]]["ids"])
                self.assertEqual(len(by_replica), 2)  # one at a time: ties alternate
                # A session key pins a session to one replica.
                seen = {c.generate("Hi", max_tokens=2, session_key="pinned").replica for _ in range(4)}
                self.assertEqual(len(seen), 1)
                # A worker whose stream drops is removed from routing.
                procs[1].stop()
                deadline = time.time() + 20
                while len(c.model_info().replicas) != 1:
                    self.assertLess(time.time(), deadline)
                    time.sleep(0.1)
                self.assertEqual(len(c.generate("Hi", max_tokens=3, ignore_eos=True).ids), 3)
        finally:
            for p in reversed(procs):
                p.stop()

    def test_protocol_version_and_model_identity_are_checked(self):
        coord = Proc([TESSERA, "coordinator", "-m", MODEL, "--listen", "127.0.0.1:0"])
        try:
            addr = coord.wait_for(r"listening on (\S+);").group(1)
            checksum = coord.wait_for(r"checksum (\w+)\)").group(1)
            stub = replica_pb2_grpc.ReplicaStub(grpc.insecure_channel(addr))
            base = dict(model_name="SmolLM2-135M-Instruct.Q4_1", model_checksum=checksum,
                        architecture="llama", context_length=8192, vocab_size=49152,
                        tensor_parallel=1, expert_parallel=1, kv_blocks=16, block_size=16,
                        max_seqs=4, max_batch_tokens=64)
            def register(**kw):
                msg = replica_pb2.WorkerMessage(register=replica_pb2.Register(**{**base, **kw}))
                call = stub.Connect(iter([msg]))
                with self.assertRaises(grpc.RpcError) as cm:
                    for _ in call:
                        pass
                return cm.exception
            e = register(protocol_version=99)
            self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("protocol version 99", e.details())
            e = register(protocol_version=1, model_checksum="00000000")
            self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
            self.assertIn("another model under the same name", e.details())
            # A real worker with other files under the same name is refused too.
            with tempfile.TemporaryDirectory() as tmp:
                other = os.path.join(tmp, "SmolLM2-135M-Instruct.Q4_1.gguf")
                shutil.copy(MODEL_FILE, other)
                with open(other, "r+b") as f:  # a different tail: a different checksum
                    f.seek(-1, os.SEEK_END)
                    last = f.read(1)
                    f.seek(-1, os.SEEK_END)
                    f.write(bytes([last[0] ^ 1]))
                w = Proc([TESSERA, "worker", "-m", other, "--coordinator", addr])
                w.wait_for(r"another model under the same name")
                self.assertNotEqual(w.p.wait(60), 0)
                w.stop()
        finally:
            coord.stop()


if __name__ == "__main__":
    TESSERA, MPIEXEC = sys.argv[1], sys.argv[2]
    unittest.main(argv=sys.argv[:1], verbosity=2)
