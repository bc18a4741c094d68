#!/usr/bin/env python3
"""Regenerates the RTP captures that the sipp scenarios play (fixtures/sipp/pcap/).

sipp's `<exec play_pcap_audio="..."/>` reads a pcap of Ethernet/IPv4/UDP/RTP packets
and sends each UDP payload (the RTP packet, header included, unchanged) from its media
socket to the remote media address of the call, at the pcap's packet times. So the
addresses below are placeholders; what matters is the RTP: payload type, sequence
numbers, timestamps, marker bits and the packet times.

Output (deterministic: same bytes on every run, no clock, no randomness):
  dtmf-<keys>.pcap  RFC 4733 telephone-event (payload type 101, 8000 Hz) for each of
                    the demo deployment's key sequences (conference IDs and PINs, each
                    followed by #, and # alone). Per key, RFC 4733 §2.5 style: a start
                    packet with the marker bit, continuation packets every 20 ms with
                    the growing duration, three end packets (E bit) with the final
                    duration, all carrying the key's start timestamp; 100 ms pauses
                    between keys.
  pcmu-440hz-5s.pcap  G.711 mu-law (payload type 0) 440 Hz sine, 5 s, 20 ms packets.
  pcmu-440hz-dtmf-1.pcap  The called party of a dial-out: the same 440 Hz sine for
                    3 s, then the key 1 as RFC 4733 events in the same stream (same
                    SSRC, sequence numbers and timestamps running on; the audio pauses
                    while the key sounds), then the sine again for 3 s.

Each capture has its own SSRC, sequence-number base and timestamp base, spread far
apart, so two captures played one after the other in a call (the ID, then `#`) are
never taken by the receiver for late or repeated packets of the previous one.

Python 3 standard library only. Usage: scripts/make-pcaps.py [output-dir]
"""

import math
import os
import struct
import sys

RATE = 8000
FRAME = 160  # samples per 20 ms packet
TELEPHONE_EVENT_PT = 101
PCMU_PT = 0
VOLUME = 10  # -10 dBm0, RFC 4733 §2.3.4
KEY_MS = 100  # how long each key is held
GAP_MS = 100  # silence between keys
END_PACKETS = 3  # RFC 4733 §2.5.1.4: the end packet is sent three times
EPOCH = 1_700_000_000  # pcap packet times start here (any fixed value)

SRC_MAC = bytes.fromhex("020000000001")
DST_MAC = bytes.fromhex("020000000002")
SRC_IP = bytes([127, 0, 0, 20])
DST_IP = bytes([127, 0, 0, 1])
SRC_PORT = 6000
DST_PORT = 20000

# The demo deployment's key sequences (shared/DEMO.md): conference IDs and leader PINs
# followed by #, and # alone (the participant's answer to "enter your PIN or press #").
DTMF_SEQUENCES = [
    "123456789#",  # adele@contoso.com's conference ID
    "#",
    "987654321#",  # megan@contoso.com's conference ID
    "24680#",  # megan's leader PIN
    "555000111#",  # ravi@fabrikam.com's conference ID
    "13579#",  # adele's leader PIN
]

EVENT_CODES = {**{str(d): d for d in range(10)}, "*": 10, "#": 11}


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of an IPv4 header."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def frame(rtp: bytes, ident: int) -> bytes:
    """An Ethernet II frame carrying `rtp` in IPv4/UDP (UDP checksum 0: not computed)."""
    udp = struct.pack("!HHHH", SRC_PORT, DST_PORT, 8 + len(rtp), 0) + rtp
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x45,  # version 4, 5-word header
        0,
        20 + len(udp),
        ident & 0xFFFF,
        0x4000,  # don't fragment
        64,  # TTL
        17,  # UDP
        0,
        SRC_IP,
        DST_IP,
    )
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return DST_MAC + SRC_MAC + b"\x08\x00" + header + udp


def rtp(pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes) -> bytes:
    """An RTP packet (RFC 3550 §5.1): version 2, no padding, extension or CSRCs."""
    return (
        struct.pack(
            "!BBHII",
            0x80,
            (0x80 if marker else 0) | pt,
            seq & 0xFFFF,
            ts & 0xFFFFFFFF,
            ssrc,
        )
        + payload
    )


def pcap(packets) -> bytes:
    """A classic pcap file (LINKTYPE_ETHERNET, microsecond times) of (time_us, frame)."""
    out = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    for time_us, data in packets:
        sec, usec = divmod(time_us, 1_000_000)
        out += struct.pack("<IIII", EPOCH + sec, usec, len(data), len(data))
        out += data
    return bytes(out)


def dtmf_packets(keys: str, index: int):
    """RFC 4733 packets for `keys`: (time_us, frame) in sending order."""
    ssrc = 0x44540000 + index
    seq = 1000 + index * 8000
    ts_base = 1_000_000 * (index + 1)
    key_units = KEY_MS * RATE // 1000
    packets = []
    start_ms = 0
    for key in keys:
        code = EVENT_CODES[key]
        ts = ts_base + start_ms * RATE // 1000
        # Start and continuation packets, one per 20 ms of the press.
        for n, duration in enumerate(range(FRAME, key_units + 1, FRAME)):
            payload = struct.pack("!BBH", code, VOLUME, duration)
            at_us = (start_ms + n * 20) * 1000
            packets.append((at_us, rtp(TELEPHONE_EVENT_PT, n == 0, seq, ts, ssrc, payload)))
            seq += 1
        # Three end packets with the final duration, 20 ms apart after the press.
        for n in range(END_PACKETS):
            payload = struct.pack("!BBH", code, 0x80 | VOLUME, key_units)
            at_us = (start_ms + KEY_MS + n * 20) * 1000
            packets.append((at_us, rtp(TELEPHONE_EVENT_PT, False, seq, ts, ssrc, payload)))
            seq += 1
        start_ms += KEY_MS + GAP_MS
    return [(t, frame(p, i)) for i, (t, p) in enumerate(packets)]


def mulaw(sample: int) -> int:
    """G.711 mu-law encoding of a 16-bit linear sample (ITU-T G.711, as in Sun's g711.c)."""
    bias, clip = 0x84, 32635
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), clip) + bias
    exponent = 7
    mask = 0x4000
    while exponent > 0 and not magnitude & mask:
        exponent -= 1
        mask >>= 1
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


def tone_packets(hz: float, seconds: int, amplitude: int, index: int):
    """PCMU packets of a sine tone: (time_us, frame), one per 20 ms."""
    ssrc = 0x544F0000 + index
    seq = 1000 + index * 8000
    ts = 1_000_000 * (index + 1)
    packets = []
    for n in range(seconds * RATE // FRAME):
        payload = sine_payload(hz, amplitude, n * FRAME)
        packet = rtp(PCMU_PT, n == 0, seq + n, ts + n * FRAME, ssrc, payload)
        packets.append((n * 20_000, frame(packet, n)))
    return packets


def sine_payload(hz: float, amplitude: int, first_sample: int) -> bytes:
    """One 20 ms PCMU payload of a sine, starting at sample `first_sample`."""
    return bytes(
        mulaw(round(amplitude * math.sin(2 * math.pi * hz * (first_sample + i) / RATE)))
        for i in range(FRAME)
    )


def tone_key_tone_packets(hz: float, before_s: int, key: str, after_s: int, amplitude: int, index: int):
    """A sine, one key as RFC 4733 events, the sine again, in one RTP stream:
    (time_us, frame). Timestamps follow the packet times (one frame is 160 units and
    20 ms); the key's packets carry the timestamp of its start, the sine resumes with
    the marker bit 200 ms after it (the key held 100 ms, its three end packets, a pause)."""
    ssrc = 0x4B450000 + index
    seq = 1000 + index * 8000
    ts0 = 1_000_000 * (index + 1)
    code = EVENT_CODES[key]
    key_units = KEY_MS * RATE // 1000
    packets = []  # (frame number, rtp)

    def audio(n: int, marker: bool) -> None:
        nonlocal seq
        payload = sine_payload(hz, amplitude, n * FRAME)
        packets.append((n, rtp(PCMU_PT, marker, seq, ts0 + n * FRAME, ssrc, payload)))
        seq += 1

    before = before_s * RATE // FRAME
    for n in range(before):
        audio(n, n == 0)
    start = before  # the key starts where the next frame would
    ts = ts0 + start * FRAME
    for i, duration in enumerate(range(FRAME, key_units + 1, FRAME)):
        payload = struct.pack("!BBH", code, VOLUME, duration)
        packets.append((start + i, rtp(TELEPHONE_EVENT_PT, i == 0, seq, ts, ssrc, payload)))
        seq += 1
    for i in range(END_PACKETS):
        payload = struct.pack("!BBH", code, 0x80 | VOLUME, key_units)
        at = start + KEY_MS // 20 + i
        packets.append((at, rtp(TELEPHONE_EVENT_PT, False, seq, ts, ssrc, payload)))
        seq += 1
    resume = start + 10  # 200 ms after the key began
    for n in range(resume, resume + after_s * RATE // FRAME):
        audio(n, n == resume)
    return [(n * 20_000, frame(p, i)) for i, (n, p) in enumerate(packets)]


def write(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
    print(f"{path}: {len(data)} bytes")


def main() -> None:
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "fixtures", "sipp", "pcap")
    os.makedirs(out, exist_ok=True)
    for index, keys in enumerate(DTMF_SEQUENCES):
        name = "dtmf-" + keys.replace("#", "hash").replace("*", "star") + ".pcap"
        write(os.path.join(out, name), pcap(dtmf_packets(keys, index)))
    tone_index = len(DTMF_SEQUENCES)
    write(os.path.join(out, "pcmu-440hz-5s.pcap"), pcap(tone_packets(440.0, 5, 8000, tone_index)))
    write(
        os.path.join(out, "pcmu-440hz-dtmf-1.pcap"),
        pcap(tone_key_tone_packets(440.0, 3, "1", 3, 8000, tone_index + 1)),
    )


if __name__ == "__main__":
    main()
