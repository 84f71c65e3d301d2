#!/usr/bin/env bash
# Clean-room check of the README: builds a minimal Debian 12 (bookworm) root with
# debootstrap, copies a clean clone of this checkout's HEAD (committed state only) to
# /root/tessera in it, and runs there, as root in a chroot with an empty environment, the
# README's two commands exactly as written: `bash deploy/demo.sh`, then `bash deploy/test.sh`.
# The root is what a stock minimal Debian 12 server has: --variant=minbase plus
# ca-certificates, nothing else (no python3, git or compilers: deploy/setup.sh must install
# them), with apt sources for bookworm, -updates and -security from the host's mirror. From
# the host it takes only the network's settings: /etc/resolv.conf and the site CAs in
# /usr/local/share/ca-certificates (when the host's HTTPS goes through a TLS-inspecting proxy).
#   deploy/check-fresh.sh [--keep] [--reuse] [--record] [--run CMD]
#     --keep     keep the root after the run (default: deleted)
#     --reuse    start from the pristine tarball of an earlier debootstrap instead of
#                running debootstrap again (made when missing)
#     --record   on success, append the summary line to docs/RELEASE-CHECKS.md
#     --run CMD  run CMD in /root/tessera instead of the README's commands (checks the
#                mechanics, e.g. --run 'bash deploy/setup.sh'); cannot be recorded
# Work folder: $TESSERA_FRESH_DIR (default /var/tmp/tessera-fresh); logs land in its logs/.
# Needs root (debootstrap, mount, chroot). A full run compiles the project: 15-25 min on 2 cores.
set -euo pipefail

die() { echo "check-fresh: FAILED: $*" >&2; exit 1; }

keep=0 reuse=0 record=0 run_cmd=""
while (($#)); do
  case $1 in
    --keep) keep=1 ;;
    --reuse) reuse=1 ;;
    --record) record=1 ;;
    --run) (($# >= 2)) || die "--run needs a command"; run_cmd=$2; shift ;;
    *) die "unknown argument '$1' (known: --keep --reuse --record --run CMD)" ;;
  esac
  shift
done
[[ $record == 1 && -n $run_cmd ]] && die "--record records the README's commands only, not --run"
[[ $(id -u) -eq 0 ]] || die "run as root (debootstrap, mount and chroot need it)"

repo=$(git -C "$(dirname "${BASH_SOURCE[0]}")" rev-parse --show-toplevel)
head=$(git -C "$repo" rev-parse HEAD)
work=${TESSERA_FRESH_DIR:-/var/tmp/tessera-fresh}
root=$work/root
base=$work/base-bookworm-minbase.tar
logs=$work/logs
# The host's Debian mirrors (deb.debian.org here), from its deb822 sources.
host_uri() {
  awk -v re="$1" '$1 == "URIs:" && $2 ~ re { print $2; exit }' /etc/apt/sources.list.d/*.sources \
    2>/dev/null || true
}
mirror=$(host_uri '/debian/?$'); mirror=${mirror:-http://deb.debian.org/debian}
security=$(host_uri '/debian-security/?$'); security=${security:-http://deb.debian.org/debian-security}
[[ -z $(git -C "$repo" status --porcelain --untracked-files=no) ]] ||
  echo "check-fresh: note: uncommitted changes in $repo are not part of the check" >&2

mounts_under_root() { findmnt -rn -o TARGET | awk -v r="$root" '$0 == r || index($0, r "/") == 1'; }
# Unmounts everything under the root, deepest first; lazily if busy.
unmount_all() {
  local m
  while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" || echo "check-fresh: cannot unmount $m" >&2
  done < <(mounts_under_root | sort -r)
}
# Deletes the root, never while anything is still mounted in it (a bound /dev!).
remove_root() {
  [[ -e $root ]] || return 0
  unmount_all
  if [[ -n $(mounts_under_root) ]]; then
    echo "check-fresh: mounts remain under $root; not deleting it" >&2; return 1
  fi
  rm -rf --one-file-system -- "$root"
}
cleanup() {
  unmount_all
  if ((keep)); then echo "check-fresh: root kept at $root (chroot $root /bin/bash)" >&2
  else remove_root; fi
}

if ! command -v debootstrap >/dev/null; then
  echo "check-fresh: installing debootstrap" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap ||
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; } ||
    die "cannot install debootstrap"
fi

mkdir -p "$work" "$logs"
remove_root || die "an earlier root at $root is still mounted"
trap cleanup EXIT
trap 'exit 130' INT TERM

t0=$SECONDS
if ((reuse)) && [[ -f $base ]]; then
  echo "check-fresh: unpacking pristine base $base" >&2
  mkdir -p "$root"
  tar -xpf "$base" --numeric-owner -C "$root"
else
  echo "check-fresh: debootstrap bookworm (minbase + ca-certificates) from $mirror" >&2
  debootstrap --variant=minbase --include=ca-certificates bookworm "$root" "$mirror" \
    > "$logs/debootstrap.log" 2>&1 || die "debootstrap (see $logs/debootstrap.log)"
  tar -cpf "$base.part" --numeric-owner -C "$root" . && mv "$base.part" "$base"
fi
echo "check-fresh: base ready in $((SECONDS - t0)) s" >&2

# What the Debian installer leaves on a server: full apt sources, hosts, DNS.
cat > "$root/etc/apt/sources.list" <<EOF
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb $security bookworm-security main
EOF
[[ -s $root/etc/hosts ]] || printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
  "$(hostname)" > "$root/etc/hosts"
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# Like DNS, the CAs this site added to the host's trust store (a TLS-inspecting proxy, say)
# belong to the network, not to the machine under test: without them pip cannot reach PyPI.
shopt -s nullglob; site_cas=(/usr/local/share/ca-certificates/*.crt); shopt -u nullglob
if ((${#site_cas[@]})); then
  echo "check-fresh: trusting the host's site CAs: ${site_cas[*]##*/}" >&2
  cp "${site_cas[@]}" "$root/usr/local/share/ca-certificates/"
  chroot "$root" /usr/sbin/update-ca-certificates >/dev/null 2>&1 || die "update-ca-certificates in the root"
fi

git clone --quiet --no-local "$repo" "$root/root/tessera"
git -C "$root/root/tessera" checkout --quiet --detach "$head"
git -C "$root/root/tessera" remote remove origin  # a host path, meaningless inside

mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --make-private "$root/dev"  # so pts and shm below do not propagate to the host's /dev
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$root/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"  # MPI's shared memory

# step NAME CMD: runs CMD in the root with a clean environment; sets $took.
step() {
  local name=$1 cmd=$2 t=$SECONDS rc=0
  echo "check-fresh: [$name] $cmd" >&2
  env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb \
    chroot "$root" /bin/bash -c "$cmd" 2>&1 | tee "$logs/$name.log" || rc=$?
  took=$((SECONDS - t))
  ((rc == 0)) || die "'$cmd' exited $rc after $took s (log: $logs/$name.log)"
  echo "check-fresh: [$name] done in $took s" >&2
}

debian="Debian $(cat "$root/etc/debian_version")"
if [[ -n $run_cmd ]]; then
  step run "cd /root/tessera && $run_cmd"
  echo "check-fresh: run $took s, OK ($debian, $(date -u +%F), ${head:0:7})"
  exit 0
fi
step demo "cd /root/tessera && bash deploy/demo.sh"; demo_s=$took
step test "cd /root/tessera && bash deploy/test.sh"; test_s=$took
summary="check-fresh: demo $demo_s s, test $test_s s, OK ($debian, $(date -u +%F), ${head:0:7})"
echo "$summary"
if ((record)); then
  echo "- $summary" >> "$repo/docs/RELEASE-CHECKS.md"
  echo "check-fresh: recorded in $repo/docs/RELEASE-CHECKS.md (commit it)" >&2
fi
