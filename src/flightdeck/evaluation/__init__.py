"""Phase 4: evaluation. Retrieval quality on BEIR-format datasets for now."""
