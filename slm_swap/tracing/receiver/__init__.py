"""A small Langfuse-compatible receiver on 127.0.0.1 that decodes what the real SDK sends: HTTP server (`server`),
its store (`store`), the dump folder's batched writer (`dump`) and OTLP decoding (`otlp`). Used by tests and the
offline demo.
"""
