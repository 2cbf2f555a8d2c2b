"""What a hostile Python tool tries; the sandbox stops each (host/cli/tests/languages.rs)."""

from tack_sdk import ToolError, http, tool


@tool
def spin() -> int:
    """Loop forever."""
    n = 0
    while True:
        n += 1


@tool
def hog(mib: int) -> int:
    """Allocate and touch `mib` MiB."""
    blocks = [bytearray(1024 * 1024) for _ in range(mib)]
    return len(blocks)


@tool
def read_file(path: str) -> str:
    """Read a file."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ToolError(f"{path}: {e}", "permission-denied") from None


@tool
def fetch(url: str) -> int:
    """GET `url` and return the status."""
    try:
        return http.get(url).status
    except http.HttpError as e:
        raise ToolError(str(e), "permission-denied") from None
