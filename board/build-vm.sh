#!/usr/bin/env bash
# Build the board-like CircuitPython VM that `make board` and the board tests run the release in.
#
#   board/build-vm.sh PATCH [WORKDIR]
#
# PATCH: the variant patch for adafruit/circuitpython commit cd3da4a5d8 (CircuitPython 10.3 with
# MicroPython 1.27.0 merged): a new unix-port variant "cphwnet2" that is built like a board -
# 32-bit (i386), float32, object representation C (31-bit small ints), MPZ long ints, one fixed
# heap (-X heapsize), no ffi, statically linked; MicroPython v1.27.0's ports/unix/modsocket.c
# (real TCP/UDP sockets; a socket timeout raises ETIMEDOUT as on a board); time.monotonic /
# monotonic_ns in ports/unix/modtime.c (float32 from a millisecond counter, like a board;
# CIRCUITPY_UNIX_MONOTONIC_OFFSET_MS starts it late); and CircuitPython's own displayio, fontio,
# terminalio and tilepalettemapper (shared-bindings / shared-module, unchanged) instead of the unix
# port's minimal displayio. The patch (about 55 KB) is not in this repository; the project keeps it
# beside the prebuilt VM (patches/cphwnet2-full-vs-cd3da4a5d8.patch in the VM's folder).
#
# Needs: git, make, gcc with 32-bit support (Debian/Ubuntu: gcc-multilib libc6-dev-i386), python3,
# and internet access (GitHub). Output: WORKDIR/circuitpython/ports/unix/build-cphwnet2/micropython
# (copy it where you like and point CIRCUITPYTHON at it). Takes a few minutes.
set -euo pipefail
patch=${1:?usage: board/build-vm.sh PATCH [WORKDIR]}
patch=$(cd "$(dirname "$patch")" && pwd)/$(basename "$patch")
work=${2:-$PWD/circuitpython-vm}
commit=cd3da4a5d8

mkdir -p "$work"
cd "$work"
if [ ! -d circuitpython ]; then
  git clone --filter=blob:none https://github.com/adafruit/circuitpython.git
fi
cd circuitpython
git checkout --quiet "$commit"
# the submodules the unix port needs (py/mkrules.mk "submodules"), and the board font's source
make -C ports/unix VARIANT=standard submodules
git submodule update --init --depth 1 tools/bitmap_font
git apply --check "$patch"
git apply "$patch"
make -C mpy-cross -j"$(nproc)"
make -C ports/unix VARIANT=cphwnet2 -j"$(nproc)"
vm=ports/unix/build-cphwnet2/micropython
file "$vm" || true
echo "built: $work/circuitpython/$vm"
echo "sha256: $(sha256sum "$vm" | cut -d' ' -f1)  (the project's VM: b056bc88...8c3154)"
echo "use:    make board CIRCUITPYTHON=$work/circuitpython/$vm"
