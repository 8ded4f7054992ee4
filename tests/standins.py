"""Stand-ins for `vector`, `journalctl` and `systemctl` on the test hosts (none of them can run here).

Each imitates only what logstack relies on, as Vector v0.57.0 and systemd do it; the comments cite the
upstream code. They are POSIX sh so that any user (Vector validates as user `vector`) can run them.
"""

from __future__ import annotations

# `journalctl --version` prints "systemd <n> (<full version>)" and feature flags.
JOURNALCTL = """#!/bin/sh
case "$1" in
--version) printf 'systemd %s (%s)\\n+PAM +AUDIT +SELINUX\\n' "{systemd}" "{systemd}.1-1" ;;
-u) cat "{log}" 2>/dev/null | tail -n 20 ;;  # the unit's last lines, as -u UNIT -n N --no-pager prints them
*) exit 0 ;;
esac
"""

# vector --version: "vector 0.57.0 (x86_64-unknown-linux-gnu <sha> <date>)" (src/lib.rs get_version).
# vector validate [--no-environment] [--skip-healthchecks] [PATH] (src/validate.rs):
#  - --no-environment builds no component: only the config is loaded (validate.rs L160-187);
#  - otherwise the global data_dir must exist and not be read-only (lib/vector-core/src/config/
#    global_options.rs resolve_and_make_data_subdir, "data_dir {:?} does not exist"), every TLS file of
#    an enabled tls block is opened (lib/vector-core/src/tls/settings.rs open_read, "Could not open {}
#    file {:?}: {}"), and the journald source runs `journalctl --version`, takes the second word as the
#    systemd version and refuses `current_boot_only: false` on 250..=257 (src/sources/journald.rs
#    L378-383, L809-837: "`current_boot_only: false` not supported for systemd versions 250 through 257");
#  - a failed validation exits 78 (exitcode::CONFIG).
# vector (run by the systemctl stand-in as the service): the same build checks, exit 78 on failure; a
# marker file imitates a failure at run time that validation cannot see (a port already bound).
VECTOR = r"""#!/bin/sh
version="{version}"
fail() { echo "$1" >&2; exit 78; }
build() {
    config=$1
    [ -r "$config" ] || fail "Failed to load [\"$config\"]: No such file or directory"
    [ -d /var/lib/vector ] || fail "data_dir \"/var/lib/vector/\" does not exist"
    [ -w /var/lib/vector ] || fail "data_dir \"/var/lib/vector/\" is not writable"
    for kind in ca_file crt_file key_file; do
        for file in $(sed -n "s/^ *$kind: *//p" "$config" | tr -d '"'); do
            [ -r "$file" ] || fail "Could not open $kind file \"$file\": Permission denied (os error 13)"
        done
    done
    if grep -q '^ *type: journald' "$config" && grep -q '^ *current_boot_only: false' "$config"; then
        systemd=$(journalctl --version | head -n 1 | awk '{print $2}')
        if [ "$systemd" -ge 250 ] 2>/dev/null && [ "$systemd" -le 257 ]; then
            versions="systemd versions 250 through 257"
            fail "Source \"journal\": \`current_boot_only: false\` not supported for $versions (got $systemd)."
        fi
    fi
}
case "$1" in
--version) echo "vector $version (x86_64-unknown-linux-gnu stand-in 2026-07-14 00:00:00.000000)"; exit 0 ;;
validate)
    shift
    environment=yes
    config=/etc/vector/vector.yaml
    for arg in "$@"; do
        case "$arg" in
        --no-environment) environment=no ;;
        --skip-healthchecks|--deny-warnings|-d) ;;
        -*) ;;
        *) config=$arg ;;
        esac
    done
    [ -r "$config" ] || fail "Failed to load [\"$config\"]"
    if [ "$environment" = yes ]; then build "$config"; fi
    echo "Validated"
    exit 0 ;;
*)
    build /etc/vector/vector.yaml
    [ ! -e /var/lib/vector/stand-in-crash ] || fail "Source \"senders\": Address already in use (os error 98)"
    exit 0 ;;
esac
"""

# systemctl: records every call; `restart vector` starts the stand-in as the unit would (as its user; the
# drop-in clears ExecStartPre) and keeps the result as the unit's state; `is-active` and
# `show -p NRestarts --value` read it, as systemd reports them.
# `start` of a logstack oneshot unit runs its ExecStart line and waits, as systemd does for Type=oneshot:
# its LoadCredential= files copied into $CREDENTIALS_DIRECTORY, its StateDirectory= made under /var/lib,
# run as an unprivileged user in place of DynamicUser=yes (systemd src/core/execute.c); `show -p Result
# -p ExecMainStatus` answers "success" or "exit-code" and the status (src/core/service.c).
SYSTEMCTL = r"""#!/bin/sh
echo "$*" >> {log}
state={state}
case "$1" in
restart|start)
    unit=$2
    file=/etc/systemd/system/$unit
    case "$unit" in logstack-*.service)
        [ -f "$file" ] || { echo "Unit $unit not found." >&2; exit 5; }
        creds=$(mktemp -d /run/logstack-creds.XXXXXX)
        grep '^LoadCredential=' "$file" | while IFS= read -r line; do
            v=${line#LoadCredential=}; cp "${v#*:}" "$creds/${v%%:*}"; done
        chown -R nobody "$creds"
        for d in $(grep '^StateDirectory=' "$file" | cut -d= -f2-); do install -d -o nobody -m 0700 "/var/lib/$d"; done
        cmd=$(grep '^ExecStart=' "$file" | head -n 1 | cut -d= -f2- | sed "s|\${CREDENTIALS_DIRECTORY}|$creds|g")
        st=0
        runuser -u nobody -- sh -c "exec $cmd" >"$state.$unit.log" 2>&1 || st=$?
        echo "$st" > "$state.$unit.status"
        rm -rf "$creds"
        exit 0 ;;
    esac
    if [ "$unit" = vector ] && command -v vector >/dev/null 2>&1; then
        restarts=$(cat "$state.restarts" 2>/dev/null || echo 0)
        echo $((restarts + 1)) > "$state.restarts"
        if out=$(runuser -u vector -- vector 2>&1); then  # the drop-in has no ExecStartPre
            echo active > "$state.vector"
        else
            echo failed > "$state.vector"
            printf '%s\n' "$out" >> "{vector_log}"
        fi
    fi
    exit 0 ;;
is-active)
    s=$(cat "$state.$2" 2>/dev/null || echo active)
    echo "$s"
    [ "$s" = active ] ;;
show)
    for last; do :; done
    case "$*" in
    *ExecMainStatus*)
        st=$(cat "$state.$last.status" 2>/dev/null || echo 0)
        if [ "$st" = 0 ]; then echo Result=success; else echo Result=exit-code; fi
        echo "ExecMainStatus=$st" ;;
    *)  # show -p NRestarts --value UNIT
        cat "$state.restarts" 2>/dev/null || echo 0 ;;
    esac ;;
*) exit 0 ;;
esac
"""
