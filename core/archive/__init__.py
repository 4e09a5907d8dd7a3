"""The LMDB archive: storage, records, keys, queries, integrity, import (walk, read-ahead, ingest) and its API."""
