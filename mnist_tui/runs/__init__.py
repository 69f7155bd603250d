"""The run store and what keeps it: atomic files (io), run directories (store), their
validation (schema), the index (index), provenance, claims, the queue (scheduler), the
worker that trains it, and its Ray backend. No torch.
"""
