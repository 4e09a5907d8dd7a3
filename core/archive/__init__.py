"""The LMDB archive: storage (store, memstore, datafile, migrations), records,
keys, queries, integrity, import (walk, read-ahead, ingest) and its API (api,
browse, maintenance, media)."""
