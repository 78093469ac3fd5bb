"""gRPC plumbing shared by every service: server with health and reflection, TLS, per-agency auth."""

from madina.grpc.auth import AgencyAuthInterceptor, AgencyCredentials, load_agency_credentials
from madina.grpc.server import GrpcServer

__all__ = ["AgencyAuthInterceptor", "AgencyCredentials", "GrpcServer", "load_agency_credentials"]
