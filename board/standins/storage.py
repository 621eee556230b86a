# SPDX-License-Identifier: MIT
"""``storage`` stand-in: ``mount``, ``umount``, ``getmount``, ``remount``, ``VfsFat``.

Imitates adafruit/circuitpython shared-bindings/storage/__init__.c and
shared-module/storage/__init__.c on the VM's ``os.mount``: the mount point must exist as a
directory (RuntimeError "Mount point directory missing"), a path in use gives OSError(EPERM),
``umount``/``getmount`` of an unknown path or object give OSError(EINVAL); mounting never
formats (an unformatted card fails with OSError(ENODEV)). ``VfsFat`` is the VM's ``os.VfsFat``
(CircuitPython's FAT driver, as on a board).
"""

import errno
import os

VfsFat = os.VfsFat
_mounts = {}  # path -> vfs


def mount(filesystem, mount_path, *, readonly=False):
    if mount_path in _mounts or mount_path == "/":
        raise OSError(errno.EPERM)
    parent, _, name = mount_path.rstrip("/").rpartition("/")
    try:
        found = name in os.listdir(parent or "/")
        is_dir = found and os.stat(mount_path)[0] & 0x4000
    except OSError:
        is_dir = False
    if not is_dir:
        raise RuntimeError("Mount point directory missing")
    try:
        os.mount(filesystem, mount_path, readonly=readonly)
    except OSError as exc:
        if exc.errno == errno.ENODEV or "NODEV" in str(exc):
            raise OSError(errno.ENODEV) from None
        raise
    _mounts[mount_path] = filesystem


def umount(mount):
    path = mount
    if not isinstance(mount, str):
        path = None
        for p, vfs in _mounts.items():
            if vfs is mount:
                path = p
        if path is None:
            raise OSError(errno.EINVAL)
    if path not in _mounts:
        raise OSError(errno.EINVAL)
    os.umount(path)
    del _mounts[path]


def getmount(mount_path):
    if mount_path not in _mounts:
        raise OSError(errno.EINVAL)
    return _mounts[mount_path]


def remount(mount_path, readonly=False, *, disable_concurrent_write_protection=False):
    """CIRCUITPY is read-only to code while USB is connected (only boot.py may remount it)."""
    raise RuntimeError("Cannot remount path when visible via USB.")


def erase_filesystem():
    raise RuntimeError("the board in a box does not erase its drive")


def disable_usb_drive():
    pass


def enable_usb_drive():
    pass
