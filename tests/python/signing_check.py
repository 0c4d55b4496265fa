"""Zip-level helpers for the signing cross-checks, with Python's zipfile alone.

    signing_check.py unzip BUNDLE DIR            plain unzip, as a user would
    signing_check.py flip BUNDLE OUT ENTRY       one byte of ENTRY flipped, CRC-32 recomputed
    signing_check.py add BUNDLE OUT ENTRY        an extra entry ENTRY
    signing_check.py remove BUNDLE OUT ENTRY     ENTRY left out
    signing_check.py entries BUNDLE              the entry names, one per line
    signing_check.py schema SIG SCHEMA STATEMENT_SCHEMA
                                                 validate a signature file and its decoded
                                                 statement against the published JSON Schemas

Rewritten bundles keep every other entry's bytes and are stored (no
compression); zipfile computes each CRC-32, so only a signature (or a
digest) can tell a changed entry.
"""

import json
import sys
import zipfile


def rewrite(src, out, change):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as zout:
        for info in zin.infolist():
            data = change(info.filename, zin.read(info.filename))
            if data is not None:
                zout.writestr(info.filename, data)
        extra = change(None, None)
        if extra is not None:
            zout.writestr(extra[0], extra[1])


def main(argv):
    command = argv[1]
    if command == "unzip":
        with zipfile.ZipFile(argv[2]) as z:
            z.extractall(argv[3])
    elif command == "flip":
        entry = argv[4]

        def flip(name, data):
            if name == entry:
                data = bytearray(data)
                data[len(data) // 2] ^= 0x01
                return bytes(data)
            return data

        rewrite(argv[2], argv[3], flip)
    elif command == "add":
        rewrite(argv[2], argv[3], lambda name, data: (argv[4], b"extra\n") if name is None else data)
    elif command == "remove":
        rewrite(argv[2], argv[3], lambda name, data: None if name in (None, argv[4]) else data)
    elif command == "entries":
        with zipfile.ZipFile(argv[2]) as z:
            print("\n".join(z.namelist()))
    elif command == "schema":
        import jsonschema

        import base64

        with open(argv[2]) as f, open(argv[3]) as s, open(argv[4]) as t:
            signature = json.load(f)
            jsonschema.validate(signature, json.load(s))
            statement = json.loads(base64.b64decode(signature["dsseEnvelope"]["payload"], validate=True))
            jsonschema.validate(statement, json.load(t))
        print("schema: ok")
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main(sys.argv)
