# SPDX-License-Identifier: MIT
"""Command line for users and support: ``python -m smartmeter decode --key HEX [FILE|-]``.

Reads hex text of a captured byte stream (any case, whitespace, ``:``/``-``/``,`` separators,
``0x`` prefixes, ``#`` comments) and prints one JSON object per decoded telegram on stdout and one
line per failed frame or telegram on stderr, naming the stage. Exit status 0 only if at least one
telegram decoded and none failed. Keys are never printed. The framing is detected from the
bytes: M-Bus (DLMS segments and Netz OÖ AMIS/OMS frames), HDLC (with block transfer), or, when
the capture holds no frame at all, unframed GCM bursts (Energienetze Steiermark T210-D-r).
"""

import argparse
import json
import re
import sys

from .protocol import layouts
from .protocol.errors import KeyFormatError, MeterError
from .protocol.pipeline import decode
from .protocol.transport import TRANSPORTS

_COMMENT = re.compile(r"#[^\n]*")
_PREFIX = re.compile(r"0[xX](?=[0-9a-fA-F])")
_NOT_HEX = re.compile(r"[^0-9a-fA-F]")


def parse_hex_text(text):
    """Hex dump text -> bytes. Raises ValueError on an odd number of digits."""
    text = _PREFIX.sub("", _COMMENT.sub("", text))
    digits = _NOT_HEX.sub("", text)
    if len(digits) % 2:
        raise ValueError("odd number of hex digits (%d)" % len(digits))
    return bytes.fromhex(digits)


def _read_input(path):
    if path in (None, "-"):
        return sys.stdin.read()
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m smartmeter")
    sub = parser.add_subparsers(dest="command", required=True)
    dec = sub.add_parser("decode", help="decode a hex capture of the meter's byte stream")
    dec.add_argument("--key", help="meter key (32 hex digits; spaces, colons, 0x allowed)")
    dec.add_argument("--auth-key", help="authentication key, for meters that send a GCM tag")
    dec.add_argument("--plaintext", action="store_true", help="input is one decrypted APDU")
    dec.add_argument("--layout", default="auto", choices=("auto",) + layouts.LAYOUTS)
    dec.add_argument(
        "--transport",
        default="auto",
        choices=TRANSPORTS,
        help="auto: M-Bus/HDLC frames, else unframed GCM bursts (T210-D-r) if no frame is found",
    )
    dec.add_argument("file", nargs="?", default="-", help="hex text file, or - for stdin")
    args = parser.parse_args(argv)

    if not args.plaintext and not args.key:
        parser.error("--key is required (or use --plaintext for a decrypted APDU)")
    try:
        data = parse_hex_text(_read_input(args.file))
    except (OSError, ValueError) as exc:
        print("input: %s" % exc, file=sys.stderr)
        return 2
    try:
        results = decode(
            data,
            None if args.plaintext else args.key,
            args.auth_key,
            plaintext=args.plaintext,
            layout=args.layout,
            transport=args.transport,
        )
    except KeyFormatError as exc:
        print("config: %s" % exc, file=sys.stderr)
        return 2
    ok = failed = 0
    for n, item in enumerate(results, 1):
        if isinstance(item, MeterError):
            failed += 1
            print("telegram %d: %s: %s" % (n, item.stage, item), file=sys.stderr)
        else:
            ok += 1
            print(json.dumps(item.as_dict(), ensure_ascii=False))
    if not results:
        print("no telegram found in %d bytes" % len(data), file=sys.stderr)
    return 0 if ok and not failed else 1


if __name__ == "__main__":
    sys.exit(main())
