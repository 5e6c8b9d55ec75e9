"""Reads iperf3 -J output on stdin; prints received bytes/s and bytes, or fails with iperf3's error."""
import json
import sys

doc = json.load(sys.stdin)
if "error" in doc:
    sys.exit(f"iperf3: {doc['error']}")
s = doc["end"]["sum_received"]
print(s["bits_per_second"] / 8, s["bytes"])
