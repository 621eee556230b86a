# SPDX-License-Identifier: MIT
"""Peer decoders (bench/peers.py): which peer decodes which real capture, and correctly.

The matrix below is the current known state with the pinned peer versions: a peer listed for a
capture must decode it to ``expected.values``; a peer not listed must fail (raise). Either change
shows up here.
"""

import importlib.util
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(ROOT), str(HERE)):
    if p not in sys.path:
        sys.path.insert(0, p)

from _support import require  # noqa: E402
from vectors import FRAMES, PLAINTEXT_ONLY, key_bytes  # noqa: E402

from bench import peers  # noqa: E402

_MODULES = {
    "gurux": "gurux_dlms",
    "dlms-cosem": "dlms_cosem",
    "austria-energy": "smartmeter_austria_energy",
}

ALL = {f["id"] for f in FRAMES}
DECODES = {
    "gurux": ALL,
    "dlms-cosem": ALL,
    # HDLC: no support (PeerCannotDecode); Netz NOe 243-byte plaintext: its octet-string bounds
    # check wants 2 bytes past the trailing meter number and raises ValueError.
    "austria-energy": {"tinetz-layout-kaifa-ma309"},
}


def _need(peer):
    """The peers are pinned in requirements-dev.txt: skip locally, fail under CI."""
    require(importlib.util.find_spec(_MODULES[peer]) is not None, peer + " not installed")
    if peer == "austria-energy":
        require(
            importlib.util.find_spec("Crypto") is not None,
            "pycryptodome (undeclared dependency of smartmeter-austria-energy) missing",
        )


def _args(frame):
    return bytes.fromhex(frame["raw_hex"]), key_bytes(frame["key"]), key_bytes(frame["auth_key"])


def _assert_values(got, expected):
    assert set(got) == set(expected)
    for obis, want in expected.items():
        have = got[obis]
        if isinstance(want, str):
            assert have == want, obis
        else:
            assert not isinstance(have, str), obis
            assert have == pytest.approx(want, rel=1e-9, abs=1e-12), obis


CASES = [(peer, f) for peer in peers.PEERS for f in FRAMES]


@pytest.mark.parametrize("peer,frame", CASES, ids=[p + ":" + f["id"] for p, f in CASES])
def test_matrix(peer, frame):
    _need(peer)
    decode = peers.PEERS[peer]
    raw, key, auth_key = _args(frame)
    if frame["id"] in DECODES[peer]:
        _assert_values(decode(raw, key, auth_key), frame["expected"]["values"])
        # a second call gives the same result (no state carried between telegrams)
        _assert_values(decode(raw, key, auth_key), frame["expected"]["values"])
    else:
        with pytest.raises(Exception):
            decode(raw, key, auth_key)


def test_stages_documented_for_every_peer():
    assert set(peers.PEER_STAGES) == set(peers.PEERS) == set(DECODES)
    for text in peers.PEER_STAGES.values():
        assert "We do" in text and "does" in text


@pytest.mark.parametrize("peer", sorted(peers.PEERS))
def test_wrong_key_raises(peer):
    _need(peer)
    for frame in FRAMES:
        if frame["id"] not in DECODES[peer]:
            continue
        raw, key, auth_key = _args(frame)
        wrong = bytes(b ^ 0x5A for b in key)
        with pytest.raises(Exception):
            peers.PEERS[peer](raw, wrong, auth_key)


def _tampered_tag(frame_id):
    from dlms_cosem.hdlc.frames import FCS

    frame = next(f for f in FRAMES if f["id"] == frame_id)
    raw, key, auth_key = _args(frame)
    raw = bytearray(raw)
    raw[-5] ^= 0x01  # last byte of the GCM tag (before FCS and flag)
    raw[-3:-1] = FCS.calculate_for(bytes(raw[1:-3]))
    return bytes(raw), key, auth_key, frame["expected"]["values"]


def test_dlms_cosem_rejects_tampered_tag():
    _need("dlms-cosem")
    raw, key, auth_key, _ = _tampered_tag("burgenland-lg-e450-1")
    with pytest.raises(Exception, match="tag"):
        peers.decode_dlms_cosem(raw, key, auth_key)


def test_gurux_does_not_check_tag():
    """Known gurux-dlms behaviour recorded in PEER_STAGES: the GCM tag of a push is not verified."""
    _need("gurux")
    raw, key, auth_key, expected = _tampered_tag("burgenland-lg-e450-1")
    _assert_values(peers.decode_gurux(raw, key, auth_key), expected)


@pytest.mark.parametrize("frame", PLAINTEXT_ONLY, ids=[f["id"] for f in PLAINTEXT_ONLY])
def test_map_layout_on_plaintexts(frame):
    _need("dlms-cosem")
    from dlms_cosem import utils
    from dlms_cosem.protocol.xdlms import DataNotification

    body = DataNotification.from_bytes(bytes.fromhex(frame["plaintext_hex"])).body
    _assert_values(peers.map_layout(utils.parse_as_dlms_data(body)), frame["expected"]["values"])


def test_map_layout_rejects_non_structure():
    with pytest.raises(ValueError):
        peers.map_layout(42)
    with pytest.raises(ValueError):
        peers.map_layout([b"\x07\xe5\x09\x1b\x01\x09\x2f\x0f\x00\xff\x88\x80"])
