"""tack's Python SDK: tool plugins as typed, decorated functions.

```python
from tack_sdk import tool

@tool(read_only=True)
def word_count(text: str) -> int:
    \"\"\"Count the words of a text.\"\"\"
    return len(text.split())
```

Build it into a signed-ready component with ``python -m tack_sdk build app.py``
(see README.md). Inside the component, ``tack_sdk.log`` and Python's ``logging``
go to the host's trace, and ``tack_sdk.http`` makes requests through the host,
which allows only the hosts the operator granted.
"""

from . import log
from .schema import Field, SchemaError
from .tools import Context, ToolError, tool

__all__ = ["Context", "Field", "SchemaError", "ToolError", "log", "tool"]
