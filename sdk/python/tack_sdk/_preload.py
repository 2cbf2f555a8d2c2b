"""Standard-library modules that other modules import lazily, at call time.

Inside a component, imports happen while ``componentize-py`` snapshots the
interpreter at build time; at call time there is no file system to import
from (the sandbox has only what the operator grants). Importing these here
puts them in the snapshot, so ``Counter.most_common`` (``heapq``),
``datetime.strptime`` (``_strptime``), ``bytes.decode("latin-1")``
(``encodings.latin_1``) and the like work in a tool. A plugin's own modules
are imported at build time as long as the plugin imports them at top level.
"""

import importlib

MODULES = [
    # imported lazily by collections, functools, statistics, random, ...
    "heapq", "bisect", "operator", "itertools", "functools", "copy", "weakref",
    "math", "cmath", "random", "statistics", "decimal", "fractions", "numbers",
    # text
    "string", "textwrap", "difflib", "unicodedata", "html", "html.parser",
    "locale", "gettext", "pprint", "reprlib", "shlex", "fnmatch", "glob",
    # data formats
    "json", "csv", "base64", "binascii", "struct", "zlib", "gzip", "hashlib",
    "hmac", "secrets", "uuid", "ipaddress", "email.utils", "urllib.parse",
    "xml.etree.ElementTree", "tomllib", "configparser",
    # time
    "datetime", "_strptime", "calendar", "time", "zoneinfo",
    # codecs that str.encode / bytes.decode look up by name
    "encodings.utf_8", "encodings.utf_8_sig", "encodings.ascii", "encodings.latin_1",
    "encodings.cp1252", "encodings.utf_16", "encodings.utf_32", "encodings.idna",
    "encodings.base64_codec", "encodings.hex_codec", "encodings.unicode_escape",
    "encodings.raw_unicode_escape",
    # runtime helpers
    "traceback", "linecache", "tokenize", "inspect", "dataclasses", "enum", "typing",
    "contextlib", "abc", "io", "os", "posixpath", "pathlib", "tempfile", "logging",
    "warnings", "collections.abc",
]

for _name in MODULES:
    try:
        importlib.import_module(_name)
    except ImportError:  # not in this interpreter's build
        pass
