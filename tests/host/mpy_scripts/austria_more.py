# Runs INSIDE the MicroPython VM: every capture of austria-more.json through the core, exactly.
import json
import sys

from smartmeter.protocol.dlms import Decoder
from smartmeter.protocol.errors import MeterError, WrongKeyError
from smartmeter.protocol.pipeline import decode

with open("more.json") as f:
    frames = json.load(f)["frames"]

UNSCALED = ("1-0:31.7.0", "1-0:51.7.0", "1-0:71.7.0", "1-0:32.7.0", "1-0:52.7.0", "1-0:72.7.0")
failures = 0
checked = 0
for frame in frames:
    exp = frame["expected"]
    results = decode(bytes.fromhex(frame["raw_hex"]), frame["key"], frame["auth_key"])
    if len(results) != 1 or isinstance(results[0], MeterError):
        failures += 1
        print("FAILED", frame["id"], results)
        continue
    reading = results[0]
    values = dict(reading.values)
    if frame["id"].startswith("klu-"):
        for k in UNSCALED:
            values.pop(k)
    checked += 1
    if values != exp["values"]:
        failures += 1
        print("MISMATCH", frame["id"], values)
    if "meter_time" in exp and reading.iso_time() != exp["meter_time"]:
        failures += 1
        print("TIME", frame["id"], reading.iso_time())
    title = reading.system_title.hex().upper() if reading.system_title else None
    if title != exp["system_title"] or reading.frame_counter != exp["frame_counter"]:
        failures += 1
        print("TITLE/COUNTER", frame["id"], title, reading.frame_counter)
    for k, v in values.items():
        c, d = k.split(":")[1].split(".")[:2]
        energy = k.startswith("1-0:") and c in ("1", "2", "3", "4") and d in ("7", "8")
        if energy and not isinstance(v, int):
            failures += 1
            print("NOT-INT", frame["id"], k)
    # the learned fast path gives the same answer (DLMS and DSMR plaintext)
    if frame["transport"] != "mbus-amis":
        dec = Decoder()
        pt = bytes.fromhex(frame["plaintext_hex"])
        first = dec.decode_plain(pt)
        dec.decode_plain(pt)  # DLMS: the second telegram of a length is the one learned
        second = dec.decode_plain(pt)
        if dec.fast != 1 or first.values != second.values:
            failures += 1
            print("FASTPATH", frame["id"])
    # a wrong key is reported as such (never values)
    wrong = decode(
        bytes.fromhex(frame["raw_hex"]), "00" * 16 if frame["key"][0] != "0" else "11" * 16
    )
    if len(wrong) != 1 or not isinstance(wrong[0], WrongKeyError):
        failures += 1
        print("WRONGKEY", frame["id"], wrong)

print("checked", checked, "failures", failures)
sys.exit(1 if failures else 0)
