# Sourced by scripts/test: Debian packages the tests use, installed when missing (as root).
# gnupg: PGP recipients in the SOPS tests (the base image has it; a bare one may not).
need=()
command -v gpg >/dev/null || need+=(gnupg)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "note: ${need[*]} missing and cannot be installed here; the tests that need them will skip" >&2
  fi
fi
