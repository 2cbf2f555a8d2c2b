"""``python -m tack_sdk build APP.py``: a Python plugin becomes a component.

1. ``tack plugin wit`` writes tack's WIT and WASI's beside the SDK's world;
2. ``componentize-py`` builds the component from an entry module that imports
   the plugin (declaring its tools) and then the SDK's export, and snapshots the
   initialized interpreter, so a call starts with everything imported;
3. ``tack plugin embed`` embeds the manifest (``tack.toml`` beside the plugin,
   or ``--manifest``): the capabilities it asks for, as for any plugin.

The result is ready for ``tack plugin inspect``, ``tack publish --sign-key`` and
``tack tool call``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SDK = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tack_sdk")
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="build a plugin module into a component")
    build.add_argument("app", type=Path, help="the plugin's module (a .py file)")
    build.add_argument("-o", "--output", type=Path, help="the component [default: APP.wasm]")
    build.add_argument(
        "--manifest",
        type=Path,
        help="the plugin's manifest [default: tack.toml beside APP, if there is one]",
    )
    build.add_argument(
        "--tack",
        default=os.environ.get("TACK", "tack"),
        help="the tack binary [default: $TACK or tack on PATH]",
    )
    build.add_argument(
        "--componentize-py",
        dest="componentize_py",
        default=os.environ.get("COMPONENTIZE_PY", "componentize-py"),
        help="the componentize-py binary [default: $COMPONENTIZE_PY or componentize-py]",
    )
    args = parser.parse_args(argv)
    try:
        return _build(args)
    except BuildError as e:
        print(f"error: {e}", file=sys.stderr)
        if e.help:
            print(f"help: {e.help}", file=sys.stderr)
        return 1


class BuildError(Exception):
    def __init__(self, message: str, help: str | None = None):
        super().__init__(message)
        self.help = help


def _run(cmd: list[str], what: str, help: str | None = None) -> None:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True)
    except FileNotFoundError:
        raise BuildError(f"{cmd[0]} was not found", help) from None
    if done.returncode != 0:
        raise BuildError(f"{what} failed:\n{done.stderr.strip() or done.stdout.strip()}")


def _build(args: argparse.Namespace) -> int:
    app: Path = args.app.resolve()
    if app.suffix != ".py" or not app.is_file():
        raise BuildError(f"{args.app} is not a Python file", "pass the plugin's module, e.g. app.py")
    module = app.stem
    if not module.isidentifier():
        raise BuildError(f"`{module}` is not a Python module name", "rename the file")
    output: Path = (args.output or app.with_suffix(".wasm")).resolve()
    manifest = args.manifest or (app.parent / "tack.toml")
    if args.manifest and not manifest.is_file():
        raise BuildError(f"{manifest} does not exist")
    with tempfile.TemporaryDirectory(prefix="tack-python-") as tmp:
        tmp = Path(tmp)
        wit = tmp / "wit"
        wit.mkdir()
        shutil.copy(SDK / "wit" / "world.wit", wit / "world.wit")
        _run(
            [args.tack, "plugin", "wit", str(wit)],
            "tack plugin wit",
            "install tack (cargo install --path host/cli) or pass --tack PATH",
        )
        entry = tmp / "entry"
        entry.mkdir()
        (entry / "tack_plugin_entry.py").write_text(
            "import tack_sdk._preload  # stdlib modules imported lazily at call time\n"
            f"import {module}  # the plugin: declares its tools\n"
            "from tack_sdk._component import Tool  # tack:plugin/tool over them\n"
        )
        raw = tmp / "plugin.wasm"
        _run(
            [
                args.componentize_py,
                "-d", str(wit),
                "-w", "plugin",
                "componentize",
                "-p", str(entry),
                "-p", str(app.parent),
                "-p", str(SDK.parent),
                "tack_plugin_entry",
                "-o", str(raw),
            ],
            "componentize-py",
            "install it with `pip install componentize-py`",
        )
        if manifest.is_file():
            _run(
                [args.tack, "plugin", "embed", str(raw), "--manifest", str(manifest), "-o", str(output)],
                "tack plugin embed",
            )
        else:
            shutil.copy(raw, output)
    size = output.stat().st_size
    print(f"built {output} ({size / 1e6:.1f} MB)" + (f" with {manifest}" if manifest.is_file() else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
