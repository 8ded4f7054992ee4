#!/usr/bin/env bash
# Installs what the test suite needs on a bare Debian machine: the real components the tests run
# (sshd, MariaDB as the MySQL-protocol stand-in, openssl, systemd-analyze, unshare) and the
# Python test dependencies. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(openssh-server mariadb-server mariadb-client openssl systemd util-linux iproute2 procps sudo curl nftables chromium fonts-dejavu-core faketime)
missing=()
for pkg in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    # Services are started by the tests themselves, not by the package scripts.
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
python3 -m pip install -q --disable-pip-version-check '.[test]'
# The wheels init-server uploads to the test servers (the tests reach no package index)
python3 -m logstack wheels -o tests/.wheels >/dev/null
