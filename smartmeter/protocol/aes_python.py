# SPDX-License-Identifier: MIT
"""Pure-Python AES-128 (encryption, and decryption for CBC): the fallback where neither aesio
nor ``cryptography`` exists (e.g. the MicroPython VM of the tests and benches).

Loaded by ``crypto.new_cipher`` only when this backend is chosen; the board uses aesio.
"""

_SBOX = None
_X2 = None
_INV = None  # inverse S-box, built on first CBC use
_INV_SHIFT = tuple(4 * (((i >> 2) - (i & 3)) & 3) + (i & 3) for i in range(16))


def _aes_tables():
    """Build the S-box and the multiply-by-2 table once (GF(2^8) generator walk)."""
    global _SBOX, _X2
    if _SBOX is not None:
        return
    x2 = bytearray(256)
    for a in range(256):
        x2[a] = ((a << 1) ^ (0x1B if a & 0x80 else 0)) & 0xFF
    sbox = bytearray(256)
    p = q = 1
    while True:
        p ^= x2[p]  # p * 3
        q ^= q << 1  # q / 3
        q ^= q << 2
        q ^= q << 4
        q &= 0xFF
        if q & 0x80:
            q ^= 0x09
        r = q
        for s in (1, 2, 3, 4):
            r ^= ((q << s) | (q >> (8 - s))) & 0xFF
        sbox[p] = r ^ 0x63
        if p == 1:
            break
    sbox[0] = 0x63
    _SBOX, _X2 = bytes(sbox), bytes(x2)


class PyAes:
    """AES-128 encryption in Python: 16 small-int locals per round, no allocation per block."""

    name = "python"

    def __init__(self, key):
        _aes_tables()
        sb, rk, rcon = _SBOX, list(key), 1
        for i in range(16, 176, 4):
            t0, t1, t2, t3 = rk[i - 4], rk[i - 3], rk[i - 2], rk[i - 1]
            if not i & 15:
                t0, t1, t2, t3 = sb[t1] ^ rcon, sb[t2], sb[t3], sb[t0]
                rcon = _X2[rcon]
            rk.append(rk[i - 16] ^ t0)
            rk.append(rk[i - 15] ^ t1)
            rk.append(rk[i - 14] ^ t2)
            rk.append(rk[i - 13] ^ t3)
        self._rk = rk
        self._ctr = bytearray(16)
        self._ks = bytearray(16)
        self._st = bytearray(16)
        self._tmp = bytearray(16)

    def encrypt_block(self, src, dst):
        rk, S, X2 = self._rk, _SBOX, _X2
        s0, s1, s2 = src[0] ^ rk[0], src[1] ^ rk[1], src[2] ^ rk[2]
        s3 = src[3] ^ rk[3]
        s4, s5, s6 = src[4] ^ rk[4], src[5] ^ rk[5], src[6] ^ rk[6]
        s7, s8, s9 = src[7] ^ rk[7], src[8] ^ rk[8], src[9] ^ rk[9]
        s10, s11, s12 = src[10] ^ rk[10], src[11] ^ rk[11], src[12] ^ rk[12]
        s13, s14, s15 = src[13] ^ rk[13], src[14] ^ rk[14], src[15] ^ rk[15]
        o = 16
        for _ in range(9):
            # SubBytes + ShiftRows: column c takes rows from columns c, c+1, c+2, c+3.
            a0, a1, a2 = S[s0], S[s5], S[s10]
            a3 = S[s15]
            a4, a5, a6 = S[s4], S[s9], S[s14]
            a7, a8, a9 = S[s3], S[s8], S[s13]
            a10, a11, a12 = S[s2], S[s7], S[s12]
            a13, a14, a15 = S[s1], S[s6], S[s11]
            # MixColumns: out_i = a_i ^ t ^ 2*(a_i ^ a_i+1), t = xor of the column; + round key.
            t = a0 ^ a1 ^ a2 ^ a3
            s0 = a0 ^ t ^ X2[a0 ^ a1] ^ rk[o]
            s1 = a1 ^ t ^ X2[a1 ^ a2] ^ rk[o + 1]
            s2 = a2 ^ t ^ X2[a2 ^ a3] ^ rk[o + 2]
            s3 = a3 ^ t ^ X2[a3 ^ a0] ^ rk[o + 3]
            t = a4 ^ a5 ^ a6 ^ a7
            s4 = a4 ^ t ^ X2[a4 ^ a5] ^ rk[o + 4]
            s5 = a5 ^ t ^ X2[a5 ^ a6] ^ rk[o + 5]
            s6 = a6 ^ t ^ X2[a6 ^ a7] ^ rk[o + 6]
            s7 = a7 ^ t ^ X2[a7 ^ a4] ^ rk[o + 7]
            t = a8 ^ a9 ^ a10 ^ a11
            s8 = a8 ^ t ^ X2[a8 ^ a9] ^ rk[o + 8]
            s9 = a9 ^ t ^ X2[a9 ^ a10] ^ rk[o + 9]
            s10 = a10 ^ t ^ X2[a10 ^ a11] ^ rk[o + 10]
            s11 = a11 ^ t ^ X2[a11 ^ a8] ^ rk[o + 11]
            t = a12 ^ a13 ^ a14 ^ a15
            s12 = a12 ^ t ^ X2[a12 ^ a13] ^ rk[o + 12]
            s13 = a13 ^ t ^ X2[a13 ^ a14] ^ rk[o + 13]
            s14 = a14 ^ t ^ X2[a14 ^ a15] ^ rk[o + 14]
            s15 = a15 ^ t ^ X2[a15 ^ a12] ^ rk[o + 15]
            o += 16
        dst[0], dst[1], dst[2] = S[s0] ^ rk[160], S[s5] ^ rk[161], S[s10] ^ rk[162]
        dst[3], dst[4], dst[5] = S[s15] ^ rk[163], S[s4] ^ rk[164], S[s9] ^ rk[165]
        dst[6], dst[7], dst[8] = S[s14] ^ rk[166], S[s3] ^ rk[167], S[s8] ^ rk[168]
        dst[9], dst[10], dst[11] = S[s13] ^ rk[169], S[s2] ^ rk[170], S[s7] ^ rk[171]
        dst[12], dst[13], dst[14] = S[s12] ^ rk[172], S[s1] ^ rk[173], S[s6] ^ rk[174]
        dst[15] = S[s11] ^ rk[175]

    def decrypt_block(self, src, dst):
        """The inverse cipher (FIPS-197 5.3), byte-wise: used for CBC only (AMIS, 5 blocks)."""
        global _INV
        if _INV is None:
            inv = bytearray(256)
            for i in range(256):
                inv[_SBOX[i]] = i
            _INV = bytes(inv)
        rk, INV, X2, sh = self._rk, _INV, _X2, _INV_SHIFT
        st = self._st
        for i in range(16):
            st[i] = src[i] ^ rk[160 + i]
        t = self._tmp
        o = 144
        while True:
            for i in range(16):  # InvShiftRows + InvSubBytes + AddRoundKey
                t[i] = INV[st[sh[i]]] ^ rk[o + i]
            if not o:
                break
            for c in range(0, 16, 4):  # InvMixColumns = a 4x pre-step, then MixColumns
                a0, a1, a2, a3 = t[c], t[c + 1], t[c + 2], t[c + 3]
                u = X2[X2[a0 ^ a2]]
                v = X2[X2[a1 ^ a3]]
                a0 ^= u
                a1 ^= v
                a2 ^= u
                a3 ^= v
                x = a0 ^ a1 ^ a2 ^ a3
                st[c] = a0 ^ x ^ X2[a0 ^ a1]
                st[c + 1] = a1 ^ x ^ X2[a1 ^ a2]
                st[c + 2] = a2 ^ x ^ X2[a2 ^ a3]
                st[c + 3] = a3 ^ x ^ X2[a3 ^ a0]
            o -= 16
        for i in range(16):
            dst[i] = t[i]

    def cbc_decrypt(self, iv, src, dst):
        n = len(src)
        prev = self._ctr  # scratch: the previous ciphertext block (or the IV)
        blk = self._ks
        for i in range(16):
            prev[i] = iv[i]
        for p in range(0, n - n % 16, 16):
            self.decrypt_block(src[p : p + 16], blk)
            for i in range(16):
                c = src[p + i]
                dst[p + i] = blk[i] ^ prev[i]
                prev[i] = c

    def ctr_xcrypt(self, icb, src, dst):
        ctr, ks = self._ctr, self._ks
        n, p = len(src), 0
        for i in range(16):
            ctr[i] = icb[i]
        while p < n:
            self.encrypt_block(ctr, ks)
            m = min(16, n - p)
            for i in range(m):
                dst[p + i] = src[p + i] ^ ks[i]
            p += m
            i = 15  # 128-bit big-endian increment, like aesio and cryptography
            while i >= 0:
                ctr[i] = (ctr[i] + 1) & 0xFF
                if ctr[i]:
                    break
                i -= 1
