"""gRPC plumbing shared by every service: server with health and reflection, TLS, per-agency auth."""

from madina.grpc.auth import AgencyAuthInterceptor, agency_of_current_call
from madina.grpc.server import GrpcServer

__all__ = ["AgencyAuthInterceptor", "GrpcServer", "agency_of_current_call"]
