"""Client of Tessera's tessera.v1.Inference gRPC API (sync and asyncio).

Client(address).generate(...) returns a Result (ids, text, finish_reason, usage, ...);
Client.stream(...) yields GenerateEvent messages as they arrive; chat_stream(...) yields
text pieces. AsyncClient has the same methods for asyncio. Every keyword argument maps to a
GenerateRequest field; unset ones are left unset, so the server's defaults apply.
"""
import dataclasses
import os
import sys
from typing import Any, AsyncIterator, Iterable, Iterator, Optional

import grpc

_PROTO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_proto")
if not os.path.isdir(os.path.join(_PROTO, "tessera")):
    raise ImportError(f"tessera_client: no generated stubs in {_PROTO}; run deploy/setup.sh")
if _PROTO not in sys.path:
    sys.path.insert(0, _PROTO)

from tessera.v1 import inference_pb2 as pb  # noqa: E402
from tessera.v1 import inference_pb2_grpc as pb_grpc  # noqa: E402

__all__ = ["AsyncClient", "Client", "GenerateError", "Result", "pb"]

_SAMPLING = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "seed")


class GenerateError(Exception):
    """A request failed after it was accepted (the stream's in-band error event)."""

    def __init__(self, code: int, message: str, retryable: bool):
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.retryable = code, message, retryable


@dataclasses.dataclass
class Result:
    request_id: str = ""
    replica: str = ""
    prompt_tokens: int = 0
    ids: list = dataclasses.field(default_factory=list)
    text: str = ""
    logprobs: list = dataclasses.field(default_factory=list)
    finish_reason: str = ""
    stop: Any = None
    usage: Any = None


def make_request(prompt=None, *, messages=None, token_ids=None, model="", max_tokens=None,
                 stop=(), stop_token_ids=(), logprobs=None, ignore_eos=False, request_id="",
                 session_key="", **sampling) -> pb.GenerateRequest:
    """A GenerateRequest from exactly one of prompt (text), messages ([{"role", "content"}])
    and token_ids, and the optional fields; unknown keywords are an error."""
    unknown = set(sampling) - set(_SAMPLING)
    if unknown:
        raise TypeError(f"unknown arguments: {sorted(unknown)}")
    r = pb.GenerateRequest(model=model, stop=list(stop), stop_token_ids=list(stop_token_ids),
                           ignore_eos=ignore_eos, request_id=request_id, session_key=session_key)
    given = [x is not None for x in (prompt, messages, token_ids)]
    if sum(given) != 1:
        raise TypeError("give exactly one of prompt, messages and token_ids")
    if prompt is not None:
        r.text = prompt
    elif messages is not None:
        r.chat.messages.extend(pb.ChatMessage(role=m["role"], content=m["content"]) for m in messages)
    else:
        r.token_ids.ids.extend(token_ids)
    if max_tokens is not None:
        r.max_tokens = max_tokens
    if logprobs is not None:
        r.logprobs = logprobs
    for k, v in sampling.items():
        if v is not None:
            setattr(r.sampling, k, v)
    return r


def _fold(result: Result, event: pb.GenerateEvent) -> None:
    kind = event.WhichOneof("event")
    if kind == "accepted":
        a = event.accepted
        result.request_id, result.replica, result.prompt_tokens = a.request_id, a.replica, a.prompt_tokens
    elif kind == "tokens":
        result.ids.extend(event.tokens.ids)
        result.text += event.tokens.text
        for lp in event.tokens.logprobs:
            result.logprobs.append((lp.logprob, [(t.id, t.logprob) for t in lp.top]))
    elif kind == "finished":
        f = event.finished
        result.finish_reason = f.reason
        which = f.WhichOneof("matched")
        result.stop = getattr(f, which) if which else None
        result.usage = f.usage
        if f.HasField("error"):
            raise GenerateError(f.error.code, f.error.message, f.error.retryable)


class Client:
    """A synchronous client. `timeout` (seconds) becomes each call's gRPC deadline."""

    def __init__(self, address: str = "127.0.0.1:50051", channel: Optional[grpc.Channel] = None):
        self.channel = channel or grpc.insecure_channel(address)
        self.stub = pb_grpc.InferenceStub(self.channel)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self.channel.close()

    def stream(self, prompt=None, *, timeout: Optional[float] = None, **kw) -> Iterator[pb.GenerateEvent]:
        """The request's events as they arrive. Cancel by calling .cancel() on the returned
        iterator (a grpc call object) or by leaving the loop and dropping it."""
        return self.stub.Generate(make_request(prompt, **kw), timeout=timeout)

    def generate(self, prompt=None, *, timeout: Optional[float] = None, **kw) -> Result:
        result = Result()
        for event in self.stream(prompt, timeout=timeout, **kw):
            _fold(result, event)
        return result

    def chat_stream(self, messages: Iterable[dict], *, timeout: Optional[float] = None, **kw) -> Iterator[str]:
        for event in self.stream(messages=list(messages), timeout=timeout, **kw):
            if event.WhichOneof("event") == "tokens" and event.tokens.text:
                yield event.tokens.text
            _fold(Result(), event)  # raises GenerateError on an in-band error

    def abort(self, request_id: str) -> bool:
        return self.stub.Abort(pb.AbortRequest(request_id=request_id)).found

    def tokenize(self, text: str, model: str = "") -> list:
        return list(self.stub.Tokenize(pb.TokenizeRequest(model=model, text=text)).ids)

    def detokenize(self, ids, model: str = "") -> str:
        return self.stub.Detokenize(pb.DetokenizeRequest(model=model, ids=list(ids))).text

    def models(self) -> list:
        return list(self.stub.ListModels(pb.ListModelsRequest()).models)

    def model_info(self, model: str = "") -> pb.ModelInfoResponse:
        return self.stub.ModelInfo(pb.ModelInfoRequest(model=model))


class AsyncClient:
    """The asyncio client: the same methods as Client, as coroutines and async iterators."""

    def __init__(self, address: str = "127.0.0.1:50051"):
        self.channel = grpc.aio.insecure_channel(address)
        self.stub = pb_grpc.InferenceStub(self.channel)

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    def stream(self, prompt=None, *, timeout: Optional[float] = None, **kw):
        """An async iterator of the request's events (a grpc.aio call: .cancel() ends it)."""
        return self.stub.Generate(make_request(prompt, **kw), timeout=timeout)

    async def generate(self, prompt=None, *, timeout: Optional[float] = None, **kw) -> Result:
        result = Result()
        async for event in self.stream(prompt, timeout=timeout, **kw):
            _fold(result, event)
        return result

    async def chat_stream(self, messages, *, timeout: Optional[float] = None, **kw) -> AsyncIterator[str]:
        async for event in self.stream(messages=list(messages), timeout=timeout, **kw):
            if event.WhichOneof("event") == "tokens" and event.tokens.text:
                yield event.tokens.text
            _fold(Result(), event)

    async def abort(self, request_id: str) -> bool:
        return (await self.stub.Abort(pb.AbortRequest(request_id=request_id))).found

    async def model_info(self, model: str = "") -> pb.ModelInfoResponse:
        return await self.stub.ModelInfo(pb.ModelInfoRequest(model=model))
