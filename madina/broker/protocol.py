"""Kafka wire framing: request headers, the table of supported APIs, response encoding.

Requests and responses are decoded and encoded with kafka-python's own message classes
(``kafka.protocol``), which carry Kafka's JSON schemas for every version, flexible ones
included. That is why ``kafka-python`` is pinned exactly: its internals are our codec.

Only the fixed part of the request header is parsed by hand, because it has to be read
before we know whether the body is a version we decode at all.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from kafka.protocol.admin import (
    AlterConfigsRequest,
    AlterConfigsResponse,
    AlterPartitionReassignmentsRequest,
    AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsRequest,
    AlterReplicaLogDirsResponse,
    AlterUserScramCredentialsRequest,
    AlterUserScramCredentialsResponse,
    CreateAclsRequest,
    CreateAclsResponse,
    CreatePartitionsRequest,
    CreatePartitionsResponse,
    CreateTopicsRequest,
    CreateTopicsResponse,
    DeleteAclsRequest,
    DeleteAclsResponse,
    DeleteGroupsRequest,
    DeleteGroupsResponse,
    DeleteRecordsRequest,
    DeleteRecordsResponse,
    DeleteTopicsRequest,
    DeleteTopicsResponse,
    DescribeAclsRequest,
    DescribeAclsResponse,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
    DescribeGroupsRequest,
    DescribeGroupsResponse,
    DescribeLogDirsRequest,
    DescribeLogDirsResponse,
    DescribeProducersRequest,
    DescribeProducersResponse,
    DescribeTransactionsRequest,
    DescribeTransactionsResponse,
    DescribeUserScramCredentialsRequest,
    DescribeUserScramCredentialsResponse,
    ElectLeadersRequest,
    ElectLeadersResponse,
    IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
    ListGroupsRequest,
    ListGroupsResponse,
    ListPartitionReassignmentsRequest,
    ListPartitionReassignmentsResponse,
    ListTransactionsRequest,
    ListTransactionsResponse,
)
from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    LeaveGroupRequest,
    LeaveGroupResponse,
    ListOffsetsRequest,
    ListOffsetsResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    OffsetFetchRequest,
    OffsetFetchResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import (
    AddOffsetsToTxnRequest,
    AddOffsetsToTxnResponse,
    AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse,
    EndTxnRequest,
    EndTxnResponse,
    InitProducerIdRequest,
    InitProducerIdResponse,
    ProduceRequest,
    ProduceResponse,
    TxnOffsetCommitRequest,
    TxnOffsetCommitResponse,
)

API_VERSIONS_KEY = 18
PRODUCE_KEY = 0
FETCH_KEY = 1

_FIXED_HEADER = struct.Struct(">hhi")
_INT16 = struct.Struct(">h")
_FRAME_AND_CORRELATION = struct.Struct(">ii")


class MalformedRequest(ValueError):
    """A frame that cannot be a Kafka request; the connection that sent it is closed."""


@dataclass(frozen=True)
class ApiSpec:
    key: int
    name: str
    request_class: Any
    response_class: Any
    min_version: int
    max_version: int

    def request_is_flexible(self, version: int) -> bool:
        return self.request_class.flexible_version_q(version)

    def response_header_is_flexible(self, version: int) -> bool:
        # ApiVersions answers with header v0 whatever its version, so that a client that
        # does not know the broker yet can always read the correlation id.
        return self.key != API_VERSIONS_KEY and self.response_class.flexible_version_q(version)


def _spec(request_class, response_class, min_version: int, max_version: int) -> ApiSpec:
    return ApiSpec(
        request_class.API_KEY, request_class.name, request_class, response_class, min_version, max_version
    )


# The Kafka release whose API version ceilings the broker advertises. Clients infer the
# broker's release from these ceilings (kafka-python, librdkafka's feature detection), so
# every maximum below is that release's, for the APIs it answers: Fetch 12 (no topic ids,
# which 3.1 brings), ListOffsets 7 (max timestamp, KIP-734), FindCoordinator 4 (batched keys)
# and OffsetFetch 8 (batched groups). Raising one means moving the whole table to a newer
# release and implementing what each newer version adds.
KAFKA_RELEASE = "3.0.0"
SUPPORTED_APIS: dict[int, ApiSpec] = {
    spec.key: spec
    for spec in (
        _spec(ProduceRequest, ProduceResponse, 3, 9),
        _spec(FetchRequest, FetchResponse, 4, 12),
        _spec(ListOffsetsRequest, ListOffsetsResponse, 1, 7),
        _spec(MetadataRequest, MetadataResponse, 0, 11),
        _spec(OffsetCommitRequest, OffsetCommitResponse, 0, 8),
        _spec(OffsetFetchRequest, OffsetFetchResponse, 1, 8),
        _spec(FindCoordinatorRequest, FindCoordinatorResponse, 0, 4),
        _spec(JoinGroupRequest, JoinGroupResponse, 0, 7),
        _spec(HeartbeatRequest, HeartbeatResponse, 0, 4),
        _spec(LeaveGroupRequest, LeaveGroupResponse, 0, 4),
        _spec(SyncGroupRequest, SyncGroupResponse, 0, 5),
        _spec(DescribeGroupsRequest, DescribeGroupsResponse, 0, 5),
        _spec(ListGroupsRequest, ListGroupsResponse, 0, 4),
        _spec(ApiVersionsRequest, ApiVersionsResponse, 0, 3),
        _spec(CreateTopicsRequest, CreateTopicsResponse, 0, 7),
        _spec(DeleteTopicsRequest, DeleteTopicsResponse, 0, 6),
        _spec(DeleteRecordsRequest, DeleteRecordsResponse, 0, 2),
        _spec(InitProducerIdRequest, InitProducerIdResponse, 0, 4),
        _spec(AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, 0, 3),
        _spec(AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, 0, 3),
        _spec(EndTxnRequest, EndTxnResponse, 0, 3),
        _spec(TxnOffsetCommitRequest, TxnOffsetCommitResponse, 0, 3),
        _spec(DescribeAclsRequest, DescribeAclsResponse, 1, 2),
        _spec(CreateAclsRequest, CreateAclsResponse, 1, 2),
        _spec(DeleteAclsRequest, DeleteAclsResponse, 1, 2),
        _spec(DescribeConfigsRequest, DescribeConfigsResponse, 0, 4),
        _spec(AlterConfigsRequest, AlterConfigsResponse, 0, 2),
        _spec(AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse, 1, 2),
        _spec(DescribeLogDirsRequest, DescribeLogDirsResponse, 1, 2),
        _spec(CreatePartitionsRequest, CreatePartitionsResponse, 0, 3),
        _spec(DeleteGroupsRequest, DeleteGroupsResponse, 0, 2),
        _spec(ElectLeadersRequest, ElectLeadersResponse, 0, 2),
        _spec(IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, 0, 1),
        _spec(AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, 0, 0),
        _spec(ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, 0, 0),
        _spec(DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse, 0, 0),
        _spec(AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, 0, 0),
        _spec(DescribeProducersRequest, DescribeProducersResponse, 0, 0),
        _spec(DescribeTransactionsRequest, DescribeTransactionsResponse, 0, 0),
        _spec(ListTransactionsRequest, ListTransactionsResponse, 0, 0),
    )
}


@dataclass(slots=True)
class RequestHeader:
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    body_offset: int


def peek_header(frame: bytes | bytearray) -> tuple[int, int, int]:
    """``(api key, api version, correlation id)``, readable even for APIs we do not know."""
    if len(frame) < _FIXED_HEADER.size:
        raise MalformedRequest(f"frame of {len(frame)} bytes is shorter than a request header")
    return _FIXED_HEADER.unpack_from(frame, 0)


def _read_unsigned_varint(frame: bytes | bytearray, position: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if position >= len(frame):
            raise MalformedRequest("truncated varint in request header")
        byte = frame[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 28:
            raise MalformedRequest("varint too long in request header")


def parse_header(frame: bytes | bytearray, flexible: bool) -> RequestHeader:
    """Request header v1 (v2 when ``flexible``: the same plus tagged fields)."""
    api_key, api_version, correlation_id = peek_header(frame)
    if len(frame) < 10:
        raise MalformedRequest("request header ends before the client id")
    (client_id_length,) = _INT16.unpack_from(frame, 8)
    position = 10
    client_id = None
    if client_id_length >= 0:
        if position + client_id_length > len(frame):
            raise MalformedRequest("client id runs past the end of the frame")
        client_id = frame[position : position + client_id_length].decode("utf-8", "replace")
        position += client_id_length
    elif client_id_length != -1:
        raise MalformedRequest(f"negative client id length {client_id_length}")
    if flexible:
        tag_count, position = _read_unsigned_varint(frame, position)
        for _ in range(tag_count):
            _tag, position = _read_unsigned_varint(frame, position)
            size, position = _read_unsigned_varint(frame, position)
            position += size
        if position > len(frame):
            raise MalformedRequest("tagged fields run past the end of the frame")
    return RequestHeader(api_key, api_version, correlation_id, client_id, position)


def decode_body(spec: ApiSpec, header: RequestHeader, frame: bytes | bytearray):
    return spec.request_class.decode(memoryview(frame)[header.body_offset :], version=header.api_version)


def frame_response(correlation_id: int, flexible_header: bool, body) -> bytes:
    extra = 1 if flexible_header else 0
    prefix = _FRAME_AND_CORRELATION.pack(4 + extra + len(body), correlation_id)
    if flexible_header:
        return b"".join((prefix, b"\x00", body))
    return b"".join((prefix, body))


def encode_response(spec: ApiSpec, version: int, correlation_id: int, response) -> bytes:
    body = response.encode(version=version)
    return frame_response(correlation_id, spec.response_header_is_flexible(version), body)


def api_versions_body(error_code: int, version: int) -> bytes:
    """The ApiVersions answer; on UNSUPPORTED_VERSION it is a v0 body, as KIP-511 requires."""
    keys = [
        ApiVersionsResponse.ApiVersion(
            api_key=spec.key, min_version=spec.min_version, max_version=spec.max_version
        )
        for spec in sorted(SUPPORTED_APIS.values(), key=lambda spec: spec.key)
    ]
    response = ApiVersionsResponse(error_code=error_code, api_keys=keys, throttle_time_ms=0)
    return response.encode(version=version)
