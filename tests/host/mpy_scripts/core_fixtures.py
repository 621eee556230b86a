# Runs INSIDE the MicroPython VM: every real capture through the core, compared exactly.
import json
import sys

from smartmeter.protocol.dlms import Decoder
from smartmeter.protocol.errors import MeterError, WrongKeyError
from smartmeter.protocol.pipeline import decode

with open("frames.json") as f:
    data = json.load(f)

failures = 0
checked = 0


def compare(name, reading, expected):
    global failures, checked
    checked += 1
    if reading.values != expected["values"] or reading.iso_time() != expected["meter_time"]:
        failures += 1
        print("MISMATCH", name, reading.values, reading.iso_time())
    if "system_title" in expected:
        if reading.system_title.hex().upper() != expected["system_title"]:
            failures += 1
            print("TITLE", name)
        if reading.frame_counter != expected["frame_counter"]:
            failures += 1
            print("COUNTER", name)


for frame in data["frames"]:
    raw = bytes.fromhex(frame["raw_hex"])
    results = decode(raw, frame["key"], frame["auth_key"])
    if len(results) != 1 or isinstance(results[0], MeterError):
        failures += 1
        print("FAILED", frame["id"], results)
        continue
    compare(frame["id"], results[0], frame["expected"])
    # the learned fast path gives the same answer
    dec = Decoder()
    pt = bytes.fromhex(frame["plaintext_hex"])
    first = dec.decode_apdu(pt)
    dec.decode_apdu(pt)  # the second telegram of a length is the one learned
    second = dec.decode_apdu(pt)
    if dec.fast != 1 or first.values != second.values:
        failures += 1
        print("FASTPATH", frame["id"])
    # a wrong key is reported as such
    wrong = decode(raw, "00" * 16, frame["auth_key"])
    if not wrong or not isinstance(wrong[0], MeterError):
        failures += 1
        print("WRONGKEY", frame["id"], wrong)
    elif not frame["auth_key"] and not isinstance(wrong[0], WrongKeyError):
        failures += 1
        print("WRONGKEY-CLASS", frame["id"], wrong[0])

for frame in data["plaintext_only"]:
    reading = Decoder().decode_apdu(bytes.fromhex(frame["plaintext_hex"]))
    compare(frame["id"], reading, frame["expected"])

print("checked", checked, "failures", failures)
sys.exit(1 if failures else 0)
