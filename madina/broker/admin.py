"""Admin APIs beyond topics and groups: configs, DeleteRecords, log dirs, and the cluster
features a single node without security does not have.

Those features are answered the way Apache Kafka answers them when they are off, with an
error code rather than a dropped connection:

- ACLs (Describe/Create/DeleteAcls): SECURITY_DISABLED, as Kafka without an authorizer;
- SCRAM credentials: none exist to describe, and storing some is refused with
  UNSUPPORTED_SASL_MECHANISM, because no listener of this broker speaks SASL;
- replica placement (ElectLeaders, partition reassignments, AlterReplicaLogDirs): node 0
  leads every partition from its one log directory, so elections are not needed and the
  only placement accepted is the current one.
"""

from __future__ import annotations

import os

from kafka.protocol.admin import (
    AlterConfigsResponse,
    AlterPartitionReassignmentsResponse,
    AlterReplicaLogDirsResponse,
    AlterUserScramCredentialsResponse,
    CreateAclsResponse,
    DeleteAclsResponse,
    DeleteRecordsResponse,
    DescribeAclsResponse,
    DescribeLogDirsResponse,
    DescribeUserScramCredentialsResponse,
    ElectLeadersResponse,
    IncrementalAlterConfigsResponse,
    ListPartitionReassignmentsResponse,
)

from madina.broker import errors
from madina.broker.store import LogStore
from madina.broker.topic_configs import validate_topic_configs

SECURITY_DISABLED = 54
UNSUPPORTED_SASL_MECHANISM = 33
INVALID_REPLICA_ASSIGNMENT = 39
LOG_DIR_NOT_FOUND = 57
ELECTION_NOT_NEEDED = 84
NO_REASSIGNMENT_IN_PROGRESS = 85
RESOURCE_NOT_FOUND = 91
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4
NODE_ID = 0
NO_AUTHORIZER = "No Authorizer is configured on the broker"
# IncrementalAlterConfigs operations
CONFIG_SET, CONFIG_DELETE, CONFIG_APPEND, CONFIG_SUBTRACT = 0, 1, 2, 3


class AdminApis:
    """Mixed into ``Handlers``: the admin handlers that need only the log store."""

    store: LogStore

    def log_dir(self) -> str:
        data_dir = self.store.data_dir
        return str(data_dir.resolve()) if data_dir is not None else "(memory)"

    # ---- records ------------------------------------------------------------------------
    def delete_records(self, request, ctx):
        topics = []
        for topic in request.topics:
            results = []
            for wanted in topic.partitions:
                partition = self.store.partition(topic.name, wanted.partition_index)
                error, low_watermark = errors.NONE, -1
                if partition is None:
                    error = errors.UNKNOWN_TOPIC_OR_PARTITION
                elif wanted.offset == -1 or partition.log_start_offset <= wanted.offset <= partition.next_offset:
                    target = partition.next_offset if wanted.offset == -1 else wanted.offset
                    low_watermark = partition.delete_records_before(target)
                elif wanted.offset > partition.next_offset or wanted.offset < -1:
                    error = errors.OFFSET_OUT_OF_RANGE
                else:
                    low_watermark = partition.log_start_offset  # already deleted further
                results.append(
                    DeleteRecordsResponse.DeleteRecordsTopicResult.DeleteRecordsPartitionResult(
                        partition_index=wanted.partition_index, low_watermark=low_watermark, error_code=error
                    )
                )
            topics.append(DeleteRecordsResponse.DeleteRecordsTopicResult(name=topic.name, partitions=results))
        return DeleteRecordsResponse(throttle_time_ms=0, topics=topics)

    # ---- configs ------------------------------------------------------------------------
    def alter_configs(self, request, ctx):
        responses = []
        for resource in request.resources:
            wanted = {entry.name: entry.value for entry in resource.configs}
            error, message = self._set_topic_configs(
                resource.resource_type, resource.resource_name, lambda _current, wanted=wanted: dict(wanted),
                request.validate_only,
            )
            responses.append(
                AlterConfigsResponse.AlterConfigsResourceResponse(
                    error_code=error,
                    error_message=message,
                    resource_type=resource.resource_type,
                    resource_name=resource.resource_name,
                )
            )
        return AlterConfigsResponse(throttle_time_ms=0, responses=responses)

    def incremental_alter_configs(self, request, ctx):
        responses = []
        for resource in request.resources:
            operations = [(entry.name, entry.config_operation, entry.value) for entry in resource.configs]
            error, message = self._set_topic_configs(
                resource.resource_type,
                resource.resource_name,
                lambda current, operations=operations: _apply_operations(current, operations),
                request.validate_only,
            )
            responses.append(
                IncrementalAlterConfigsResponse.AlterConfigsResourceResponse(
                    error_code=error,
                    error_message=message,
                    resource_type=resource.resource_type,
                    resource_name=resource.resource_name,
                )
            )
        return IncrementalAlterConfigsResponse(throttle_time_ms=0, responses=responses)

    def _set_topic_configs(self, resource_type: int, name: str, change, validate_only: bool) -> tuple[int, str | None]:
        if resource_type == RESOURCE_BROKER:
            return errors.INVALID_REQUEST, "the embedded broker's settings are its command-line flags"
        if resource_type != RESOURCE_TOPIC:
            return errors.INVALID_REQUEST, f"resource type {resource_type} has no configs here"
        topic = self.store.topics.get(name)
        if topic is None:
            return errors.UNKNOWN_TOPIC_OR_PARTITION, f"unknown topic {name!r}"
        try:
            configs = change(dict(topic.configs))
        except ValueError as error:
            return errors.INVALID_CONFIG, str(error)
        problem = validate_topic_configs(configs)
        if problem is not None:
            return errors.INVALID_CONFIG, problem
        if not validate_only:
            self.store.set_topic_configs(name, {key: value for key, value in configs.items() if value is not None})
        return errors.NONE, None

    # ---- log dirs -----------------------------------------------------------------------
    def describe_log_dirs(self, request, ctx):
        if request.topics is None:
            wanted = [(name, [p.index for p in topic.partitions]) for name, topic in sorted(self.store.topics.items())]
        else:
            wanted = [(entry.topic, list(entry.partitions)) for entry in request.topics]
        result_class = DescribeLogDirsResponse.DescribeLogDirsResult
        topic_class = result_class.DescribeLogDirsTopic
        topics = []
        for name, indexes in wanted:
            partitions = []
            for index in indexes:
                partition = self.store.partition(name, index)
                if partition is None:
                    continue
                partitions.append(
                    topic_class.DescribeLogDirsPartition(
                        partition_index=index,
                        partition_size=sum(segment.size for segment in partition.segments),
                        offset_lag=0,
                        is_future_key=False,
                    )
                )
            if partitions:
                topics.append(topic_class(name=name, partitions=partitions))
        total, usable = -1, -1
        if self.store.data_dir is not None:
            stats = os.statvfs(self.store.data_dir)
            total, usable = stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize
        result = result_class(
            error_code=errors.NONE,
            log_dir=self.log_dir(),
            topics=topics,
            total_bytes=total,
            usable_bytes=usable,
            is_cordoned=False,
        )
        return DescribeLogDirsResponse(throttle_time_ms=0, error_code=errors.NONE, results=[result])

    def alter_replica_log_dirs(self, request, ctx):
        result_class = AlterReplicaLogDirsResponse.AlterReplicaLogDirTopicResult
        results = []
        for wanted_dir in request.dirs:
            for topic in wanted_dir.topics:
                partitions = []
                for index in topic.partitions:
                    if self.store.partition(topic.name, index) is None:
                        error = errors.UNKNOWN_TOPIC_OR_PARTITION
                    elif wanted_dir.path != self.log_dir():
                        error = LOG_DIR_NOT_FOUND
                    else:
                        error = errors.NONE  # already there
                    partitions.append(
                        result_class.AlterReplicaLogDirPartitionResult(partition_index=index, error_code=error)
                    )
                results.append(result_class(topic_name=topic.name, partitions=partitions))
        return AlterReplicaLogDirsResponse(throttle_time_ms=0, results=results)

    # ---- replica placement --------------------------------------------------------------
    def elect_leaders(self, request, ctx):
        result_class = ElectLeadersResponse.ReplicaElectionResult
        results = []
        # A null list means every partition; none needs an election, so none is listed.
        for entry in request.topic_partitions or []:
            partitions = []
            for index in entry.partitions:
                known = self.store.partition(entry.topic, index) is not None
                partitions.append(
                    result_class.PartitionResult(
                        partition_id=index,
                        error_code=ELECTION_NOT_NEEDED if known else errors.UNKNOWN_TOPIC_OR_PARTITION,
                        error_message="Leader election not needed for topic partition"
                        if known
                        else "The partition does not exist.",
                    )
                )
            results.append(result_class(topic=entry.topic, partition_result=partitions))
        return ElectLeadersResponse(throttle_time_ms=0, error_code=errors.NONE, replica_election_results=results)

    def alter_partition_reassignments(self, request, ctx):
        response_class = AlterPartitionReassignmentsResponse.ReassignableTopicResponse
        responses = []
        for topic in request.topics:
            partitions = []
            for wanted in topic.partitions:
                error, message = errors.NONE, None
                if self.store.partition(topic.name, wanted.partition_index) is None:
                    error, message = errors.UNKNOWN_TOPIC_OR_PARTITION, "The partition does not exist."
                elif wanted.replicas is None:
                    error, message = NO_REASSIGNMENT_IN_PROGRESS, "No reassignment is in progress."
                elif list(wanted.replicas) != [NODE_ID]:
                    error, message = INVALID_REPLICA_ASSIGNMENT, f"node {NODE_ID} is the only broker"
                partitions.append(
                    response_class.ReassignablePartitionResponse(
                        partition_index=wanted.partition_index, error_code=error, error_message=message
                    )
                )
            responses.append(response_class(name=topic.name, partitions=partitions))
        return AlterPartitionReassignmentsResponse(
            throttle_time_ms=0,
            allow_replication_factor_change=True,
            error_code=errors.NONE,
            error_message=None,
            responses=responses,
        )

    def list_partition_reassignments(self, request, ctx):
        return ListPartitionReassignmentsResponse(
            throttle_time_ms=0, error_code=errors.NONE, error_message=None, topics=[]
        )

    # ---- security features this broker does not have ----------------------------------
    def describe_acls(self, request, ctx):
        return DescribeAclsResponse(
            throttle_time_ms=0, error_code=SECURITY_DISABLED, error_message=NO_AUTHORIZER, resources=[]
        )

    def create_acls(self, request, ctx):
        results = [
            CreateAclsResponse.AclCreationResult(error_code=SECURITY_DISABLED, error_message=NO_AUTHORIZER)
            for _ in request.creations
        ]
        return CreateAclsResponse(throttle_time_ms=0, results=results)

    def delete_acls(self, request, ctx):
        results = [
            DeleteAclsResponse.DeleteAclsFilterResult(
                error_code=SECURITY_DISABLED, error_message=NO_AUTHORIZER, matching_acls=[]
            )
            for _ in request.filters
        ]
        return DeleteAclsResponse(throttle_time_ms=0, filter_results=results)

    def describe_user_scram_credentials(self, request, ctx):
        result_class = DescribeUserScramCredentialsResponse.DescribeUserScramCredentialsResult
        results = [
            result_class(
                user=user.name,
                error_code=RESOURCE_NOT_FOUND,
                error_message=f"Attempt to describe a user credential that does not exist: {user.name}",
                credential_infos=[],
            )
            for user in request.users or []
        ]
        return DescribeUserScramCredentialsResponse(
            throttle_time_ms=0, error_code=errors.NONE, error_message=None, results=results
        )

    def alter_user_scram_credentials(self, request, ctx):
        users = sorted({entry.name for entry in [*request.deletions, *request.upsertions]})
        results = [
            AlterUserScramCredentialsResponse.AlterUserScramCredentialsResult(
                user=user,
                error_code=UNSUPPORTED_SASL_MECHANISM,
                error_message="the embedded broker has no SASL listener to use SCRAM credentials",
            )
            for user in users
        ]
        return AlterUserScramCredentialsResponse(throttle_time_ms=0, results=results)


def _apply_operations(current: dict[str, str], operations: list[tuple[str, int, str | None]]) -> dict:
    configs: dict[str, str | None] = dict(current)
    for name, operation, value in operations:
        if operation == CONFIG_SET:
            configs[name] = value
        elif operation == CONFIG_DELETE:
            configs.pop(name, None)
        elif operation in (CONFIG_APPEND, CONFIG_SUBTRACT):
            items = [item for item in (configs.get(name) or "").split(",") if item]
            added = [item for item in (value or "").split(",") if item]
            if operation == CONFIG_APPEND:
                items += [item for item in added if item not in items]
            else:
                items = [item for item in items if item not in added]
            configs[name] = ",".join(items)
        else:
            raise ValueError(f"unknown config operation {operation} for {name}")
    return configs
