# SPDX-License-Identifier: MIT
"""AES-128 through the ``cryptography`` package (CPython only: the simulator and host tests).

Loaded by ``crypto.new_cipher`` only when this backend is chosen; never on the board.
"""


class CryptographyAes:
    name = "cryptography"

    def __init__(self, key):
        from cryptography.hazmat.primitives.ciphers import (
            Cipher,
            algorithms,
            modes,
        )

        self._cipher, self._ctr_mode = Cipher, modes.CTR
        self._alg = algorithms.AES(bytes(key))
        self._ecb = Cipher(self._alg, modes.ECB()).encryptor()
        self._consts = {}  # blocks per telegram -> integer constants for the counter blocks

    def encrypt_block(self, src, dst):
        dst[:16] = self._ecb.update(bytes(src))

    def ctr_xcrypt(self, icb, src, dst):
        # The counter blocks of a whole telegram are built as one big integer and encrypted in
        # one ECB call: a new CTR cipher object per telegram costs twice as much (measured).
        n = len(src)
        if not n:
            return
        nb = (n + 15) >> 4
        ctr0 = int.from_bytes(bytes(icb[12:16]), "big")
        if ctr0 + nb > 0xFFFFFFFF:  # inc32 would wrap: let the library count
            enc = self._cipher(self._alg, self._ctr_mode(bytes(icb))).encryptor()
            dst[:n] = enc.update(bytes(src))
            return
        consts = self._consts.get(nb)
        if consts is None:
            rep = ones = incs = 0
            for k in range(nb):
                rep |= 1 << (128 * k + 32)
                ones |= 1 << (128 * k)
                incs |= (nb - 1 - k) << (128 * k)
            consts = (rep, ones, incs)
            if len(self._consts) < 16:
                self._consts[nb] = consts
        rep, ones, incs = consts
        iv = int.from_bytes(bytes(icb[:12]), "big")
        blocks = (iv * rep + ctr0 * ones + incs).to_bytes(16 * nb, "big")
        ks = int.from_bytes(self._ecb.update(blocks), "big") >> (8 * (16 * nb - n))
        dst[:n] = (int.from_bytes(bytes(src), "big") ^ ks).to_bytes(n, "big")

    def cbc_decrypt(self, iv, src, dst):
        from cryptography.hazmat.primitives.ciphers import modes

        n = len(src)
        if n:
            dec = self._cipher(self._alg, modes.CBC(bytes(iv))).decryptor()
            dst[:n] = dec.update(bytes(src))

    def gcm_decrypt_into(self, iv, aad, src, tag, dst):
        """Decrypt and verify with the library's GCM (C speed); False if the tag mismatches."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers import modes

        dec = self._cipher(self._alg, modes.GCM(bytes(iv), bytes(tag), 12)).decryptor()
        dec.authenticate_additional_data(aad)
        out = dec.update(bytes(src))
        try:
            dec.finalize()
        except InvalidTag:
            return False
        dst[: len(out)] = out
        return True
