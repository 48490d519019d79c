# Sourced by the test scripts (scripts/test-*.sh): install what a script needs when it is
# missing, so that each runs on a fresh machine.

# apt_install PACKAGE...: installs Debian packages (nothing when none are given), with sudo
# unless root. A fresh machine may have no package lists yet: then it updates them and retries.
apt_install() {
    (($#)) || return 0
    echo "== installing $* (apt-get)"
    local sudo=()
    [[ $(id -u) -eq 0 ]] || sudo=(sudo)
    local install=("${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 "$@")
    "${install[@]}" >/dev/null || { "${sudo[@]}" apt-get update -qq -o DPkg::Lock::Timeout=600 && "${install[@]}" >/dev/null; }
}

# rust_targets TARGET...: adds the rustup targets that are not installed yet.
rust_targets() {
    local target
    for target in "$@"; do
        if ! rustup target list --installed | grep -qx "$target"; then
            echo "== adding rustup target $target"
            rustup target add "$target"
        fi
    done
}
