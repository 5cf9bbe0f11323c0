# Where install.sh puts things and uninstall.sh removes them from; tests move them with SER_*.
prefix="${SER_PREFIX:-/opt/ser}"
conf_dir="${SER_CONF_DIR:-/etc/ser}"
unit_dir="${SER_UNIT_DIR:-/etc/systemd/system}"
user="${SER_USER:-ser}"
state_dir="${SER_STATE_DIR:-/var/lib/ser}"  # the unit's StateDirectory= (a kept pause)

# True where systemd runs this machine (and answers) and the unit goes where it looks.
systemd_manages_units() {
    [ -d /run/systemd/system ] && [ "$unit_dir" = /etc/systemd/system ] && systemctl show-environment >/dev/null 2>&1
}
