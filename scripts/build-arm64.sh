#!/usr/bin/env bash
# edged for linux/arm64 (Raspberry Pi OS bookworm, Debian 12 arm64), cross-built
# on an x86_64 Debian 12 machine, and tested there under qemu-aarch64.
#
#   scripts/build-arm64.sh setup   cross toolchain, qemu, TF C library, sysroot, env
#   scripts/build-arm64.sh build   setup + bin/edged-linux-arm64
#   scripts/build-arm64.sh test    pure-Go tests (CGO_ENABLED=0) under qemu + smoke
#   scripts/build-arm64.sh smoke   the built binary under qemu: version, golden embed
#   scripts/build-arm64.sh dist    bin/edged-VERSION-linux-arm64.tar.gz (device layout)
#   scripts/build-arm64.sh pure-go-packages   what `test` runs under qemu
#
# Idempotent and cached like scripts/setup.sh: downloads go to
# ${XDG_CACHE_HOME:-$HOME/.cache}/edged, are verified (the wheel by its pinned
# sha256, the Debian packages by apt against the signed Release files), and are
# unpacked into a temporary directory under .deps/arm64/ that is moved into
# place only when complete. A second run does no network access at all.
#
# The host is NOT changed beyond installing the cross toolchain and qemu-user:
# there is no `dpkg --add-architecture arm64`. The arm64 package lists and
# downloads use a private apt configuration (APT_CONFIG, its own state, cache
# and sources in the cache directory, APT::Architecture=arm64, an empty dpkg
# status), so the host's dpkg database, its apt lists and the x86_64
# `scripts/setup.sh` never see an arm64 package. Nothing arm64 is installed:
# the packages are only unpacked with `dpkg -x` into the sysroot.
#
# What goes where:
#   .deps/arm64/tensorflow  libtensorflow_cc.so.2, libtensorflow_framework.so.2
#                           and the libomp they need, from the aarch64 tensorflow
#                           2.18.1 wheel (tensorflow-cpu has no arm64 wheel; the
#                           plain one is CPU-only on arm64); .symtab stripped
#   .deps/arm64/sysroot     Debian bookworm arm64: OpenCV 4.6 module -dev packages
#                           (headers, .so links) and the runtime closure of the
#                           OpenCV libraries edged links (libc6 included, so
#                           qemu-aarch64 -L sysroot runs the binary)
#   .deps/arm64/env.sh      GOOS/GOARCH/CC/CGO_* for the cross build
#   .deps/arm64/stage       the device layout used by the smoke test and dist:
#                           bin/edged, lib/edged/*.so*, share/edged/models
#
# The binary's RUNPATH is $ORIGIN/../lib/edged: on the device edged lives in
# PREFIX/bin and the TensorFlow libraries in PREFIX/lib/edged (docs/edge-devices.md).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
A64="$DEPS/arm64"
SYSROOT="$A64/sysroot"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/edged"
APTDIR="$CACHE/arm64-apt"
VERSION="${VERSION:-$(git -C "$ROOT" describe --tags --always --dirty 2>/dev/null || echo v0.1.0-dev)}"
BIN="$ROOT/bin/edged-linux-arm64"
# shellcheck disable=SC2016 # $ORIGIN is for the dynamic loader, not the shell
RUNPATH='$ORIGIN/../lib/edged'

TF_VERSION=2.18.1
TF_WHEEL="tensorflow-${TF_VERSION}-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
TF_SHA256=8a6485edd2148f70d011dbd1d8dc2c775e91774a5a159466e83d0d1f21580944
TF_OMP=libomp-6196b3b5.so.5 # bundled by auditwheel in tensorflow.libs/; NEEDED by libtensorflow_cc

DEBIAN_SUITE=bookworm
DEBIAN_MIRROR="${EDGED_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
DEBIAN_SECURITY_MIRROR="${EDGED_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}"
DEBIAN_KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg

# Debian's qemu-user (not -static): qemu-aarch64 without binfmt registration,
# which a container cannot do; we always call it explicitly.
HOST_PKGS=(gcc-aarch64-linux-gnu g++-aarch64-linux-gnu qemu-user unzip python3 debian-archive-keyring)

# OpenCV modules edged links (the same list as OPENCV_LIBS in setup.sh) and the
# modules whose headers <opencv2/opencv.hpp> includes (gocv includes it).
OPENCV_LINKED=(core imgproc imgcodecs videoio highgui objdetect dnn video calib3d features2d photo)
OPENCV_HEADERS=("${OPENCV_LINKED[@]}" flann ml stitching)
OPENCV_SOVERSION=406 # bookworm's OpenCV 4.6

log() { printf 'build-arm64: %s\n' "$*" >&2; }
die() { printf 'build-arm64: error: %s\n' "$*" >&2; exit 1; }
sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; return; fi
  command -v sudo >/dev/null || die "need root (or sudo) for: $*"
  sudo "$@"
}

step_host() {
  local missing=() p
  for p in "${HOST_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -eq 0 ]; then log "host packages: present"; return; fi
  log "host packages: installing ${missing[*]}"
  as_root apt-get update -qq || die "apt-get update failed; missing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
}

pip_cmd() { if command -v pip3 >/dev/null 2>&1; then echo pip3; else echo pip; fi; }

step_tensorflow() {
  local prefix="$A64/tensorflow" stamp="$TF_WHEEL $TF_SHA256 strip=${EDGED_ARM64_STRIP:-1}"
  if [ -f "$prefix/.complete" ] && [ "$(cat "$prefix/.complete")" = "$stamp" ]; then
    log "TensorFlow $TF_VERSION arm64: present ($prefix)"; return
  fi
  mkdir -p "$CACHE/wheel" "$A64"
  local wheel="$CACHE/wheel/$TF_WHEEL"
  if ! sha256_ok "$wheel" "$TF_SHA256"; then
    log "TensorFlow: downloading tensorflow==$TF_VERSION wheel for manylinux2014_aarch64 (~230 MB, once)"
    local tmp; tmp="$(mktemp -d "$CACHE/wheel/dl.XXXXXX")"
    "$(pip_cmd)" download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform manylinux2014_aarch64 "tensorflow==$TF_VERSION" -d "$tmp" \
      || { rm -rf "$tmp"; die "could not download tensorflow==$TF_VERSION (aarch64) from PyPI; nothing was installed"; }
    sha256_ok "$tmp/$TF_WHEEL" "$TF_SHA256" || { rm -rf "$tmp"; die "checksum mismatch for $TF_WHEEL; removed it"; }
    mv -f "$tmp/$TF_WHEEL" "$wheel"; rm -rf "$tmp"
  fi
  log "TensorFlow: unpacking the arm64 C library and headers into $prefix"
  local tmp; tmp="$(mktemp -d "$A64/.tf.XXXXXX")"
  unzip -q -o "$wheel" -d "$tmp/whl" \
    'tensorflow/libtensorflow_cc.so.2' 'tensorflow/libtensorflow_framework.so.2' "tensorflow.libs/$TF_OMP" \
    'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tsl/platform/ctstring*' \
    'tensorflow/include/tensorflow/core/platform/ctstring.h' 'tensorflow/include/xla/tsl/c/*' \
    || { rm -rf "$tmp"; die "could not unpack $wheel"; }
  mkdir -p "$tmp/out/lib" "$tmp/out/include"
  local f
  for f in tensorflow/libtensorflow_cc.so.2 tensorflow/libtensorflow_framework.so.2 "tensorflow.libs/$TF_OMP"; do
    if [ "${EDGED_ARM64_STRIP:-1}" = 1 ]; then
      # The wheel's libraries carry a full .symtab and some DWARF (~215 MB of
      # 714 MB); the dynamic symbol table the loader and cgo use stays.
      aarch64-linux-gnu-strip --strip-unneeded -o "$tmp/out/lib/$(basename "$f")" "$tmp/whl/$f" \
        || { rm -rf "$tmp"; die "could not strip $f"; }
    else
      mv "$tmp/whl/$f" "$tmp/out/lib/"
    fi
  done
  ln -s libtensorflow_cc.so.2 "$tmp/out/lib/libtensorflow.so"
  ln -s libtensorflow_cc.so.2 "$tmp/out/lib/libtensorflow.so.2"
  ln -s libtensorflow_framework.so.2 "$tmp/out/lib/libtensorflow_framework.so"
  cp -r "$tmp/whl/tensorflow/include/." "$tmp/out/include/"
  echo "$stamp" > "$tmp/out/.complete"
  rm -rf "$prefix"; mv "$tmp/out" "$prefix"; rm -rf "$tmp"
}

# A private apt for arm64: its own config, sources, lists, cache and an empty
# dpkg status; the host's /etc/apt and /var/lib/dpkg are not read or written
# (only proxy settings are carried over).
apt_private_init() {
  mkdir -p "$APTDIR"/etc/{apt.conf.d,preferences.d,sources.list.d} "$APTDIR"/state/lists/partial \
    "$APTDIR"/cache/archives/partial "$APTDIR"/log
  [ -f "$DEBIAN_KEYRING" ] || die "$DEBIAN_KEYRING missing (apt-get install debian-archive-keyring)"
  : > "$APTDIR/state/status"
  cat > "$APTDIR/etc/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $DEBIAN_MIRROR
Suites: $DEBIAN_SUITE $DEBIAN_SUITE-updates
Components: main
Architectures: arm64
Signed-By: $DEBIAN_KEYRING

Types: deb
URIs: $DEBIAN_SECURITY_MIRROR
Suites: $DEBIAN_SUITE-security
Components: main
Architectures: arm64
Signed-By: $DEBIAN_KEYRING
EOF
  local proxy=""
  proxy="$(APT_CONFIG=/dev/null apt-config dump 2>/dev/null | grep -iE '^Acquire::(https?|ftp)::Proxy ' || true)"
  {
    echo "Dir::Etc \"$APTDIR/etc\";"
    echo "Dir::Etc::Parts \"$APTDIR/etc/apt.conf.d\";"
    echo "Dir::Etc::Main \"$APTDIR/etc/apt.conf\";"
    echo "Dir::Etc::Preferences \"$APTDIR/etc/preferences\";"
    echo "Dir::Etc::PreferencesParts \"$APTDIR/etc/preferences.d\";"
    echo "Dir::Etc::SourceList \"$APTDIR/etc/sources.list\";"
    echo "Dir::Etc::SourceParts \"$APTDIR/etc/sources.list.d\";"
    echo "Dir::State \"$APTDIR/state\";"
    echo "Dir::State::status \"$APTDIR/state/status\";"
    echo "Dir::Cache \"$APTDIR/cache\";"
    echo "Dir::Log \"$APTDIR/log\";"
    echo 'APT::Architecture "arm64";'
    echo 'APT::Architectures { "arm64"; };'
    echo 'APT::Install-Recommends "false";'
    echo 'APT::Install-Suggests "false";'
    echo 'Acquire::Languages "none";'
    # Downloads land in the caller's cache dir, which the _apt user may not read.
    if [ "$(id -u)" -eq 0 ]; then echo 'APT::Sandbox::User "root";'; fi
    if [ -n "$proxy" ]; then printf '%s\n' "$proxy"; fi
  } > "$APTDIR/apt.conf"
}
apt_private() { APT_CONFIG="$APTDIR/apt.conf" DEBIAN_FRONTEND=noninteractive "$@"; }

step_sysroot() {
  local rt=() dev=() m
  for m in "${OPENCV_LINKED[@]}"; do rt+=("libopencv-$m$OPENCV_SOVERSION"); done
  for m in "${OPENCV_HEADERS[@]}"; do dev+=("libopencv-$m-dev"); done
  local want
  want="$(printf '%s\n' "$DEBIAN_SUITE" "${rt[@]}" -- "${dev[@]}" | sha256sum | cut -d' ' -f1)"
  if [ -f "$SYSROOT/.complete" ] && [ "$(cat "$SYSROOT/.complete")" = "$want" ]; then
    log "arm64 sysroot: present ($SYSROOT, $(wc -l < "$SYSROOT/.manifest") packages)"; return
  fi
  local t0; t0="$(now)"
  log "arm64 sysroot: resolving Debian $DEBIAN_SUITE arm64 packages (private apt in $APTDIR)"
  apt_private_init
  apt_private apt-get update -qq || die "apt-get update (arm64, private) failed: is $DEBIAN_MIRROR reachable?"
  # The runtime closure of the OpenCV libraries (what the device needs too):
  # with an empty status file apt resolves every dependency down to libc6.
  local archives="$APTDIR/cache/archives"
  apt_private apt-get install -y -qq --download-only "${rt[@]}" >/dev/null \
    || die "could not download the arm64 OpenCV runtime closure"
  # The list of .deb files of this closure: simulate the same install and
  # map each package=version to its file in the (verified) apt cache.
  local pkgs=()
  mapfile -t pkgs < <(apt_private apt-get install -s -y "${rt[@]}" | awk '/^Inst /{v=$3; gsub(/[()]/,"",v); print $2 "=" v}')
  [ ${#pkgs[@]} -gt 0 ] || die "apt resolved no arm64 packages"
  # The -dev packages give headers and the libopencv_*.so links; their own
  # dependencies (more -dev packages) are not needed to link edged.
  (cd "$archives" && apt_private apt-get download -qq "${dev[@]}" >/dev/null) \
    || die "could not download the arm64 OpenCV -dev packages"
  local p
  for p in "${dev[@]}"; do
    pkgs+=("$p=$(apt_private apt-cache policy "$p" | awk '/Candidate:/{print $2}')")
  done
  local tmp; tmp="$(mktemp -d "$A64/.sysroot.XXXXXX")"
  : > "$tmp/manifest"
  local entry name ver file f
  for entry in "${pkgs[@]}"; do
    name="${entry%%=*}"; ver="${entry#*=}"
    file=""
    for f in "$archives/${name}_${ver//:/%3a}_"{arm64,all}.deb; do
      if [ -f "$f" ]; then file="$f"; break; fi
    done
    [ -n "$file" ] || { rm -rf "$tmp"; die "$name $ver: .deb not in $archives"; }
    dpkg-deb --info "$file" >/dev/null 2>&1 || { rm -rf "$tmp"; die "$file is not a valid .deb"; }
    dpkg -x "$file" "$tmp/root" || { rm -rf "$tmp"; die "could not unpack $file"; }
    printf '%s %s %s\n' "$name" "$ver" "$(sha256sum "$file" | cut -d' ' -f1)" >> "$tmp/manifest"
  done
  # Absolute symlinks (e.g. /usr/lib/...so -> /lib/...) would point into the
  # host: make them relative to the sysroot.
  local link target
  while IFS= read -r -d '' link; do
    target="$(readlink "$link")"
    ln -sfn "$(realpath -m --relative-to="$(dirname "$link")" "$tmp/root$target")" "$link"
  done < <(find "$tmp/root" -type l -lname '/*' -print0)
  # BLAS and LAPACK reach the library path through update-alternatives in
  # their postinst, which `dpkg -x` does not run: make the links it would
  # (Debian's reference implementations are the only providers here).
  local alt
  for alt in "$tmp"/root/usr/lib/aarch64-linux-gnu/{blas,lapack}/lib*.so.3; do
    [ -e "$alt" ] || continue
    [ -e "$tmp/root/usr/lib/aarch64-linux-gnu/$(basename "$alt")" ] \
      || ln -s "$(basename "$(dirname "$alt")")/$(basename "$alt")" "$tmp/root/usr/lib/aarch64-linux-gnu/"
  done
  for m in "${OPENCV_LINKED[@]}"; do
    [ -e "$tmp/root/usr/lib/aarch64-linux-gnu/libopencv_$m.so" ] \
      || { rm -rf "$tmp"; die "sysroot lacks libopencv_$m.so after unpacking"; }
  done
  [ -e "$tmp/root/lib/ld-linux-aarch64.so.1" ] || [ -e "$tmp/root/usr/lib/ld-linux-aarch64.so.1" ] \
    || { rm -rf "$tmp"; die "sysroot lacks the arm64 dynamic loader (libc6)"; }
  mv "$tmp/manifest" "$tmp/root/.manifest"
  echo "$want" > "$tmp/root/.complete"
  rm -rf "$SYSROOT"; mv "$tmp/root" "$SYSROOT"; rm -rf "$tmp"
  log "arm64 sysroot: $(wc -l < "$SYSROOT/.manifest") packages unpacked in $(since "$t0") s ($(du -sh "$SYSROOT" | cut -f1))"
}

step_env() {
  local libs="" m
  for m in "${OPENCV_LINKED[@]}"; do libs+=" -lopencv_$m"; done
  # -rpath-link: where ld finds the libraries the OpenCV libraries need in
  # turn (the loader's default directories; some bookworm arm64 libraries,
  # e.g. armadillo, hdf4 and ogdi for gdal, live in plain /usr/lib).
  local lib="$SYSROOT/usr/lib/aarch64-linux-gnu" links="" d
  for d in usr/lib/aarch64-linux-gnu lib/aarch64-linux-gnu usr/lib lib; do links+=" -Wl,-rpath-link,$SYSROOT/$d"; done
  cat > "$A64/env.sh.tmp" <<SH
# generated by scripts/build-arm64.sh; source it for a linux/arm64 cross build
export GOOS=linux GOARCH=arm64 CGO_ENABLED=1
export CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++
export GOFLAGS="-tags=customenv"
export CGO_CFLAGS="-I$A64/tensorflow/include"
export CGO_CPPFLAGS="-I$SYSROOT/usr/include/opencv4"
export CGO_CXXFLAGS="--std=c++11"
export CGO_LDFLAGS='-L$A64/tensorflow/lib -L$lib$links -Wl,-rpath-link,$A64/tensorflow/lib -Wl,-rpath,$RUNPATH$libs'
export EDGED_ARM64_SYSROOT="$SYSROOT"
export EDGED_ARM64_TENSORFLOW="$A64/tensorflow"
SH
  mv "$A64/env.sh.tmp" "$A64/env.sh"
}

cmd_setup() {
  mkdir -p "$A64"
  step_host
  step_tensorflow
  step_sysroot
  step_env
}

cmd_build() {
  cmd_setup
  local t0; t0="$(now)"
  log "building $BIN ($VERSION) from ./cmd/edged"
  mkdir -p "$ROOT/bin"
  # shellcheck source=/dev/null
  (cd "$ROOT" && . "$A64/env.sh" && go build -ldflags "-X main.version=$VERSION" -o "$BIN.tmp" ./cmd/edged) \
    || { rm -f "$BIN.tmp"; die "go build for linux/arm64 failed (see above)"; }
  mv -f "$BIN.tmp" "$BIN"
  local rp; rp="$(readelf -d "$BIN" | sed -n 's/.*(RUNPATH).*\[\(.*\)\]/\1/p;s/.*(RPATH).*\[\(.*\)\]/\1/p')"
  [ "$rp" = "$RUNPATH" ] || die "$BIN has runpath '$rp', want '$RUNPATH'"
  log "built $BIN in $(since "$t0") s ($(du -h "$BIN" | cut -f1), runpath $rp)"
}

# The device layout, as docs/edge-devices.md installs it: the smoke test runs
# the binary from here so its $ORIGIN runpath is what is tested.
stage() {
  [ -x "$BIN" ] || die "$BIN missing: run \`make build-arm64\` first"
  [ -f "$A64/env.sh" ] || die "arm64 setup missing: run \`make build-arm64\` first"
  local st="$A64/stage"
  rm -rf "$st"; mkdir -p "$st/bin" "$st/lib/edged" "$st/share/edged"
  cp "$BIN" "$st/bin/edged"
  local f
  for f in libtensorflow_cc.so.2 libtensorflow_framework.so.2 "$TF_OMP"; do
    ln -s "$A64/tensorflow/lib/$f" "$st/lib/edged/$f"
  done
  if [ -d "$DEPS/models" ]; then ln -s "$DEPS/models" "$st/share/edged/models"; fi
  # What systemd/install.sh puts under PREFIX/share, plus the unit and the
  # minimal config for the device (docs/edge-devices.md), for PREFIX=/usr/local.
  local doc="$st/share/doc/edged" unit="$st/share/edged/systemd"
  mkdir -p "$doc" "$unit"
  for f in docs/config.md systemd/edged.example.yaml systemd/edged.env.example; do
    if [ -f "$ROOT/$f" ]; then ln -s "$ROOT/$f" "$doc/"; fi
  done
  for f in systemd/edged.service systemd/edged.minimal.yaml; do
    if [ -f "$ROOT/$f" ]; then ln -s "$ROOT/$f" "$unit/"; fi
  done
  echo "$st"
}

# qemu-aarch64 with the sysroot as the loader prefix, without EDGED_MODELS so
# the binary finds its models as on the device (share/edged/models). QEMU_CPU
# (default cortex-a72, the Raspberry Pi 4's core: ARMv8.0, no LSE atomics, no
# dot product) makes an instruction the Pi lacks fail here, not on the device.
qemu() {
  env -u EDGED_MODELS TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}" QEMU_CPU="${QEMU_CPU:-cortex-a72}" \
    qemu-aarch64 -L "$SYSROOT" "$@"
}

cmd_smoke() {
  local st; st="$(stage)"
  local t0 out; t0="$(now)"
  out="$(qemu "$st/bin/edged" version --json)" || die "edged version failed under qemu-aarch64"
  log "smoke: version --json under qemu (${QEMU_CPU:-cortex-a72}) in $(since "$t0") s: $out"
  python3 - "$out" <<'PY' || die "smoke: unexpected versions"
import json, sys
v = json.loads(sys.argv[1])
bad = [f"{k}={v.get(k)!r} (want {w})" for k, w in (("tensorflow", "2.18.1"), ("opencv", "4.6.0")) if v.get(k) != w]
if bad:
    sys.exit("smoke: " + ", ".join(bad))
PY
  local chip="$ROOT/../shared/golden/chip_a1.png" golden="$ROOT/../shared/golden/embeddings.json"
  # Capture first: `cmd | grep -q` under pipefail fails when grep exits at the
  # first match and the writer gets SIGPIPE, which made this check skip at random.
  local commands; commands="$(qemu "$st/bin/edged" help 2>/dev/null || true)"
  if ! grep -qE '^ *embed( |$)' <<<"$commands"; then
    log "smoke: SKIP golden embed: this build has no \`edged embed\` command yet"
    return 0
  fi
  if [ ! -f "$chip" ] || [ ! -f "$golden" ]; then
    log "smoke: SKIP golden embed: $chip or $golden missing"; return 0
  fi
  [ -d "$st/share/edged/models" ] || die "smoke: no models in $DEPS/models (run scripts/setup.sh)"
  t0="$(now)"
  # The dlib golden chip needs --backbone dlib where the build has backbones
  # (MobileFaceNet became the default); the MobileFaceNet golden is checked
  # after it.
  local bb=() help; help="$(qemu "$st/bin/edged" embed -h 2>&1 || true)" # captured: no grep -q under pipefail
  if grep -q -- '-backbone' <<<"$help"; then bb=(--backbone dlib); fi
  out="$(cd "$ROOT" && qemu "$st/bin/edged" embed --chip "${bb[@]}" ../shared/golden/chip_a1.png)" \
    || die "edged embed --chip failed under qemu-aarch64"
  local secs; secs="$(since "$t0")"
  python3 - "$out" "$golden" "$secs" <<'PY' || die "smoke: golden embedding mismatch under qemu"
import json, os, sys
out, golden, secs = sys.argv[1], sys.argv[2], sys.argv[3]
want = json.load(open(golden))["vectors"]
n = 0
for line in out.splitlines():
    line = line.strip()
    if not line:
        continue
    rec = json.loads(line)
    name = os.path.basename(rec["file"])
    got, ref = rec["embedding"], want[name]
    if len(got) != len(ref):
        sys.exit(f"{name}: {len(got)} values, want {len(ref)}")
    d = max(abs(a - b) for a, b in zip(got, ref))
    print(f"build-arm64: smoke: embed {name} under qemu in {secs} s: max |diff| = {d:.2e}", file=sys.stderr)
    if d > 1e-5:
        sys.exit(f"{name}: max abs diff {d:.3e} > 1e-5")
    n += 1
if n == 0:
    sys.exit("no embedding in the output")
PY
  local mchip="$ROOT/../shared/golden/mobilefacenet/mfn_a1.png" mgolden="$ROOT/../shared/golden/mobilefacenet/embeddings.json"
  if [ ${#bb[@]} -eq 0 ] || [ ! -f "$mchip" ] || [ ! -f "$mgolden" ]; then
    log "smoke: SKIP MobileFaceNet golden embed (no --backbone in this build, or $mchip missing)"; return 0
  fi
  t0="$(now)"
  out="$(cd "$ROOT" && qemu "$st/bin/edged" embed --chip --backbone mobilefacenet ../shared/golden/mobilefacenet/mfn_a1.png)" \
    || die "edged embed --chip --backbone mobilefacenet failed under qemu-aarch64"
  secs="$(since "$t0")"
  python3 - "$out" "$mgolden" "$secs" <<'PY' || die "smoke: MobileFaceNet golden embedding mismatch under qemu"
import json, math, os, sys
out, golden, secs = sys.argv[1], sys.argv[2], sys.argv[3]
want = json.load(open(golden))["chips"]
unit = lambda v: [x / math.sqrt(sum(y * y for y in v)) for x in v]
rec = json.loads(out.strip().splitlines()[0])
name = os.path.splitext(os.path.basename(rec["file"]))[0]
d = max(abs(a - b) for a, b in zip(unit(rec["embedding"]), unit(want[name]["embedding"])))
print(f"build-arm64: smoke: embed {name} (mobilefacenet) under qemu in {secs} s: max |diff| normalised = {d:.2e}", file=sys.stderr)
if len(rec["embedding"]) != 192 or d > 1e-5:
    sys.exit(f"{name}: {len(rec['embedding'])} values, max abs diff {d:.3e}")
PY
}

# Packages of this module whose code and tests need no cgo: no non-standard
# package in their dependencies (test dependencies included) has cgo files.
# (With CGO_ENABLED=0, gocv still lists as a package, so `go list` errors
# alone do not tell.) Those build with CGO_ENABLED=0 and run as static arm64
# test binaries under qemu.
pure_go_packages() {
  local p
  (cd "$ROOT" && go list -e -f '{{.ImportPath}}' ./...) | while read -r p; do
    # Capture, then test: `go list | grep -q .` under pipefail can fail on
    # SIGPIPE and would call a cgo package pure Go.
    local cgo
    cgo="$(cd "$ROOT" && CGO_ENABLED=1 go list -e -deps -test \
          -f '{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}' "$p")"
    if [ -z "${cgo//[[:space:]]/}" ]; then
      echo "$p"
    fi
  done
}

cmd_test() {
  step_host
  local pkgs=()
  mapfile -t pkgs < <(pure_go_packages)
  [ ${#pkgs[@]} -gt 0 ] || die "no package builds with CGO_ENABLED=0"
  log "pure-Go packages (CGO_ENABLED=0) under qemu-aarch64: ${pkgs[*]}"
  local t0; t0="$(now)"
  # The test binaries are static (no cgo): no sysroot needed.
  (cd "$ROOT" && env -u GOFLAGS CGO_ENABLED=0 GOOS=linux GOARCH=arm64 QEMU_CPU="${QEMU_CPU:-cortex-a72}" \
    go test -short -count=1 -timeout 20m -exec qemu-aarch64 "${pkgs[@]}") || die "arm64 pure-Go tests failed"
  log "pure-Go tests under qemu: $(since "$t0") s"
  cmd_smoke
}

cmd_dist() {
  local st; st="$(stage)"
  local out="$ROOT/bin/edged-$VERSION-linux-arm64.tar.gz" t0; t0="$(now)"
  # -h: the stage links to the libraries and models; the archive holds copies.
  tar -C "$st" -h --owner=0 --group=0 --numeric-owner -czf "$out.tmp" bin lib share && mv -f "$out.tmp" "$out"
  log "wrote $out in $(since "$t0") s ($(du -h "$out" | cut -f1))"
}

case "${1:-build}" in
  setup) cmd_setup ;;
  build) cmd_build ;;
  test)  cmd_test ;;
  smoke) cmd_smoke ;;
  dist)  cmd_dist ;;
  pure-go-packages) pure_go_packages ;;
  *) die "usage: $0 setup|build|test|smoke|dist|pure-go-packages" ;;
esac
