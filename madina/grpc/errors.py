"""Every way a request can be wrong ends as ``INVALID_ARGUMENT`` with a short message of ours.

Left to grpc, bytes that are not the method's message, a ``Timestamp`` no ``datetime`` can hold, or
a servicer's ``ValueError`` all come back as ``UNKNOWN`` carrying the Python exception's text. The
:class:`RequestErrorInterceptor` (installed by :class:`~madina.grpc.server.GrpcServer` on every
server, after the auth interceptor, so a caller without a token learns nothing about its request)
closes that for every method of every service:

* a request that does not decode is ``INVALID_ARGUMENT`` naming the message type;
* a unary request is checked by :func:`check_request` (every ``Timestamp`` and ``Duration`` in
  range, every float finite) before the servicer sees it; a streamed request's items are checked
  by the servicer with the same function, since it knows what to do with the items before a bad one;
* :class:`~madina.inputs.InvalidInput` (and the contract's ``InvalidRecord``) raised by a servicer
  becomes ``INVALID_ARGUMENT`` with its message, cut to :data:`MAX_MESSAGE_CHARS`;
* anything else is logged and answered ``INTERNAL`` with no detail.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import Message

from madina.contract import InvalidRecord, check_wire_values
from madina.inputs import InvalidInput

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 300


class _Undecodable:
    """Stands in for a request whose bytes did not parse, so the failure reaches our handler."""

    def __init__(self, type_name: str) -> None:
        self.type_name = type_name


def check_request(message: Any, where: str = "") -> None:
    """InvalidInput if ``message`` did not decode, or holds an out-of-range time or a non-finite float."""
    if isinstance(message, _Undecodable):
        raise InvalidInput(f"{where.rstrip('.') or 'request'}: not a valid {message.type_name} message")
    if isinstance(message, Message):
        try:
            check_wire_values(message, where)
        except InvalidRecord as error:
            raise InvalidInput(str(error)) from None


def _short(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 3] + "..."


class RequestErrorInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], Any], details: grpc.HandlerCallDetails
    ) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        return _guarded(handler, details.method)


_FACTORY = {
    (False, False): grpc.unary_unary_rpc_method_handler,
    (False, True): grpc.unary_stream_rpc_method_handler,
    (True, False): grpc.stream_unary_rpc_method_handler,
    (True, True): grpc.stream_stream_rpc_method_handler,
}


def _guarded(handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
    streaming_request, streaming_response = handler.request_streaming, handler.response_streaming
    behaviour = handler.unary_unary or handler.unary_stream or handler.stream_unary or handler.stream_stream

    async def answer(error: Exception, context: grpc.aio.ServicerContext) -> None:
        if isinstance(error, InvalidInput | InvalidRecord):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _short(str(error)))
        log.exception("unhandled error serving %s", method, exc_info=error)
        await context.abort(grpc.StatusCode.INTERNAL, "internal error")

    def arguments(request: Any) -> Any:
        if streaming_request:
            return _decoded_items(request)
        check_request(request)
        return request

    if streaming_response:

        async def stream(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                async for item in behaviour(arguments(request), context):
                    yield item
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await answer(error, context)

        guarded = stream
    else:

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                return await behaviour(arguments(request), context)
            except grpc.aio.AbortError:
                raise
            except Exception as error:
                await answer(error, context)

        guarded = unary
    return _FACTORY[(streaming_request, streaming_response)](
        guarded,
        request_deserializer=_tolerant(handler.request_deserializer),
        response_serializer=handler.response_serializer,
    )


async def _decoded_items(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    index = 0
    async for request in requests:
        if isinstance(request, _Undecodable):
            check_request(request, f"request[{index}]")
        yield request
        index += 1


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None
    message_type = getattr(deserializer, "__self__", None)
    type_name = getattr(getattr(message_type, "DESCRIPTOR", None), "full_name", "request")

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except Exception:
            return _Undecodable(type_name)

    return deserialize
