"""The gRPC API (checklist 5.3; ``flightdeck serve --grpc PORT``): ``flightdeck.proto`` (package ``flightdeck.v1``)
and the servicer over :class:`~flightdeck.serving.service.Service` in :mod:`flightdeck.serving.grpc.server`.

``flightdeck_pb2.py`` and ``flightdeck_pb2_grpc.py`` are generated and committed. After editing the .proto,
regenerate them from ``src/`` with grpcio-tools (the ``dev`` extra)::

    cd src && python -m grpc_tools.protoc -I. --python_out=. --grpc_python_out=. \\
      flightdeck/serving/grpc/flightdeck.proto && cd flightdeck/serving/grpc \\
      && sed -i '1i # ruff: noqa' flightdeck_pb2.py flightdeck_pb2_grpc.py

Compiling from ``src/`` with the path ``flightdeck/serving/grpc/flightdeck.proto`` makes the ``_grpc`` module import
``from flightdeck.serving.grpc import flightdeck_pb2`` (an absolute import that works in the installed package, not
the ``import flightdeck_pb2`` a compile from this folder writes), and registers the file under that unique path.
The generated code checks its runtime: it needs grpcio and protobuf at least as new as the grpcio-tools that
wrote it (the versions are in the two files' headers).

Importing this package imports nothing of grpc; a client needs only the two generated modules::

    channel = grpc.insecure_channel("127.0.0.1:50051")
    stub = flightdeck_pb2_grpc.FlightdeckStub(channel)
    answer = stub.Query(flightdeck_pb2.QueryRequest(question="How do I sort?"),
                        metadata=[("authorization", f"Bearer {key}")], timeout=30)
"""

from __future__ import annotations

__all__: list[str] = []
