"""The decoding core against every real capture, plus one synthetic test per quirk and error."""

import json
import subprocess
import sys

import pytest
from vectors import FRAMES, PLAINTEXT_ONLY, ROOT, by_id

import smartmeter
from sim import frames, telegrams
from smartmeter.protocol import reading as r
from smartmeter.protocol.crypto import Gcm
from smartmeter.protocol.dlms import Decoder
from smartmeter.protocol.errors import (
    AuthKeyMissingError,
    DuplicateError,
    EnvelopeError,
    LayoutError,
    ParseError,
    TagMismatchError,
    WrongKeyError,
)
from smartmeter.protocol.pipeline import Pipeline

KEY = bytes(range(16))
AUTH = bytes(range(16, 32))
TITLE = b"KFMgP\x00\x08\x81"
FIELDS = (2024, 3, 31, 12, 0, 5)


def _check(reading, expected):
    assert reading.values == expected["values"]
    assert reading.iso_time() == expected["meter_time"]
    for name in expected["values"]:
        c, d = name.split(":")[1].split(".")[:2]
        if name.startswith("1-0:") and c in ("1", "2", "3", "4") and d in ("7", "8"):
            assert isinstance(reading.values[name], int), name  # energy and power stay integers
    if "system_title" in expected:
        assert bytes(reading.system_title).hex().upper() == expected["system_title"]
        assert reading.frame_counter == expected["frame_counter"]


@pytest.mark.parametrize("frame", FRAMES, ids=[f["id"] for f in FRAMES])
def test_real_capture_decodes_exactly(frame):
    results = smartmeter.decode(
        bytes.fromhex(frame["raw_hex"]), frame["key"], frame.get("auth_key")
    )
    assert len(results) == 1, results
    reading = results[0]
    assert isinstance(reading, r.Reading), reading
    _check(reading, frame["expected"])
    want = "encrypted+authenticated" if frame.get("auth_key") else "encrypted"
    assert reading.security == want


@pytest.mark.parametrize(
    "frame", FRAMES + PLAINTEXT_ONLY, ids=[f["id"] for f in FRAMES + PLAINTEXT_ONLY]
)
def test_real_plaintext_decodes_exactly(frame):
    reading = Decoder().decode_apdu(bytes.fromhex(frame["plaintext_hex"]))
    _check(reading, {k: v for k, v in frame["expected"].items() if k != "system_title"})


def test_derived_power_factor_is_kept_apart_from_the_meters():
    frame = by_id("netznoe-kaifa-ma309m-real")
    reading = smartmeter.decode(bytes.fromhex(frame["raw_hex"]), frame["key"])[0]
    assert reading.values[r.POWER_FACTOR] == 0.968  # as the meter sent it
    assert reading.derived[r.DERIVED_PF] == 0.7  # 1055 W / sum(U*I) = 1507.6 VA
    assert reading.derived[r.APPARENT_POWER] == 1507.6


def _values(**extra):
    v = {
        r.A_PLUS: 1340436,
        r.A_MINUS: 5,
        r.P_PLUS: 1055,
        r.P_MINUS: 0,
        r.U_L1: 234.5,
        r.U_L2: 233.4,
        r.U_L3: 233.7,
        r.I_L1: 3.83,
        r.I_L2: 1.69,
        r.I_L3: 0.92,
        r.POWER_FACTOR: 0.968,
        r.R_PLUS: 10,
        r.R_MINUS: 20,
        r.METER_NUMBER: "181220002177",
    }
    v.update(extra)
    return v


def _stream(layout="netznoe", fc=1, key=KEY, security=0x20, auth=None, values=None, **kw):
    apdu = telegrams.plaintext(layout, values or _values(), FIELDS, 120, True, fc, **kw)
    payload = telegrams.envelope(apdu, key, TITLE, fc, security, auth)
    return frames.mbus_frames(payload)


def _decode(data, key=KEY, auth=None):
    return smartmeter.decode(data, key, auth)


def test_t210_length_overflow_frame_decodes():
    apdu = telegrams.plaintext("netznoe", _values(), FIELDS, 120, True, 7)
    payload = telegrams.envelope(apdu, KEY, b"SAG\x01\x02\x03\x04\x05", 7)
    wire = frames.mbus_frames(payload, t210_overflow=True)
    assert wire[:4] == b"\x68\x01\x01\x68"
    (reading,) = _decode(wire)
    assert reading.values[r.A_PLUS] == 1340436
    assert reading.maker == "SAG"


def test_t210_signed_power_factor():
    wire = _stream(values=_values(**{r.POWER_FACTOR: -0.309}), pf_signed=True)
    (reading,) = _decode(wire)
    assert reading.values[r.POWER_FACTOR] == -0.309


def test_vkw_style_only_l1_and_no_power_factor_is_absent_not_zero():
    values = _values()
    for k in (r.U_L2, r.U_L3, r.I_L2, r.I_L3, r.POWER_FACTOR):
        del values[k]
    (reading,) = _decode(_stream("tinetz", values=values))
    assert reading.layout == "tinetz"
    for k in (r.U_L2, r.U_L3, r.I_L2, r.I_L3, r.POWER_FACTOR):
        assert k not in reading.values
    assert reading.values[r.U_L1] == 234.5
    assert reading.derived[r.APPARENT_POWER] == round(234.5 * 3.83, 1)


@pytest.mark.parametrize("layout", ["netznoe", "tinetz", "burgenland", "kng", "obis-pairs"])
def test_each_layout_round_trips_and_is_detected(layout):
    (reading,) = _decode(_stream(layout))
    assert reading.layout == layout
    assert reading.values[r.A_PLUS] == 1340436
    assert reading.values[r.P_PLUS] == 1055
    assert reading.meter_time == FIELDS


def test_forced_layout_setting_is_used():
    data = _stream("netznoe")
    (reading,) = smartmeter.decode(data, KEY, layout="netznoe")
    assert reading.layout == "netznoe"


def test_wrong_key_is_reported_as_wrong_key():
    (err,) = _decode(_stream(), key=bytes(16))
    assert isinstance(err, WrongKeyError)
    assert "wrong key" in str(err)


def test_flipped_bit_is_a_checksum_error_not_a_reading():
    wire = bytearray(_stream())
    wire[40] ^= 0x04
    results = _decode(bytes(wire))
    assert all(not isinstance(x, r.Reading) for x in results)
    assert results and results[0].stage == "framing"


def test_flipped_bit_in_tagged_telegram_is_a_tag_mismatch():
    apdu = telegrams.plaintext("netznoe", _values(), FIELDS, 120, True, 3)
    payload = bytearray(telegrams.envelope(apdu, KEY, TITLE, 3, 0x30, AUTH))
    payload[60] ^= 0x01
    dec = Decoder(Gcm(KEY, AUTH))
    with pytest.raises(TagMismatchError):
        dec.decode(bytes(payload))
    assert dec.tag_mismatch == 1


def test_tagged_telegram_without_auth_key_decodes_marked_unchecked():
    # auth key policy: no METER_AUTH_KEY -> decrypted anyway, marked, counted; with it: verified
    wire = _stream(security=0x30, auth=AUTH)
    got, errors = [], []
    pipe = Pipeline(KEY, None, got.append, errors.append)
    pipe.feed(wire)
    (reading,) = got
    assert not errors
    assert reading.security == r.SECURITY_UNCHECKED == "encrypted, tag not checked"
    assert reading.tag_unchecked and reading.values[r.A_PLUS] == 1340436
    assert pipe.decoder.auth_key_missing == 1
    (ok,) = _decode(wire, auth=AUTH)
    assert ok.security == "encrypted+authenticated" and not ok.tag_unchecked
    # without the auth key the inner checks still reject garbage: a wrong key is a wrong key
    (err,) = _decode(wire, key=bytes(16))
    assert isinstance(err, WrongKeyError)


def test_no_meter_key_is_a_clear_error():
    (err,) = _decode(_stream(), key=None)
    assert isinstance(err, AuthKeyMissingError)


def test_wrong_auth_key_is_a_tag_mismatch():
    (err,) = _decode(_stream(security=0x30, auth=AUTH), auth=bytes(16))
    assert isinstance(err, TagMismatchError)


def test_duplicate_counter_dropped_and_decreasing_counter_reported():
    got, errors = [], []
    pipe = Pipeline(KEY, None, got.append, errors.append)
    pipe.feed(_stream(fc=10))
    pipe.feed(_stream(fc=10))
    assert len(got) == 1 and isinstance(errors[0], DuplicateError)
    assert pipe.decoder.duplicates == 1
    pipe.feed(_stream(fc=11))
    pipe.feed(_stream(fc=2))  # meter replaced or reset
    assert [x.frame_counter for x in got] == [10, 11, 2]
    assert pipe.decoder.counter_resets == 1


def test_envelope_errors():
    dec = Decoder(Gcm(KEY))
    payload = bytearray(telegrams.envelope(b"\x0f" * 20, KEY, TITLE, 1))
    bad_len = bytearray(payload)
    bad_len[10] += 1
    with pytest.raises(EnvelopeError):
        dec.decode(bytes(bad_len))
    bad_title = bytearray(payload)
    bad_title[1] = 7
    with pytest.raises(EnvelopeError):
        dec.decode(bytes(bad_title))
    with pytest.raises(EnvelopeError):
        dec.decode(b"\xdb\x08")
    assert dec.envelope_errors == 3


def test_unknown_layout_and_bad_axdr():
    dec = Decoder()
    body = telegrams.structure(telegrams.u16(1), telegrams.octets(b"x"))
    apdu = telegrams.data_notification(1, telegrams.datetime_bytes(FIELDS), body)
    with pytest.raises(LayoutError):
        dec.decode_apdu(apdu)
    with pytest.raises(ParseError):
        dec.decode_apdu(apdu[:-1])
    with pytest.raises(ParseError):
        dec.decode_apdu(apdu + b"\x00")  # trailing bytes
    with pytest.raises(ParseError):
        dec.decode_apdu(apdu[:18] + b"\x02\x82\xff\xff")  # count beyond the data


def test_datetime_deviation_and_unspecified_fields():
    dt = bytearray(telegrams.datetime_bytes(FIELDS, None))
    dt[7] = 0xFF  # seconds unspecified
    dt[8] = 0xFF  # hundredths unspecified
    apdu = telegrams.data_notification(1, bytes(dt), telegrams.body_burgenland(_values()))
    reading = Decoder().decode_apdu(apdu)
    assert reading.utc_offset is None and reading.iso_time() == "2024-03-31T12:00:00"
    with pytest.raises(WrongKeyError):
        Decoder().decode_apdu(apdu[:8] + b"\x0d" + apdu[9:])  # month 13, no tag


def test_cli_decodes_a_capture_and_reports_failures(tmp_path):
    frame = by_id("netznoe-kaifa-ma309m-real")
    raw = frame["raw_hex"]
    spaced = " ".join(raw[i : i + 2].lower() for i in range(0, len(raw), 2))
    path = tmp_path / "dump.txt"
    path.write_text("# a capture\n" + spaced + "\n")
    cmd = [sys.executable, "-m", "smartmeter", "decode", "--key", frame["key"], str(path)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=False)
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout.strip())
    assert obj["system_title"] == "4B464D6750000881"
    assert obj["frame_counter"] == 24581
    assert obj["meter_time"] == "2022-02-04T16:43:20+01:00"
    assert obj["security"] == "encrypted" and obj["layout"] == "netznoe"
    assert obj["values"]["1-0:1.8.0"] == 1340436
    assert obj["values"]["0-0:96.1.0"] == "181220002177"
    assert obj["derived"]["power_factor"] == 0.7
    # wrong key: one line on stderr naming the stage, non-zero exit, key never echoed
    bad = "00" * 16
    out = subprocess.run(cmd[:5] + [bad, str(path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1 and out.stdout == ""
    assert "wrong_key" in out.stderr and bad not in out.stderr
    # a key that is not 16 bytes names the setting and never echoes it
    out = subprocess.run(cmd[:5] + ["ABCDEF", str(path)], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 2 and "ABCDEF" not in out.stderr and "key" in out.stderr


def test_cli_plaintext_and_stdin():
    frame = by_id("vkw-kaifa-ma309mh4-plain")
    cmd = [sys.executable, "-m", "smartmeter", "decode", "--plaintext", "-"]
    out = subprocess.run(
        cmd, input=frame["plaintext_hex"], capture_output=True, text=True, cwd=ROOT
    )
    assert out.returncode == 0, out.stderr
    obj = json.loads(out.stdout)
    assert obj["values"] == frame["expected"]["values"] and obj["security"] == "plain"
    out = subprocess.run(cmd, input="", capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 1
