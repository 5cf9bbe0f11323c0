#!/usr/bin/env bash
# Proof on the Raspberry Pi's architecture. Installs the device package into an arm64 Debian
# Bookworm root filesystem (the base of Raspberry Pi OS) running under qemu, with install.sh as
# on a Pi, and checks that the device there computes bit for bit what this x86 machine computes:
# resampled audio, float features, int8 model inputs and int8 model outputs of N real clips and
# four generated signals, for every shipped bundle, on ai-edge-litert and on tflite-runtime; then
# compares `ser info` and `ser classify` run inside with the same commands here, and what the
# daemon's segmenter and speech detector make of a stream of clips over household noise. The
# frontend alone is compared on a wider set: W clips spread over every corpus and every noise
# recording, with how many frames each machine computed the reproducible way (edge.certified).
# Prints the parity report; exits 1 on any difference. Needs root (debootstrap, chroot, mounts) and
# the network.
#
#     sudo firmware_scripts/arm64-parity.sh [--clips N] [--wide W]   # defaults: 120 and 600
#
# The rootfs is built once (4-7 minutes) at $SER_ARM64_ROOT (default
# /var/cache/edge-ser/arm64-bookworm) and reused by every checkout on the machine. Clips come from
# $SER_CORPUS_DIR (default ../shared/corpora), the noise from $SER_NOISE_DIR (default
# ../shared/noise). Results are left in runs/arm64-parity/.
set -euo pipefail
cd "$(dirname "$0")/.."
count=120
wide=600
while [ $# -gt 0 ]; do
    case "$1" in
        --clips) count="$2"; shift 2 ;;
        --wide) wide="$2"; shift 2 ;;
        -h|--help) sed -n '2,/^set /{/^set /!p}' "$0"; exit 0 ;;
        *) echo "arm64-parity.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "arm64-parity.sh: run as root" >&2; exit 1; }
say() { echo "arm64-parity.sh: $*" >&2; }
root="${SER_ARM64_ROOT:-/var/cache/edge-ser/arm64-bookworm}"
corpus="${SER_CORPUS_DIR:-../shared/corpora}"
[ -d "$corpus" ] || { say "no corpus at $corpus (set SER_CORPUS_DIR)"; exit 1; }
corpus="$(realpath "$corpus")"
noise_dir="$(realpath "${SER_NOISE_DIR:-../shared/noise}")"
noise="$noise_dir/doing_the_dishes.flac"
[ -f "$noise" ] || { say "no noise recording at $noise (set SER_NOISE_DIR)"; exit 1; }
out="$PWD/runs/arm64-parity"
bundles=$(for manifest in models/*/manifest.json; do basename "$(dirname "$manifest")"; done)

mkdir -p "$(dirname "$root")"
exec 9>"$root.lock"
flock 9  # one run at a time per rootfs
firmware_scripts/arm64-rootfs.sh "$root"
rm -rf "$out"
mkdir -p "$out"

# x86-64: this checkout's environment, and tflite-runtime (numpy<2) in a venv of its own.
[ -x .venv/bin/python ] || script/setup edge
script/tflite-runtime-venv
.venv/bin/python firmware_scripts/parity.py clips "$corpus" "$count" > "$out/clips.txt"
.venv/bin/python firmware_scripts/parity.py clips "$corpus" "$wide" > "$out/wide.txt"
noises=$(cd "$noise_dir" && ls *.flac)
.venv/bin/python firmware_scripts/parity.py stream "$corpus" "$out/clips.txt" "$noise" "$out/stream.wav"
say "x86_64: computing on ai-edge-litert and tflite-runtime"
.venv/bin/python firmware_scripts/parity.py save "$out/x86_64-ai-edge-litert.npz" --root "$corpus" --list "$out/clips.txt" \
    --stream "$out/stream.wav" --features-list "$out/wide.txt" $(for n in $noises; do echo "--noise $noise_dir/$n"; done)
PYTHONPATH="$PWD" .cache/venv-tflite-runtime/bin/python firmware_scripts/parity.py \
    save "$out/x86_64-tflite-runtime.npz" --root "$corpus" --list "$out/clips.txt" --stream "$out/stream.wav"
for bundle in $bundles; do
    .venv/bin/ser info --model "$bundle" --variant int8 > "$out/x86_64-info-$bundle.json" 2> "$out/x86_64-info-$bundle.log"
    [ "$bundle" = speech-detector ] && continue  # not an emotion model: `ser classify` refuses it
    (cd "$corpus" && xargs -a "$out/clips.txt" "$OLDPWD/.venv/bin/ser" classify --json --variant int8 --model "$bundle") \
        > "$out/x86_64-classify-$bundle.jsonl" 2> "$out/x86_64-classify-$bundle.log"
done

# arm64, in a private mount namespace: whatever happens, no mount outlives this step.
say "aarch64: installing with install.sh and computing (qemu: minutes)"
unshare --mount --propagation private bash -s "$root" "$corpus" "$out" "$bundles" "$noise_dir" "$noises" <<'INSIDE'
set -euo pipefail
root=$1 corpus=$2 out=$3 bundles=$4 noise_dir=$5 noises=$6
# A copy of this checkout (install.sh builds the package from it), without local environments.
rm -rf "$root/src"
mkdir -p "$root/src" "$root/corpus" "$root/parity" "$root/noise"
tar -C "$PWD" --exclude=./.venv --exclude=./.cache --exclude=./.git --exclude=./runs --exclude=./build -cf - . \
    | tar -C "$root/src" -xf -
mount --bind "$corpus" "$root/corpus"
mount -o remount,bind,ro "$root/corpus"
mount --bind "$noise_dir" "$root/noise"
mount --bind "$out" "$root/parity"
mount -t proc proc "$root/proc"
inside() { chroot "$root" /usr/bin/env -u PYTHONPATH -u VIRTUAL_ENV HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }
inside /src/firmware_scripts/install.sh
inside /src/script/tflite-runtime-venv /opt/ser/venv-tflite-runtime
# The installed package and models, as the service runs them (/opt/ser, SER_MODELS_DIR).
inside env SER_MODELS_DIR=/opt/ser/models /opt/ser/venv/bin/python /src/firmware_scripts/parity.py \
    save /parity/aarch64-ai-edge-litert.npz --root /corpus --list /parity/clips.txt --stream /parity/stream.wav \
    --features-list /parity/wide.txt $(for n in $noises; do echo "--noise /noise/$n"; done)
inside env SER_MODELS_DIR=/opt/ser/models PYTHONPATH=/src /opt/ser/venv-tflite-runtime/bin/python \
    /src/firmware_scripts/parity.py save /parity/aarch64-tflite-runtime.npz --root /corpus --list /parity/clips.txt \
    --stream /parity/stream.wav
for bundle in $bundles; do
    inside env SER_MODELS_DIR=/opt/ser/models /opt/ser/venv/bin/ser info --model "$bundle" --variant int8 \
        > "$out/aarch64-info-$bundle.json" 2> "$out/aarch64-info-$bundle.log"
    [ "$bundle" = speech-detector ] && continue  # not an emotion model: `ser classify` refuses it
    inside sh -c 'cd /corpus && xargs -a /parity/clips.txt env SER_MODELS_DIR=/opt/ser/models /opt/ser/venv/bin/ser classify --json --variant int8 --model "$0"' "$bundle" \
        > "$out/aarch64-classify-$bundle.jsonl" 2> "$out/aarch64-classify-$bundle.log"
done
INSIDE

# The report.
echo "== arm64 parity: x86_64 (this machine) vs aarch64 (Debian Bookworm under qemu, installed by install.sh)"
status=0
.venv/bin/python firmware_scripts/parity.py compare \
    "$out/x86_64-ai-edge-litert.npz" "$out/aarch64-ai-edge-litert.npz" \
    "$out/x86_64-tflite-runtime.npz" "$out/aarch64-tflite-runtime.npz" || status=1
for bundle in $bundles; do
    if cmp -s "$out/x86_64-info-$bundle.json" "$out/aarch64-info-$bundle.json" \
        && grep -q "^fingerprint: .* verified" "$out/aarch64-info-$bundle.log"; then
        echo "ser info --model $bundle: same manifest; $(grep '^fingerprint:' "$out/aarch64-info-$bundle.log" | cut -c1-30)... verified on aarch64"
    else
        echo "ser info --model $bundle: DIFFERS or not verified on aarch64 (see $out/aarch64-info-$bundle.log)"
        status=1
    fi
    [ "$bundle" = speech-detector ] && continue  # not an emotion model: `ser classify` refuses it
    results=$(wc -l < "$out/x86_64-classify-$bundle.jsonl")
    if [ "$results" -gt 0 ] && cmp -s "$out/x86_64-classify-$bundle.jsonl" "$out/aarch64-classify-$bundle.jsonl"; then
        echo "ser classify --variant int8 --model $bundle: $results results, identical on x86_64 and aarch64"
    else
        echo "ser classify --variant int8 --model $bundle: DIFFERS ($results results here; see $out/)"
        status=1
    fi
done
exit $status
