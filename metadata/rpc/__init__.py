"""Beaker's gRPC API (the service beaker-py 2.x calls), over the same domain as /api/v3.

The service and its messages are beaker-py's own generated modules (`beaker.beaker_pb2`,
`beaker.beaker_pb2_grpc`, the optional dependency `beakerd[grpc]`): no copy of the .proto here.
servicer.py answers the RPCs, convert.py builds the messages, status.py maps errors and checks
the caller's token, paging.py encodes page tokens.
"""
