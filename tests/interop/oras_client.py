#!/usr/bin/env python3
"""The official ORAS Python client (oras-py), driven by tack's interop tests.

    oras_client.py push HOST TARGET FILE:MEDIA_TYPE CONFIG_FILE:MEDIA_TYPE
    oras_client.py pull HOST TARGET OUTDIR        (prints the pulled paths, JSON)
    oras_client.py manifest HOST TARGET           (prints the manifest, JSON)

Credentials, when needed, come from ORAS_USER / ORAS_PASSWORD and are used for
the registry's token flow (HTTP Basic at the realm). HOST is reached over plain
HTTP (loopback test registries).
"""

import json
import os
import sys

import oras.client


def client(host):
    c = oras.client.OrasClient(hostname=host, insecure=True)
    password = os.environ.get("ORAS_PASSWORD")
    if password:
        # `login` goes through a docker client; the token flow only needs Basic creds.
        c.auth.set_basic_auth(os.environ.get("ORAS_USER", "oras"), password)
    return c


def main(argv):
    cmd, host, target = argv[1], argv[2], argv[3]
    c = client(host)
    if cmd == "push":
        layer, config = argv[4], argv[5]
        response = c.push(
            target=target,
            files=[layer],
            manifest_config=config,
            disable_path_validation=True,
            quiet=True,
        )
        response.raise_for_status()
        print(json.dumps({"status": response.status_code}))
    elif cmd == "pull":
        files = c.pull(target=target, outdir=argv[4])
        print(json.dumps(files))
    elif cmd == "manifest":
        print(json.dumps(c.get_manifest(target)))
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv)
