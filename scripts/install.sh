#!/usr/bin/env bash
# Install, upgrade or roll back edgecell as a systemd service.
#
# Layout: PREFIX/releases/<version>/ is a venv with edgecell in it, PREFIX/current and
# PREFIX/previous are symlinks to releases; the unit runs PREFIX/current/bin/edgecell.
# The config (/etc/edgecell/config.yaml) is validated by the release being switched to before
# anything is enabled or restarted. See systemd/README.md and docs/operations.md.
set -euo pipefail

usage() {
    cat <<'EOF'
usage: scripts/install.sh [options]            install (first time) and enable the service
       scripts/install.sh --upgrade [options]  install a new release, switch to it, restart
       scripts/install.sh --rollback [options] switch back to the previous release, restart

options:
  --source SPEC     what pip installs: a checkout (default: the one holding this script),
                    a wheel file, or a requirement such as 'edgecell==0.2.0'
  --version V       release name (default: the version of SPEC)
  --prefix DIR      install root (default /opt/edgecell)
  --destdir DIR     stage everything under DIR instead of / (implies --no-systemctl)
  --config FILE     initial /etc/edgecell/config.yaml when there is none yet
                    (default: configs/examples/gateway.yaml)
  --python PY       interpreter for the venv, 3.11 or newer (default python3)
  --pip-arg ARG     pass ARG to pip install (repeat it), e.g. --pip-arg=--no-index
                    --pip-arg=--find-links=/media/usb/wheels for an offline box
  --venv-from VENV  take the dependencies from an existing venv (added to the release's path)
                    instead of installing them: for tests and development boxes only
  --force           rebuild a release that already exists; roll back to a release that
                    refuses the current config
  --no-systemctl    do not run systemctl (no daemon-reload, enable, restart)
  --no-start        enable the service but do not start or restart it
  -h, --help        this text

exit status: 0 done, 1 failed, 2 bad arguments or a config the release refuses
EOF
}

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHECKOUT=$(dirname "$SCRIPT_DIR")

mode=install
source_spec=$CHECKOUT
version=
prefix=/opt/edgecell
destdir=
initial_config=
python=python3
pip_args=()
venv_from=
force=no
use_systemctl=yes
start=yes
unit_name=edgecell.service

say() { printf 'install: %s\n' "$*"; }
die() { printf 'install: error: %s\n' "$1" >&2; exit "${2:-1}"; }

while [ $# -gt 0 ]; do
    arg=$1
    case "$arg" in
        --*=*) value=${arg#*=}; arg=${arg%%=*}; shift; set -- "$arg" "$value" "$@" ;;
    esac
    case "$1" in
        --upgrade) mode=upgrade ;;
        --rollback) mode=rollback ;;
        --source) source_spec=${2:?--source needs a value}; shift ;;
        --version) version=${2:?--version needs a value}; shift ;;
        --prefix) prefix=${2:?--prefix needs a value}; shift ;;
        --destdir) destdir=${2:?--destdir needs a value}; shift ;;
        --config) initial_config=${2:?--config needs a value}; shift ;;
        --python) python=${2:?--python needs a value}; shift ;;
        --pip-arg) pip_args+=("${2:?--pip-arg needs a value}"); shift ;;
        --venv-from) venv_from=${2:?--venv-from needs a value}; shift ;;
        --force) force=yes ;;
        --no-systemctl) use_systemctl=no ;;
        --no-start) start=no ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" 2 ;;
    esac
    shift
done

case "$prefix" in /*) ;; *) die "--prefix must be an absolute path: $prefix" 2 ;; esac
if [ -n "$destdir" ]; then
    mkdir -p "$destdir"
    destdir=$(cd "$destdir" && pwd)
    use_systemctl=no
fi
if [ -z "$destdir" ] && [ "$(id -u)" != 0 ]; then
    die "writes to $prefix, /etc/edgecell and /etc/systemd/system: run it as root (sudo)" 2
fi
if [ "$use_systemctl" = yes ] && [ ! -d /run/systemd/system ]; then
    say "systemd is not running here: skipping systemctl (as with --no-systemctl)"
    use_systemctl=no
fi

root=$destdir$prefix                   # where the files go now
releases=$root/releases
etc=$destdir/etc/edgecell
config=$etc/config.yaml
credentials=$etc/credentials
unit_dir=$destdir/etc/systemd/system

systemctl_() {
    if [ "$use_systemctl" = yes ]; then
        say "systemctl $*"
        systemctl "$@"
    fi
}

# The release's own edgecell checks the config, with $CREDENTIALS_DIRECTORY pointing where
# LoadCredential= reads from, as the service will see it. Prints the problems; returns 2 on any.
validate_with() {
    local release=$1
    say "validating $config with release $(basename "$release")"
    # python -m controller: the same as bin/edgecell, and it also runs from a DESTDIR stage.
    if ! CREDENTIALS_DIRECTORY=$credentials "$release/bin/python" -m controller validate "$config"
    then
        return 2
    fi
}

source_version() {
    case "$source_spec" in
        *.whl) basename "$source_spec" | cut -d- -f2 ;;
        *==*) printf '%s\n' "${source_spec##*==}" ;;
        *)
            if [ -f "$source_spec/pyproject.toml" ]; then
                "$python" - "$source_spec/pyproject.toml" <<'PY'
import sys, tomllib
with open(sys.argv[1], "rb") as f:
    print(tomllib.load(f)["project"]["version"])
PY
            fi
            ;;
    esac
}

# Point $root/$1 at releases/$2 atomically (rename over the old link).
switch_link() {
    local name=$1 target=$2
    ln -sfn "releases/$target" "$root/.$name.new"
    mv -T "$root/.$name.new" "$root/$name"
}

link_target() {
    if [ -L "$root/$1" ]; then basename "$(readlink "$root/$1")"; fi
}

# systemctl enable; in a DESTDIR stage, the symlink it would make (as `systemctl --root` does).
enable_unit() {
    if [ "$use_systemctl" = yes ]; then
        systemctl_ enable "$unit_name"
    elif [ -n "$destdir" ]; then
        local target
        # shellcheck disable=SC2013  # WantedBy= is a space-separated list: words are wanted
        for target in $(sed -n 's/^WantedBy=//p' "$unit_dir/$unit_name"); do
            mkdir -p "$unit_dir/$target.wants"
            ln -sfn "/etc/systemd/system/$unit_name" "$unit_dir/$target.wants/$unit_name"
            say "enabled: $unit_dir/$target.wants/$unit_name"
        done
    else
        say "not enabled (no systemctl): run systemctl enable --now $unit_name"
    fi
}

# The unit with PREFIX put in, kept in the release so a rollback restores its own unit.
render_unit() {
    local release=$1
    mkdir -p "$release/share/edgecell"
    sed "s#/opt/edgecell/#$prefix/#g" "$CHECKOUT/systemd/edgecell.service" \
        >"$release/share/edgecell/$unit_name"
    for doc in docs/operations.md systemd/README.md systemd/serial-port.conf; do
        if [ -f "$CHECKOUT/$doc" ]; then
            install -D -m 0644 "$CHECKOUT/$doc" \
                "$release/share/doc/edgecell/$(basename "$doc" | sed 's/^README/systemd-README/')"
        fi
    done
}

place_unit() {
    local release=$1
    install -D -m 0644 "$release/share/edgecell/$unit_name" "$unit_dir/$unit_name"
    say "unit: $unit_dir/$unit_name"
}

build_release() {
    local release=$1
    if [ -f "$release/.edgecell-release" ] && [ "$force" = no ]; then
        say "release $(basename "$release") is already installed: reusing it (--force rebuilds)"
        return
    fi
    rm -rf "$release"
    mkdir -p "$releases"
    if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
        die "$python is older than 3.11; pass --python python3.11 (or newer)"
    fi
    if [ -n "$venv_from" ]; then
        # Development and tests: a venv without pip whose path includes $venv_from's
        # site-packages; edgecell itself is installed into it by $venv_from's pip.
        local deps site
        deps=$("$venv_from/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        say "venv $release (dependencies from $venv_from)"
        "$venv_from/bin/python" -m venv --without-pip "$release"
        site=$("$release/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        printf '%s\n' "$deps" >"$site/edgecell-dependencies.pth"
        "$venv_from/bin/python" -m pip --python "$release/bin/python" install -q \
            --disable-pip-version-check --no-deps ${pip_args[@]+"${pip_args[@]}"} "$source_spec"
    else
        say "venv $release"
        "$python" -m venv "$release"
        "$release/bin/python" -m pip install -q --disable-pip-version-check \
            ${pip_args[@]+"${pip_args[@]}"} "$source_spec"
    fi
    if [ -n "$destdir" ]; then
        # Staged: scripts must name the interpreter where the release will live, not DESTDIR.
        grep -rlI --null -F "$destdir$prefix/" "$release/bin" \
            | xargs -0 -r sed -i "s#$destdir$prefix/#$prefix/#g"
    fi
    "$release/bin/python" -m controller --version >/dev/null
    render_unit "$release"
    printf 'version=%s\nsource=%s\ninstalled=%s\n' "$version" "$source_spec" \
        "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$release/.edgecell-release"
}

ensure_config() {
    install -d -m 0755 "$etc"
    install -d -m 0700 "$credentials"
    if [ ! -e "$credentials/mqtt-password" ]; then
        # LoadCredential= fails the start when its file is missing; the operator fills it in.
        install -m 0600 /dev/null "$credentials/mqtt-password"
        say "created an empty $credentials/mqtt-password: put the broker password there"
    fi
    if [ ! -e "$config" ]; then
        local from=${initial_config:-$CHECKOUT/configs/examples/gateway.yaml}
        [ -f "$from" ] || die "no config at $config and no example at $from"
        install -m 0644 "$from" "$config"
        say "created $config from $from: edit it for this cell"
    else
        say "keeping $config"
    fi
}

do_install() {
    [ -n "$version" ] || version=$(source_version)
    [ -n "$version" ] || die "cannot tell the version of $source_spec: pass --version" 2
    local current
    current=$(link_target current)
    if [ -n "$current" ] && [ "$current" != "$version" ]; then
        die "release $current is installed: use --upgrade to move to $version" 2
    fi
    build_release "$releases/$version"
    switch_link current "$version"
    place_unit "$releases/$version"
    ensure_config
    if ! validate_with "$releases/$version"; then
        printf 'install: refusing to enable %s: fix %s, then run this again\n' \
            "$unit_name" "$config" >&2
        exit 2
    fi
    systemctl_ daemon-reload
    enable_unit
    if [ "$start" = yes ]; then systemctl_ restart "$unit_name"; fi
    say "installed $version in $prefix"
}

do_upgrade() {
    [ -n "$version" ] || version=$(source_version)
    [ -n "$version" ] || die "cannot tell the version of $source_spec: pass --version" 2
    local current
    current=$(link_target current)
    [ -n "$current" ] || die "nothing installed in $prefix to upgrade: install first" 2
    if [ "$current" = "$version" ]; then
        die "release $version is already current: name the new one with --version" 2
    fi
    build_release "$releases/$version"
    ensure_config
    if ! validate_with "$releases/$version"; then
        printf 'install: release %s refuses %s: still running %s\n' \
            "$version" "$config" "$current" >&2
        exit 2
    fi
    switch_link previous "$current"
    switch_link current "$version"
    place_unit "$releases/$version"
    prune_releases
    systemctl_ daemon-reload
    if [ "$start" = yes ]; then systemctl_ try-restart "$unit_name"; fi
    say "upgraded $current -> $version (--rollback goes back to $current)"
}

do_rollback() {
    local current previous
    current=$(link_target current)
    previous=$(link_target previous)
    if [ -z "$previous" ] || [ ! -d "$releases/$previous" ]; then
        die "no previous release to roll back to" 2
    fi
    if ! validate_with "$releases/$previous"; then
        if [ "$force" = no ]; then
            printf 'install: release %s refuses %s: not rolling back (--force does)\n' \
                "$previous" "$config" >&2
            exit 2
        fi
        say "rolling back anyway (--force)"
    fi
    switch_link current "$previous"
    switch_link previous "$current"
    place_unit "$releases/$previous"
    systemctl_ daemon-reload
    if [ "$start" = yes ]; then systemctl_ try-restart "$unit_name"; fi
    say "rolled back $current -> $previous (--rollback again returns to $current)"
}

# A small box keeps two releases: the current one and the one --rollback returns to.
prune_releases() {
    local keep_current keep_previous dir
    keep_current=$(link_target current)
    keep_previous=$(link_target previous)
    for dir in "$releases"/*/; do
        dir=${dir%/}
        case "$(basename "$dir")" in
            "$keep_current"|"$keep_previous") ;;
            *) say "removing old release $(basename "$dir")"; rm -rf "$dir" ;;
        esac
    done
}

case "$mode" in
    install) do_install ;;
    upgrade) do_upgrade ;;
    rollback) do_rollback ;;
esac
