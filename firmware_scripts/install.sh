#!/usr/bin/env bash
# Install (or update) the edge-ser daemon on Raspberry Pi OS Bookworm (arm64) as the hardened
# systemd service `ser`. Run from a checkout, as root:
#
#     sudo firmware_scripts/install.sh            # events on stdout (the journal) only; no network
#     sudo firmware_scripts/install.sh --mqtt     # also allow the service to reach an MQTT broker
#
# It installs the system packages, creates the system user `ser` (group audio), a virtualenv with
# the package and its edge, mic and mqtt extras, the shipped model bundles, /etc/ser/ser.toml
# (kept if it exists: your settings survive updates) and the unit; then enables and (re)starts
# it. Running it again brings everything to the same state. Paths can be moved for tests with
# SER_PREFIX, SER_CONF_DIR, SER_UNIT_DIR and SER_USER.
set -euo pipefail

source_dir="$(cd "$(dirname "$0")/.." && pwd)"
. "$source_dir/firmware_scripts/paths.sh"
python="${SER_PYTHON:-/usr/bin/python3}"
mqtt=no
for argument in "$@"; do
    case "$argument" in
        --mqtt) mqtt=yes ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $argument (see --help)" >&2; exit 2 ;;
    esac
done
# 32-bit Raspberry Pi OS (armhf, often on a 64-bit kernel, so the userland's architecture is what
# counts) has no TFLite interpreter wheel: refuse before changing anything.
architecture="$(dpkg --print-architecture 2>/dev/null || uname -m)"
case "$architecture" in
    amd64|arm64|x86_64|aarch64) ;;
    *) echo "install.sh: $architecture is not supported: no TFLite interpreter exists for it; install 64-bit Raspberry Pi OS (arm64)" >&2
       exit 1 ;;
esac
[ "$(id -u)" -eq 0 ] || { echo "install.sh: run as root (sudo)" >&2; exit 1; }
say() { echo "install.sh: $*" >&2; }

# 1. System packages: Python with venv, PortAudio (PyAudio builds against it), ALSA tools.
packages=(python3 python3-venv python3-dev gcc portaudio19-dev libasound2-plugins alsa-utils)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. A system user with no login and no home, allowed to open sound devices.
if ! id -u "$user" >/dev/null 2>&1; then
    say "creating user $user"
    useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
fi
usermod --append --groups audio "$user"

# 3. The package in its own virtualenv (reinstalled from this checkout on every run).
[ -x "$prefix/venv/bin/python" ] || "$python" -m venv "$prefix/venv"
"$prefix/venv/bin/python" -m pip install --quiet --upgrade pip
"$prefix/venv/bin/python" -m pip install --quiet --upgrade --force-reinstall --no-deps "$source_dir"
"$prefix/venv/bin/python" -m pip install --quiet "$source_dir[edge,mic,mqtt]"

# 4. Model bundles, replaced as a whole so a removed file does not linger.
mkdir -p "$prefix"
rm -rf "$prefix/models.new"
mkdir "$prefix/models.new"
for bundle in "$source_dir"/models/*/; do
    name="$(basename "$bundle")"
    mkdir "$prefix/models.new/$name"
    # Both model files: the device runs float32 where that is faster and as accurate (x86-64).
    cp "$bundle"/manifest.json "$bundle"/*.tflite "$bundle"/MODEL_CARD.md "$prefix/models.new/$name/"
done
rm -rf "$prefix/models"
mv "$prefix/models.new" "$prefix/models"
cp "$source_dir/README.md" "$prefix/README.md"
chmod -R u=rwX,go=rX "$prefix"

# 5. Settings: installed once, then left to the owner.
install -d -m 0755 "$conf_dir"
if [ ! -e "$conf_dir/ser.toml" ]; then
    install -m 0644 "$source_dir/firmware_scripts/ser.toml" "$conf_dir/ser.toml"
else
    say "keeping $conf_dir/ser.toml"
fi

# 6. The unit (paths rewritten if they were moved), and the MQTT drop-in only when asked for.
install -d -m 0755 "$unit_dir"
sed -e "s|/opt/ser|$prefix|g" -e "s|/etc/ser|$conf_dir|g" -e "s|^User=ser$|User=$user|" -e "s|^Group=ser$|Group=$user|" \
    "$source_dir/firmware_scripts/ser.service" > "$unit_dir/ser.service.new"
chmod 0644 "$unit_dir/ser.service.new"
mv "$unit_dir/ser.service.new" "$unit_dir/ser.service"
if [ "$mqtt" = yes ]; then
    install -d -m 0755 "$unit_dir/ser.service.d"
    install -m 0644 "$source_dir/firmware_scripts/ser.service.d/mqtt.conf" "$unit_dir/ser.service.d/mqtt.conf"
else
    rm -f "$unit_dir/ser.service.d/mqtt.conf"
    rmdir "$unit_dir/ser.service.d" 2>/dev/null || true
fi

# 7. Enable and (re)start, where systemd runs the machine.
if systemd_manages_units; then
    systemctl daemon-reload
    systemctl enable ser.service
    systemctl restart ser.service
    say "ser.service running: journalctl -u ser -f -o cat"
else
    say "installed; systemd is not running here, so ser.service was not started"
fi
