#!/usr/bin/env bash
# edged install / uninstall (called by `make install` / `make uninstall`).
#
#   systemd/install.sh install   [PREFIX]   (default /usr/local)
#   systemd/install.sh uninstall [PREFIX]
#
# Layout:
#   PREFIX/bin/edged                   relinked with RUNPATH $ORIGIN/../lib/edged
#   PREFIX/lib/edged/                  the TensorFlow C library (from .deps/tensorflow)
#   PREFIX/share/edged/models/         the model files (from .deps/models)
#   PREFIX/share/doc/edged/            config.md, edged.example.yaml
#   UNITDIR/edged.service              (default /etc/systemd/system)
#   SYSCONFDIR/edged/edged.yaml        only if absent (a commented minimal file)
#   SYSCONFDIR/edged/edged.env         only if absent, mode 0600
# Data (/var/lib/edged, systemd's StateDirectory) is never touched, and
# uninstall keeps SYSCONFDIR/edged: remove them by hand to forget everything.
#
# Environment:
#   DESTDIR          stage into this root (packaging); no systemctl calls
#   UNITDIR          default /etc/systemd/system
#   SYSCONFDIR       default /etc
#   EDGED_INSTALL_BIN  a binary already linked with RUNPATH $ORIGIN/../lib/edged
#                    (e.g. a cross build); otherwise this script relinks one
#   VERSION          version stamped into the relinked binary
#
# OpenCV comes from the distribution (libopencv-*406 on Debian bookworm and
# Raspberry Pi OS); install its runtime packages on the device.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ACTION="${1:-}"
PREFIX="${2:-/usr/local}"
DESTDIR="${DESTDIR:-}"
UNITDIR="${UNITDIR:-/etc/systemd/system}"
SYSCONFDIR="${SYSCONFDIR:-/etc}"
MANIFEST_REL="share/edged/install-manifest"

log() { printf 'install: %s\n' "$*" >&2; }
die() { printf 'install: error: %s\n' "$*" >&2; exit 1; }

case "$PREFIX" in
  /*) ;;
  *) die "PREFIX must be an absolute path (got '$PREFIX')" ;;
esac
PREFIX="${PREFIX%/}"
[ -n "$PREFIX" ] || PREFIX=/

have_systemd() { [ -z "$DESTDIR" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

need_write() {
  local d="$1"
  while [ ! -e "$d" ]; do d="$(dirname "$d")"; done
  [ -w "$d" ] || die "cannot write to $d: run as root (sudo make install)"
}

# relink builds bin/edged.install with RUNPATH $ORIGIN/../lib/edged instead of
# the checkout's .deps path, so the installed binary finds its TensorFlow
# library wherever PREFIX is.
relink() {
  local out="$ROOT/bin/edged.install"
  [ -f "$ROOT/.deps/env.sh" ] || die ".deps/env.sh missing: run make setup first"
  # shellcheck disable=SC1091
  source "$ROOT/.deps/env.sh"
  command -v go >/dev/null 2>&1 || die "go not found in PATH (needed to relink edged)"
  local tflib="$ROOT/.deps/tensorflow/lib"
  local flags="${CGO_LDFLAGS//-Wl,-rpath,$tflib/}"
  export CGO_LDFLAGS="$flags -Wl,-rpath,\$ORIGIN/../lib/edged"
  local version="${VERSION:-$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo v0.1.0-dev)}"
  log "relinking edged with RUNPATH \$ORIGIN/../lib/edged (version $version)"
  (cd "$ROOT" && go build -ldflags "-X main.version=$version" -o "$out" ./cmd/edged) >&2 || die "go build failed"
  echo "$out"
}

check_runpath() {
  local bin="$1"
  if command -v readelf >/dev/null 2>&1; then
    # Capture first: under pipefail, `readelf | grep -q` can fail on SIGPIPE.
    local dyn; dyn="$(readelf -d "$bin")"
    grep -q 'R.*PATH.*\$ORIGIN/\.\./lib/edged' <<<"$dyn" \
      || die "$bin is not linked with RUNPATH \$ORIGIN/../lib/edged"
  fi
}

do_install() {
  local bin="${EDGED_INSTALL_BIN:-}"
  [ -d "$ROOT/.deps/tensorflow/lib" ] || die ".deps/tensorflow/lib missing: run make setup first"
  [ -d "$ROOT/.deps/models" ] || die ".deps/models missing: run make setup first"
  need_write "$DESTDIR$PREFIX"
  need_write "$DESTDIR$UNITDIR"
  need_write "$DESTDIR$SYSCONFDIR"
  if [ -z "$bin" ]; then bin="$(relink)"; fi
  [ -x "$bin" ] || die "binary $bin missing"
  check_runpath "$bin"

  local manifest=()
  put() { # put MODE SRC DEST
    install -D -m "$1" "$2" "$DESTDIR$3"
    manifest+=("$3")
  }
  put 0755 "$bin" "$PREFIX/bin/edged"
  local f
  # libomp-*.so*: bundled by the arm64 wheel; libtensorflow_cc.so.2 needs it beside it.
  for f in "$ROOT"/.deps/tensorflow/lib/libtensorflow*.so* "$ROOT"/.deps/tensorflow/lib/libomp-*.so*; do
    [ -e "$f" ] || [ -L "$f" ] || continue
    if [ -L "$f" ]; then
      mkdir -p "$DESTDIR$PREFIX/lib/edged"
      ln -sfn "$(readlink "$f")" "$DESTDIR$PREFIX/lib/edged/$(basename "$f")"
      manifest+=("$PREFIX/lib/edged/$(basename "$f")")
    else
      put 0644 "$f" "$PREFIX/lib/edged/$(basename "$f")"
    fi
  done
  for f in "$ROOT"/.deps/models/*; do
    [ -f "$f" ] && put 0644 "$f" "$PREFIX/share/edged/models/$(basename "$f")"
  done
  put 0644 "$ROOT/docs/config.md" "$PREFIX/share/doc/edged/config.md"
  put 0644 "$ROOT/systemd/edged.example.yaml" "$PREFIX/share/doc/edged/edged.example.yaml"
  put 0644 "$ROOT/systemd/edged.env.example" "$PREFIX/share/doc/edged/edged.env.example"

  # The unit, with the prefix substituted.
  local unit_tmp
  unit_tmp="$(mktemp)"
  sed "s|/usr/local|$PREFIX|g" "$ROOT/systemd/edged.service" >"$unit_tmp"
  put 0644 "$unit_tmp" "$UNITDIR/edged.service"
  rm -f "$unit_tmp"

  # Configuration: never overwrite the user's files.
  local etc="$DESTDIR$SYSCONFDIR/edged"
  mkdir -p "$etc"
  if [ ! -e "$etc/edged.yaml" ]; then
    sed "s|/usr/local|$PREFIX|g" "$ROOT/systemd/edged.minimal.yaml" >"$etc/edged.yaml"
    chmod 0644 "$etc/edged.yaml"
    log "wrote $SYSCONFDIR/edged/edged.yaml (no camera yet: edit it)"
  else
    log "kept $SYSCONFDIR/edged/edged.yaml"
  fi
  if [ ! -e "$etc/edged.env" ]; then
    install -m 0600 "$ROOT/systemd/edged.env.example" "$etc/edged.env"
    log "wrote $SYSCONFDIR/edged/edged.env (mode 0600)"
  fi

  mkdir -p "$DESTDIR$PREFIX/$(dirname "$MANIFEST_REL")"
  printf '%s\n' "${manifest[@]}" "$PREFIX/$MANIFEST_REL" >"$DESTDIR$PREFIX/$MANIFEST_REL"

  if [ -z "$DESTDIR" ]; then
    "$PREFIX/bin/edged" version >/dev/null || die "the installed binary does not run (missing OpenCV runtime libraries?)"
  fi
  if have_systemd; then
    systemctl daemon-reload
    log "installed; start with: systemctl enable --now edged"
  else
    log "installed into ${DESTDIR:-/}; unit at $UNITDIR/edged.service"
  fi
}

do_uninstall() {
  local manifest="$DESTDIR$PREFIX/$MANIFEST_REL"
  need_write "$DESTDIR$PREFIX"
  if have_systemd && systemctl list-unit-files edged.service >/dev/null 2>&1; then
    systemctl disable --now edged.service 2>/dev/null || true
  fi
  local files=()
  if [ -f "$manifest" ]; then
    mapfile -t files <"$manifest"
  else
    log "no install manifest at $manifest; removing the default layout"
    files=("$PREFIX/bin/edged" "$UNITDIR/edged.service")
    rm -rf "$DESTDIR$PREFIX/lib/edged" "$DESTDIR$PREFIX/share/edged" "$DESTDIR$PREFIX/share/doc/edged"
  fi
  local f
  for f in "${files[@]}"; do
    case "$f" in
      "$PREFIX"/bin/edged | "$PREFIX"/lib/edged/* | "$PREFIX"/share/edged/* | "$PREFIX"/share/doc/edged/* | */edged.service)
        rm -f "$DESTDIR$f" ;;
      *) log "skipping unexpected manifest entry $f" ;;
    esac
  done
  rmdir "$DESTDIR$PREFIX/share/edged/models" "$DESTDIR$PREFIX/share/edged" "$DESTDIR$PREFIX/lib/edged" \
    "$DESTDIR$PREFIX/share/doc/edged" 2>/dev/null || true
  if have_systemd; then systemctl daemon-reload; fi
  log "removed edged from $PREFIX; kept $SYSCONFDIR/edged and /var/lib/edged (delete them to forget everything)"
}

case "$ACTION" in
  install) do_install ;;
  uninstall) do_uninstall ;;
  *) die "usage: $0 install|uninstall [PREFIX]" ;;
esac
