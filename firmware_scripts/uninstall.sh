#!/usr/bin/env bash
# Remove what install.sh installed: the service, its unit, the virtualenv and models, the user,
# and the service's state (/var/lib/ser: a kept pause).
# /etc/ser (your settings and MQTT credentials) stays unless you pass --purge.
# Honours the same SER_PREFIX, SER_CONF_DIR, SER_UNIT_DIR and SER_USER as install.sh.
set -euo pipefail

. "$(dirname "$0")/paths.sh"
purge=no
for argument in "$@"; do
    case "$argument" in
        --purge) purge=yes ;;
        *) echo "uninstall.sh: unknown option $argument (only --purge)" >&2; exit 2 ;;
    esac
done
[ "$(id -u)" -eq 0 ] || { echo "uninstall.sh: run as root (sudo)" >&2; exit 1; }

if systemd_manages_units; then
    systemctl disable --now ser.service 2>/dev/null || true
fi
# Home Assistant's entities go with the device (empty retained discovery configs); a broker that
# cannot be reached does not stop the uninstall.
if [ -x "$prefix/venv/bin/ser" ] && [ -f "$conf_dir/ser.toml" ]; then
    SER_MODELS_DIR="$prefix/models" "$prefix/venv/bin/ser" daemon --config "$conf_dir/ser.toml" --forget >&2 ||
        echo "uninstall.sh: could not remove the Home Assistant entities (see above)" >&2
fi
rm -f "$unit_dir/ser.service" "$unit_dir/ser.service.d/mqtt.conf"
rmdir "$unit_dir/ser.service.d" 2>/dev/null || true
if systemd_manages_units; then systemctl daemon-reload; fi
rm -rf "$prefix" "$state_dir"
if id -u "$user" >/dev/null 2>&1; then
    userdel "$user"
fi
[ "$purge" = yes ] && rm -rf "$conf_dir"
echo "uninstall.sh: removed ser.service, $prefix, $state_dir and user $user$([ "$purge" = yes ] && echo " and $conf_dir")" >&2
