#!/usr/bin/env bash
# Regenerates every IVR prompt under fixtures/prompts/ with espeak-ng and sox.
#
# Output: 16-bit signed PCM WAV, mono, 8 kHz (the telephone rate: no resampling at
# load time, and hound reads PCM WAV only). The WAVs are committed so that tests and
# the demo never need espeak-ng. Needs: espeak-ng, sox (apt-get install -y espeak-ng sox).
set -euo pipefail

cd "$(dirname "$0")/.."
out=fixtures/prompts
mkdir -p "$out"

for tool in espeak-ng sox; do
    command -v "$tool" >/dev/null || { echo "missing $tool (apt-get install -y espeak-ng sox)" >&2; exit 1; }
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# name|text
prompts=(
    "welcome|Welcome to dialbridge. Please enter your conference ID, followed by the pound key."
    "enter-pin|If you are the organiser, enter your PIN followed by pound. Otherwise, press pound."
    "not-found|That conference ID was not found. Please try again."
    "wrong-pin|That PIN is not correct. Please try again."
    "goodbye|Goodbye."
    "joined|You are now joining the meeting."
    "waiting-for-leader|Please wait. The meeting will start when the organiser joins."
    "meeting-full|This meeting is full. Goodbye."
    "meeting-locked|This meeting is locked. Goodbye."
    "muted|You are muted."
    "unmuted|You are unmuted."
    "help|Press star six to mute or unmute, star three to hear how many people are in the meeting."
    "invited|You have been invited to a meeting. Press 1 to join."
    "dial-out-calling|Calling."
    "dial-out-ringing|The number is ringing."
    "dial-out-answered|The call was answered."
    "dial-out-busy|The number is busy."
    "dial-out-no-answer|There was no answer."
    "dial-out-declined|The call was declined."
    "dial-out-failed|The call could not be connected."
    "dial-out-not-allowed|That number cannot be dialled."
    "dial-out-no-funding|There are not enough communications credits to place that call."
    # The bridge's own notices (crates/server/src/call_flow/notice.rs).
    "credits-exhausted|Your communications credits have run out. Goodbye."
)

for entry in "${prompts[@]}"; do
    name=${entry%%|*}
    text=${entry#*|}
    # -s 150 words/min keeps the prompts short but clear; -v en-gb for "organiser".
    espeak-ng -v en-gb -s 150 -w "$tmp/$name.wav" "$text"
    # Telephone band: high-pass 100 Hz; sox low-passes before decimating; norm
    # leaves 3 dB of headroom so G.711 never clips.
    sox -D "$tmp/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/$name.wav" \
        gain -6 highpass 100 norm -3
    echo "$out/$name.wav"
done

# Words for "There are N people in the meeting." (*3), joined at run time by
# dialbridge_media::announce. Leading and trailing silence is trimmed and 50 ms put
# back at the end, so the words join at a natural pace.
mkdir -p "$out/count"
words=("only-you|You are the only person in the meeting." "there-are|There are" "people|people in the meeting." "hundred|hundred" "thousand|thousand")
for n in $(seq 0 19) 20 30 40 50 60 70 80 90; do
    words+=("$n|$n")
done
for entry in "${words[@]}"; do
    name=${entry%%|*}
    text=${entry#*|}
    espeak-ng -v en-gb -s 150 -w "$tmp/$name.wav" "$text"
    sox -D "$tmp/$name.wav" -r 8000 -c 1 -b 16 -e signed-integer "$out/count/$name.wav" \
        gain -6 highpass 100 norm -3 \
        silence 1 0.01 1% reverse silence 1 0.01 1% reverse pad 0 0.05
    echo "$out/count/$name.wav"
done
