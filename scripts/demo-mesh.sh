#!/usr/bin/env bash
# The mesh demo: an issuer and three agents in two zones, running real ztmeshd
# daemons on 127.0.0.1. All verify each other; sealed zone messages flow
# between members of a zone and nowhere else; a fourth node with a credential
# from an untrusted issuer is refused; a revocation published on the mesh
# cuts an agent off. Everything started here is stopped on exit or Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
Z=${ZTMESH:-./bin/ztmesh}
D=${ZTMESHD:-./bin/ztmeshd}
work=$(mktemp -d "${TMPDIR:-/tmp}/ztmesh-mesh.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  [ -n "${KEEP:-}" ] && echo "kept $work" || rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if [ -t 1 ]; then BOLD=$'\033[1m' NORM=$'\033[0m'; else BOLD= NORM=; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$NORM"; }
show() { printf '$ %s\n' "$*"; "$@"; }

# wait_for SECONDS DESCRIPTION COMMAND...: poll until COMMAND succeeds.
wait_for() {
  local secs=$1 what=$2; shift 2
  local end=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    if [ "$SECONDS" -ge "$end" ]; then echo "timed out waiting for: $what" >&2; exit 1; fi
    sleep 0.1
  done
}
verified_count() { "$Z" peers --dir "$work/$1" --json | grep -c '"verified": true' || true; }
has_verified() { [ "$(verified_count "$1")" -ge "$2" ]; }
not_peer() { ! "$Z" peers --dir "$work/$1" --json | grep -q "$2"; }

# start NAME [ztmeshd flags...]: run a daemon for $work/NAME, logs in $work/NAME.log.
start() {
  local name=$1; shift
  "$D" --dir "$work/$name" --listen /ip4/127.0.0.1/tcp/0 --no-mdns --auth-grace 3s "$@" 2>"$work/$name.log" &
  pids+=($!)
  wait_for 20 "$name to start" "$Z" status --dir "$work/$name"
}
addr() { "$Z" status --dir "$work/$1" | awk '/^listen:/ {print $2}'; }

step "An issuer and three agents: a in zone north, b in north and south, c in south"
"$Z" id init --dir "$work/issuer" >/dev/null
ISSUER=$("$Z" id show --dir "$work/issuer" --did)
echo "issuer: $ISSUER"
for spec in a:north b:north,south c:south; do
  name=${spec%%:*} zones=${spec#*:}
  "$Z" id init --dir "$work/$name" >/dev/null
  show "$Z" cred issue --issuer-dir "$work/issuer" --subject "$("$Z" id show --dir "$work/$name" --did)" \
    --role vehicle --trust 0.9 --zones "$zones" --software-version 1.4.0 --out "$work/$name/credential.jwt"
done

step "Start three daemons: b and c bootstrap to a, c also to b"
start a --trust-issuer "$ISSUER" --revocations "$work/revoked.jwt" --allow-missing-revocations
start b --trust-issuer "$ISSUER" --revocations "$work/revoked.jwt" --allow-missing-revocations --bootstrap "$(addr a)"
start c --trust-issuer "$ISSUER" --revocations "$work/revoked.jwt" --allow-missing-revocations --bootstrap "$(addr a)" --bootstrap "$(addr b)"
for n in a b c; do wait_for 20 "$n to verify two peers" has_verified "$n" 2; done
show "$Z" status --dir "$work/a"
show "$Z" peers --dir "$work/a"

step "Zone traffic: b subscribes to north/maps, a publishes there (sealed for north, signed by a)"
"$Z" sub --dir "$work/b" --zone north --channel maps --json --count 1 >"$work/b.sub" 2>&1 &
subpid=$!
pids+=($subpid)
end=$((SECONDS + 20))
until [ -s "$work/b.sub" ]; do
  "$Z" pub --dir "$work/a" --zone north --channel maps "hazard at junction 4" 2>/dev/null
  [ "$SECONDS" -lt "$end" ] || { echo "timed out waiting for b to receive"; exit 1; }
  sleep 0.3
done
wait "$subpid" 2>/dev/null || true
echo "b received:"; cat "$work/b.sub"
echo "c is in south only; the policy refuses it north:"
if "$Z" pub --dir "$work/c" --zone north --channel maps "spoofed hazard"; then echo "UNEXPECTED: allowed"; exit 1; fi

step "Shared state: a writes a hazard marker into north's replicated map, b reads it"
A=$("$Z" id show --dir "$work/a" --did)
"$Z" state get --dir "$work/b" --zone north hazards "$A/junction-4" >/dev/null 2>&1 || true   # b opens the state
show "$Z" state put --dir "$work/a" --zone north hazards "$A/junction-4" "ice on bridge"
wait_for 10 "b to receive the state" "$Z" state get --dir "$work/b" --zone north hazards "$A/junction-4"
show "$Z" state list --dir "$work/b" --zone north hazards
echo "b may not write under a's DID:"
if "$Z" state put --dir "$work/b" --zone north hazards "$A/junction-4" "forged"; then echo "UNEXPECTED: allowed"; exit 1; fi

step "A fourth node with a credential from an issuer nobody pins tries to join"
"$Z" id init --dir "$work/rogue-issuer" >/dev/null
"$Z" id init --dir "$work/mallory" >/dev/null
ROGUE=$("$Z" id show --dir "$work/rogue-issuer" --did)
MALLORY=$("$Z" id show --dir "$work/mallory" --did)
"$Z" cred issue --issuer-dir "$work/rogue-issuer" --subject "$MALLORY" --role operator --trust 1 \
  --zones '*' --software-version 9.9.9 --out "$work/mallory/credential.jwt" 2>/dev/null
start mallory --trust-issuer "$ROGUE" --bootstrap "$(addr a)"
wait_for 20 "a to refuse mallory" grep -q '"handshake_refused"' "$work/a.log"
echo "a's log:"
grep '"handshake_refused"' "$work/a.log" | head -1
# mallory hears of the refusal a moment after a logs it: wait for its line too.
wait_for 20 "mallory to log the refusal" grep -q '"credential_refused_by_peer"' "$work/mallory.log"
echo "mallory's log:"
grep '"credential_refused_by_peer"' "$work/mallory.log" | head -1
wait_for 10 "a to drop mallory" not_peer a "$MALLORY"
show "$Z" peers --dir "$work/a"

step "The issuer revokes agent c and publishes the list on the mesh through a; every node cuts c off at once"
C=$("$Z" id show --dir "$work/c" --did)
show "$Z" cred revoke --issuer-dir "$work/issuer" --subject "$C" --list "$work/revoked.jwt" --publish --dir "$work/a"
wait_for 5 "a to drop c" not_peer a "$C"
wait_for 5 "b to drop c" not_peer b "$C"
grep '"peer_dropped"' "$work/a.log" | grep revoked | head -1
show "$Z" peers --dir "$work/a"
show "$Z" peers --dir "$work/b"

printf '\n%sdone: stopping the daemons.%s\n' "$BOLD" "$NORM"
