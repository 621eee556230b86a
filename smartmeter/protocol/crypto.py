# SPDX-License-Identifier: MIT
"""AES-128-GCM as DLMS general-glo-ciphering uses it, on CircuitPython, MicroPython and CPython.

IV = system title (8) + frame counter (4, big-endian). Plaintext = AES-CTR from IV + 00000002.
Tag = first 12 bytes of GHASH_H(A, C) xor E_K(IV + 00000001), H = E_K(0^128), A = SC byte +
authentication key, C = ciphertext.

Block cipher backends (``new_cipher(key, backend=None)``), best available first:

- ``"aesio"``: CircuitPython's built-in (ECB and CTR; one CTR call per telegram, re-keyed per call).
- ``"cryptography"``: CPython (``aes_host.py``).
- ``"python"``: pure-Python AES-128 (``aes_python.py``; the MicroPython VM in tests); the inverse
  cipher is used only by CBC decryption.

The last two are modules of their own, imported on first use: the board loads neither.

Each returns an object with ``name``, ``encrypt_block(src16, dst16)``,
``ctr_xcrypt(icb16, src, dst)`` and ``cbc_decrypt(iv16, src, dst)`` (AES-128-CBC, for OMS mode 5
of the Netz OÖ AMIS meters; ``len(src)`` a multiple of 16); ``dst`` is a writable buffer of
exactly ``len(src)`` bytes (bytearray or memoryview; for CTR it may be ``src`` itself).

GHASH is pure Python with a per-key table, built once when an auth key is set
(``table_bits=8``: 16 x 256 entries, ~100 KiB, 16 lookups per block; ``table_bits=4``:
32 x 16 entries, ~20 KiB, 32 lookups). The 128-bit values are six limbs of at most 24 bits, so
every intermediate is a small int on 32-bit ports: decrypt + verify allocates nothing.
Measured under the MicroPython 1.27 VM (wasm, PC): GHASH of 243 bytes + 17-byte AAD 440 us
(8-bit) / 725 us (4-bit); pure-Python AES 80 us per block.
"""

from smartmeter.protocol.errors import (
    AuthKeyMissingError,
    EnvelopeError,
    KeyFormatError,
    TagMismatchError,
)

try:
    from micropython import const
except ImportError:

    def const(x):
        return x


_TAG_LEN = const(12)
_R24 = const(0xE10000)  # GCM reduction constant 0xE1 << 120, as the top 24-bit limb
_SMALL_HEAP = const(524288)
_BACKENDS = ("aesio", "cryptography", "python")

_best = None


def new_cipher(key, backend=None):
    """Return an AES-128 block cipher for ``key`` (16 bytes).

    :param backend: ``"aesio"``, ``"cryptography"`` or ``"python"``; None picks the best available
    :raises ImportError: the forced backend is not available here
    :raises ValueError: unknown backend name
    """
    global _best
    if len(key) != 16:
        raise KeyFormatError("AES key must be 16 bytes")
    if backend is None:
        if _best is None:
            for name in _BACKENDS[:2]:
                try:
                    __import__(name)
                    _best = name
                    break
                except ImportError:
                    pass
            else:
                _best = "python"
        backend = _best
    if backend == "aesio":
        return _AesioAes(key)
    # each backend in its own module, loaded on first use: the board (aesio) never loads the
    # pure-Python AES nor the host's wrapper of the cryptography package
    if backend == "cryptography":
        from .aes_host import CryptographyAes

        return CryptographyAes(key)
    if backend == "python":
        from .aes_python import PyAes

        return PyAes(key)
    raise ValueError("unknown AES backend")


class _AesioAes:
    name = "aesio"

    def __init__(self, key):
        import aesio

        self._key = bytes(key)
        self._ecb = aesio.AES(self._key, aesio.MODE_ECB)
        self._ctr = aesio.AES(self._key, aesio.MODE_CTR, bytes(16))
        self._cbc = None  # built on first use (AMIS only)

    def encrypt_block(self, src, dst):
        self._ecb.encrypt_into(src, dst)

    def ctr_xcrypt(self, icb, src, dst):
        if len(src):
            # aesio keeps its counter across calls and drops unused keystream: one call, fresh IV.
            self._ctr.rekey(self._key, icb)
            self._ctr.encrypt_into(src, dst)

    def cbc_decrypt(self, iv, src, dst):
        if len(src):
            import aesio

            if self._cbc is None:
                self._cbc = aesio.AES(self._key, aesio.MODE_CBC, bytes(iv))
            else:  # the chaining value carries over between calls: fresh IV per telegram
                self._cbc.rekey(self._key, bytes(iv))
            self._cbc.decrypt_into(src, dst)


# --- GHASH with per-key tables over 24-bit limbs ----------------------------------------------
# A 128-bit field element (GCM bit order: byte 0 bit 7 is x^0) is held as the big-endian integer
# of its 16 bytes, split into limbs z0..z4 (3 bytes each) and z5 (byte 15). Multiplying by x is a
# right shift by one with reduction; a table holds (v at window m) * H for every window value v.


def _ghash_table(h, bits):
    """Per-key table: six limb lists, index ``m * 2**bits + v``."""
    a0 = (h[0] << 16) | (h[1] << 8) | h[2]
    a1 = (h[3] << 16) | (h[4] << 8) | h[5]
    a2 = (h[6] << 16) | (h[7] << 8) | h[8]
    a3 = (h[9] << 16) | (h[10] << 8) | h[11]
    a4 = (h[12] << 16) | (h[13] << 8) | h[14]
    a5 = h[15]
    basis = [[0] * 128 for _ in range(6)]  # basis[limb][p] = limb of H * x^p
    for p in range(128):
        basis[0][p], basis[1][p], basis[2][p] = a0, a1, a2
        basis[3][p], basis[4][p], basis[5][p] = a3, a4, a5
        carry = a5 & 1
        a5 = (a5 >> 1) | ((a4 & 1) << 7)
        a4 = (a4 >> 1) | ((a3 & 1) << 23)
        a3 = (a3 >> 1) | ((a2 & 1) << 23)
        a2 = (a2 >> 1) | ((a1 & 1) << 23)
        a1 = (a1 >> 1) | ((a0 & 1) << 23)
        a0 >>= 1
        if carry:
            a0 ^= _R24
    size = 1 << bits
    tab = [[0] * (size * (128 // bits)) for _ in range(6)]
    for m in range(128 // bits):
        base = m * size
        for v in range(1, size):
            low = v & -v
            j = 0
            while (1 << j) != low:
                j += 1
            p = bits * m + bits - 1 - j  # bit j of the window value is x^p
            prev = base + (v ^ low)
            for limb in range(6):
                tab[limb][base + v] = tab[limb][prev] ^ basis[limb][p]
    return tuple(tab)


class Gcm:
    """AES-128-GCM for one meter key (DLMS general-glo-ciphering).

    :param key: 16-byte encryption key (GUEK)
    :param auth_key: 16-byte authentication key (GAK), or None when the meter sends no tag
    :param backend: force an AES backend (see :func:`new_cipher`)
    :param table_bits: GHASH table window, 8 (96 KiB, fastest) or 4 (12 KiB); None: 8 unless
        ``gc.mem_free()`` reports less than 512 KiB (a board without PSRAM). Built only when an
        auth key is set.
    """

    def __init__(self, key, auth_key=None, backend=None, table_bits=None):
        if table_bits is None:
            table_bits = 8
            try:
                import gc

                if gc.mem_free() < _SMALL_HEAP:
                    table_bits = 4
            except (ImportError, AttributeError):
                pass
        if table_bits not in (4, 8):
            raise ValueError("table_bits must be 4 or 8")
        if auth_key is not None and len(auth_key) != 16:
            raise KeyFormatError("METER_AUTH_KEY must be 16 bytes")
        self.cipher = new_cipher(key, backend)
        self.auth_key = None if auth_key is None else bytes(auth_key)
        self._bits = table_bits
        self._j0 = bytearray(16)
        self._icb = bytearray(16)
        self._ek = bytearray(16)
        self._s = bytearray(16)
        self._x = bytearray(16)
        self._pad = bytearray(16)
        self._z = [0] * 6
        self._zaad = [0] * 6
        self._aad = bytearray(32)  # SC + auth key, zero padded to two blocks
        self._aad_sc = -1
        self._tab = None
        if self.auth_key is not None:
            self._aad[1:17] = self.auth_key
            self._tables()

    def _tables(self):
        if self._tab is None:
            h = bytearray(16)
            self.cipher.encrypt_block(bytes(16), h)
            self._tab = _ghash_table(h, self._bits)
        return self._tab

    def _set_iv(self, system_title, frame_counter):
        if len(system_title) != 8:
            raise EnvelopeError("system title must be 8 bytes")
        j0, icb = self._j0, self._icb
        for i in range(8):
            j0[i] = icb[i] = system_title[i]
        if isinstance(frame_counter, int):
            j0[8] = icb[8] = (frame_counter >> 24) & 0xFF
            j0[9] = icb[9] = (frame_counter >> 16) & 0xFF
            j0[10] = icb[10] = (frame_counter >> 8) & 0xFF
            j0[11] = icb[11] = frame_counter & 0xFF
        else:
            for i in range(4):
                j0[8 + i] = icb[8 + i] = frame_counter[i]
        j0[15], icb[15] = 1, 2

    def _ghash(self, d, o, nblk):
        """Absorb ``nblk`` full blocks of ``d`` from offset ``o`` into the state ``self._z``."""
        T0, T1, T2, T3, T4, T5 = self._tab
        z, x, eight = self._z, self._x, self._bits == 8
        a0, a1, a2 = z[0], z[1], z[2]
        a3, a4, a5 = z[3], z[4], z[5]
        for _ in range(nblk):
            x[0] = (a0 >> 16) ^ d[o]
            x[1] = ((a0 >> 8) & 255) ^ d[o + 1]
            x[2] = (a0 & 255) ^ d[o + 2]
            x[3] = (a1 >> 16) ^ d[o + 3]
            x[4] = ((a1 >> 8) & 255) ^ d[o + 4]
            x[5] = (a1 & 255) ^ d[o + 5]
            x[6] = (a2 >> 16) ^ d[o + 6]
            x[7] = ((a2 >> 8) & 255) ^ d[o + 7]
            x[8] = (a2 & 255) ^ d[o + 8]
            x[9] = (a3 >> 16) ^ d[o + 9]
            x[10] = ((a3 >> 8) & 255) ^ d[o + 10]
            x[11] = (a3 & 255) ^ d[o + 11]
            x[12] = (a4 >> 16) ^ d[o + 12]
            x[13] = ((a4 >> 8) & 255) ^ d[o + 13]
            x[14] = (a4 & 255) ^ d[o + 14]
            x[15] = a5 ^ d[o + 15]
            a0 = a1 = a2 = a3 = a4 = a5 = 0
            j = 0
            if eight:
                for i in range(16):
                    k = j + x[i]
                    a0 ^= T0[k]
                    a1 ^= T1[k]
                    a2 ^= T2[k]
                    a3 ^= T3[k]
                    a4 ^= T4[k]
                    a5 ^= T5[k]
                    j += 256
            else:
                for i in range(16):
                    v = x[i]
                    k = j + (v >> 4)
                    a0 ^= T0[k]
                    a1 ^= T1[k]
                    a2 ^= T2[k]
                    a3 ^= T3[k]
                    a4 ^= T4[k]
                    a5 ^= T5[k]
                    k = j + 16 + (v & 15)
                    a0 ^= T0[k]
                    a1 ^= T1[k]
                    a2 ^= T2[k]
                    a3 ^= T3[k]
                    a4 ^= T4[k]
                    a5 ^= T5[k]
                    j += 32
            o += 16
        z[0], z[1], z[2] = a0, a1, a2
        z[3], z[4], z[5] = a3, a4, a5

    def _tag_into(self, security_byte, c, out):
        """Full 16-byte GCM tag of ciphertext ``c`` (J0 must be set) into ``out``."""
        self._tables()
        self.cipher.encrypt_block(self._j0, self._ek)
        z, zaad, pad = self._z, self._zaad, self._pad
        if security_byte != self._aad_sc:  # the AAD state depends on SC only: cache it
            for i in range(6):
                z[i] = 0
            self._aad[0] = security_byte
            self._ghash(self._aad, 0, 2)
            for i in range(6):
                zaad[i] = z[i]
            self._aad_sc = security_byte
        for i in range(6):
            z[i] = zaad[i]
        n = len(c)
        full = n >> 4
        if full:
            self._ghash(c, 0, full)
        r = n & 15
        if r:
            o = n - r
            for i in range(16):
                pad[i] = c[o + i] if i < r else 0
            self._ghash(pad, 0, 1)
        for i in range(16):  # lengths in bits: A = 17 bytes, C = n bytes
            pad[i] = 0
        pad[7] = 136
        pad[12], pad[13] = (n >> 21) & 0xFF, (n >> 13) & 0xFF
        pad[14], pad[15] = (n >> 5) & 0xFF, (n << 3) & 0xFF
        self._ghash(pad, 0, 1)
        ek = self._ek
        for k in range(5):
            v = z[k]
            out[3 * k] = (v >> 16) ^ ek[3 * k]
            out[3 * k + 1] = ((v >> 8) & 255) ^ ek[3 * k + 1]
            out[3 * k + 2] = (v & 255) ^ ek[3 * k + 2]
        out[15] = z[5] ^ ek[15]

    def decrypt_into(self, system_title, frame_counter, security_byte, ciphertext, dst, tag=None):
        """Decrypt ``ciphertext`` into ``dst`` (its first ``len(ciphertext)`` bytes).

        The tag is checked before anything is written.

        :param frame_counter: int, or its 4 big-endian bytes
        :param tag: the 12-byte tag when SC & 0x10, else None
        :raises AuthKeyMissingError: a tag is given but no auth key is configured
        :raises TagMismatchError: the tag does not match
        :raises EnvelopeError: the system title is not 8 bytes
        """
        self._set_iv(system_title, frame_counter)
        n = len(ciphertext)
        if tag is not None:
            if self.auth_key is None:
                raise AuthKeyMissingError("telegram is authenticated: set METER_AUTH_KEY")
            native = getattr(self.cipher, "gcm_decrypt_into", None)
            if native is not None and len(tag) == _TAG_LEN:
                aad = bytes([security_byte]) + self.auth_key
                if len(dst) != n:
                    dst = memoryview(dst)[:n]
                if not native(self._j0[:12], aad, ciphertext, tag, dst):
                    raise TagMismatchError("authentication tag mismatch (wrong key or auth key?)")
                return
            s = self._s
            self._tag_into(security_byte, ciphertext, s)
            diff = len(tag) ^ _TAG_LEN
            if not diff:
                for i in range(_TAG_LEN):  # constant time: no early exit
                    diff |= s[i] ^ tag[i]
            if diff:
                raise TagMismatchError("authentication tag mismatch (wrong key or auth key?)")
        if len(dst) != n:
            dst = memoryview(dst)[:n]
        self.cipher.ctr_xcrypt(self._icb, ciphertext, dst)

    def encrypt(self, system_title, frame_counter, security_byte, plaintext):
        """Encrypt (for the simulator and tests).

        :returns: (ciphertext bytes, 12-byte tag), the tag ``b""`` when there is no auth key
        """
        self._set_iv(system_title, frame_counter)
        ct = bytearray(len(plaintext))
        self.cipher.ctr_xcrypt(self._icb, plaintext, ct)
        if self.auth_key is None:
            return bytes(ct), b""
        self._tag_into(security_byte, ct, self._s)
        return bytes(ct), bytes(self._s[:_TAG_LEN])


_HEX = "0123456789abcdefABCDEF"
_SEPARATORS = " \t\r\n,:;-{}[]"


def parse_key(text, setting="METER_KEY"):
    """Parse a 16-byte key written as hex: ``36C6...``, ``36 c6 ...``, ``36:C6``, ``0x36, 0xC6``.

    :param setting: the setting's name, used in the error message (the key never is)
    :returns: 16 bytes
    :raises KeyFormatError: not exactly 16 bytes of hex
    """
    if not isinstance(text, str):
        raise KeyFormatError(setting + " must be a string of 32 hex digits")
    text = text.strip()
    while len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    tokens, tok = [], ""
    for ch in text + " ":
        if ch in _SEPARATORS:
            if tok:
                tokens.append(tok)
                tok = ""
        else:
            tok += ch
    digits = 0
    for tok in tokens:
        body = tok[2:] if tok[:2] in ("0x", "0X") else tok
        for ch in body:
            if ch not in _HEX:
                raise KeyFormatError(setting + " must contain only hex digits 0-9 and A-F")
        if not body or len(body) & 1:
            raise KeyFormatError(setting + " must be hex bytes (two digits each)")
        digits += len(body)
    if digits != 32:
        raise KeyFormatError(f"{setting} must be 32 hex digits (16 bytes), got {digits // 2} bytes")
    out = bytearray(16)
    i = 0
    for tok in tokens:
        body = tok[2:] if tok[:2] in ("0x", "0X") else tok
        for k in range(0, len(body), 2):
            out[i] = int(body[k : k + 2], 16)
            i += 1
    return bytes(out)
