#!/usr/bin/env bash
# Build (once) an arm64 Debian Bookworm root filesystem, the base of Raspberry Pi OS, that runs
# here under qemu user emulation; later runs reuse it. Needs root.
#
#     sudo firmware_scripts/arm64-rootfs.sh [ROOT]   # default: $SER_ARM64_ROOT or /var/cache/edge-ser/arm64-bookworm
#
# Then `chroot ROOT /usr/bin/python3 ...` runs arm64 Python 3.11 (Debian's 3.11.2, as on the Pi).
# First build: 4-7 minutes and 0.5 GB. It lives outside the checkout, so every clone on this
# machine (and CI) reuses it; firmware_scripts/arm64-parity.sh uses it.
set -euo pipefail
cd "$(dirname "$0")/.."
root="${1:-${SER_ARM64_ROOT:-/var/cache/edge-ser/arm64-bookworm}}"
[ "$(id -u)" -eq 0 ] || { echo "arm64-rootfs.sh: run as root" >&2; exit 1; }

missing=()
for package in qemu-user-static binfmt-support debootstrap; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The kernel runs arm64 binaries through qemu once binfmt_misc knows the format.
mountpoint -q /proc/sys/fs/binfmt_misc || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
update-binfmts --enable qemu-aarch64 2>/dev/null || true

if [ -x "$root/usr/bin/python3" ] && [ -e "$root/.complete" ]; then
    echo "arm64-rootfs.sh: reusing $root" >&2
    exit 0
fi
# Never delete through a bind mount (a checkout mounted into the rootfs would go with it).
if [ -d "$root" ] && findmnt -rn -o TARGET | grep -q "^$(realpath "$root")/"; then
    echo "arm64-rootfs.sh: something is mounted under $root; unmount it first" >&2
    exit 1
fi
rm -rf "$root"
mkdir -p "$root"
debootstrap --arch=arm64 --variant=minbase --foreign \
    --include=python3,python3-venv,python3-pip,ca-certificates bookworm "$root" >/dev/null
chroot "$root" /debootstrap/debootstrap --second-stage >/dev/null
# HTTPS to the package registries goes through this machine's proxy, whose CA the chroot must trust.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    chroot "$root" update-ca-certificates >/dev/null
fi
cp /etc/resolv.conf "$root/etc/resolv.conf"
touch "$root/.complete"
echo "arm64-rootfs.sh: built $root ($(chroot "$root" /usr/bin/python3 --version))" >&2
