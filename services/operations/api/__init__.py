"""Transport of the operations center (``madina service operations``): the alert consumer, REST
and SSE for the dashboard, and the partner ``AlertService`` over gRPC, in one asyncio process.

The rules live in :mod:`services.operations.domain` and persistence in
:mod:`services.operations.store`; this package only moves records and requests to them."""
