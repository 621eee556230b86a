# SPDX-License-Identifier: MIT
"""FAT image helper run INSIDE the VM (CircuitPython's own FAT driver, ``os.VfsFat``).

``circuitpython-unix -X heapsize=1M fatimage.py mkfs IMAGE`` formats IMAGE (an existing file, a
multiple of 512 bytes) as a freshly formatted SD card would be;
``... fatimage.py export IMAGE DEST`` copies every file on the card into the host folder DEST
(which must exist), keeping the folder tree; prints one line per file: ``size path``;
``... fatimage.py put IMAGE SRC`` copies the host folder SRC's tree onto the card (tests put
files there before the board boots, as a user would with a card reader).
"""

import os
import sys


class _Image:
    def __init__(self, f):
        self.f = f
        f.seek(0, 2)
        self.blocks = f.tell() // 512

    def readblocks(self, n, buf):
        self.f.seek(n * 512)
        self.f.readinto(buf)

    def writeblocks(self, n, buf):
        self.f.seek(n * 512)
        self.f.write(buf)

    def count(self):
        return self.blocks

    def sync(self):
        self.f.flush()


def _copy(src, dest, buf, listed):
    """Copy the tree ``src`` into ``dest`` through ``buf``; ``listed``: print ``size path`` (the
    path on the card) per file."""
    for entry in os.ilistdir(src):
        name, kind = entry[0], entry[1]
        path = src + "/" + name
        out = dest + "/" + name
        if kind == 0x4000:
            try:
                os.mkdir(out)
            except OSError:
                pass
            _copy(path, out, buf, listed)
            continue
        size = 0
        with open(path, "rb") as fin, open(out, "wb") as fout:
            while True:
                n = fin.readinto(buf)
                if not n:
                    break
                fout.write(memoryview(buf)[:n])
                size += n
        if listed:
            print(size, path[len("/card") :])


def main(argv):
    cmd, image = argv[1], argv[2]
    mode = "rb" if cmd == "export" else "r+b"
    with open(image, mode) as f:
        dev = _Image(f)
        if cmd == "mkfs":
            os.VfsFat.mkfs(dev)
            return
        os.mount(os.VfsFat(dev), "/card", readonly=cmd == "export")
        if cmd == "put":
            _copy(argv[3], "/card", bytearray(4096), False)
        else:
            _copy("/card", argv[3], bytearray(4096), True)
        os.umount("/card")


main(sys.argv)
