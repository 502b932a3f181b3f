"""Built-in transforms: each is a Transformer registered under ``openfuse.connectors``.

| type | options | does |
| --- | --- | --- |
| `select` | `columns: [..]` | keep these columns, in this order |
| `drop` | `columns: [..]` | remove columns |
| `rename` | `columns: {old: new}` | rename columns |
| `cast` | `columns: {name: type}` | change types; values that do not convert are quarantined |
| `filter` | `expr: "amount > 10 and status != 'void'"` | keep rows where the expression is true |
| `hash` | `columns: [..]`, `salt` | salted SHA-256 (hex) of each value; NULL stays NULL |
| `mask` | `columns: [..]`, `keep_last`, `char` | `****1234` |
| `add_metadata` | `synced_at`, `run_id` (column names) | add `_openfuse_synced_at`, `_openfuse_run_id` |
| `dedupe` | `key: [..]` | keep the first row of each key within a run |
| `python` | `callable: "pkg.module:function"` | any function RecordBatch -> RecordBatch |
"""

from openfuse_connectors.builtin.transforms.columns import Cast, Drop, Rename, Select
from openfuse_connectors.builtin.transforms.dedupe import Dedupe
from openfuse_connectors.builtin.transforms.filter import Filter
from openfuse_connectors.builtin.transforms.metadata import AddMetadata
from openfuse_connectors.builtin.transforms.pii import Hash, Mask
from openfuse_connectors.builtin.transforms.python import PythonTransform

__all__ = [
    "AddMetadata",
    "Cast",
    "Dedupe",
    "Drop",
    "Filter",
    "Hash",
    "Mask",
    "PythonTransform",
    "Rename",
    "Select",
]
