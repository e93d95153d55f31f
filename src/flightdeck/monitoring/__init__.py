"""Phase 7, monitoring: the traces of the answers given, and the server's metrics."""
