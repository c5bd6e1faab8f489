#!/usr/bin/env bash
# The credential walkthrough: an issuer and two agents, issuing, verifying,
# revoking and rejecting credentials, with the real ztmesh binary.
set -euo pipefail
cd "$(dirname "$0")/.."
Z=${ZTMESH:-./bin/ztmesh}
work=$(mktemp -d "${TMPDIR:-/tmp}/ztmesh-demo.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

if [ -t 1 ]; then BOLD=$'\033[1m' NORM=$'\033[0m'; else BOLD= NORM=; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$NORM"; }
show() { printf '$ %s\n' "$*"; "$@"; }
refused() { printf '$ %s\n' "$*"; if "$@"; then echo "UNEXPECTED: accepted"; exit 1; else echo "(refused, exit $?)"; fi; }

step "An issuer (the fleet operator) and two agents create identities"
show "$Z" id init --dir "$work/issuer"
show "$Z" id init --dir "$work/agent-a"
show "$Z" id init --dir "$work/agent-b"
ISSUER=$("$Z" id show --dir "$work/issuer" --did)
A=$("$Z" id show --dir "$work/agent-a" --did)
B=$("$Z" id show --dir "$work/agent-b" --did)

step "The issuer issues each agent a 12-hour credential"
show "$Z" cred issue --issuer-dir "$work/issuer" --subject "$A" --role vehicle --trust 0.92 \
  --zones district-1,district-2 --software-version 1.4.0 --out "$work/agent-a/credential.jwt"
show "$Z" cred issue --issuer-dir "$work/issuer" --subject "$B" --role vehicle --trust 0.85 \
  --zones district-2 --software-version 1.4.0 --out "$work/agent-b/credential.jwt"

step "A node that pins the issuer verifies agent A's credential"
show "$Z" cred verify --trust-issuer "$ISSUER" --subject "$A" "$work/agent-a/credential.jwt"

step "Rejections: a node that does not pin this issuer, a holder mismatch, an expired credential"
refused "$Z" cred verify --trust-issuer "$B" "$work/agent-a/credential.jwt"
refused "$Z" cred verify --trust-issuer "$ISSUER" --subject "$B" "$work/agent-a/credential.jwt"
refused "$Z" cred verify --trust-issuer "$ISSUER" --at "$(date -u -d '+13 hours' +%Y-%m-%dT%H:%M:%SZ)" "$work/agent-a/credential.jwt"

step "Agent B forges a credential for itself, signed with its own key"
show "$Z" cred issue --issuer-dir "$work/agent-b" --subject "$B" --role operator --trust 1 \
  --zones '*' --software-version 9.9.9 --out "$work/forged.jwt"
show "$Z" cred inspect "$work/forged.jwt"
refused "$Z" cred verify --trust-issuer "$ISSUER" "$work/forged.jwt"

step "The issuer revokes agent B; B's credential is refused, A's still verifies"
show "$Z" cred revoke --issuer-dir "$work/issuer" --subject "$B" --list "$work/revoked.jwt"
refused "$Z" cred verify --trust-issuer "$ISSUER" --revocations "$work/revoked.jwt" "$work/agent-b/credential.jwt"
show "$Z" cred verify --trust-issuer "$ISSUER" --revocations "$work/revoked.jwt" "$work/agent-a/credential.jwt"

printf '\n%sdone.%s\n' "$BOLD" "$NORM"
