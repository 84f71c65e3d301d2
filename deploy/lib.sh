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

# The project's Python environment, made by deploy/setup.sh; every script uses it.
TESSERA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TESSERA_VENV=${TESSERA_VENV:-$TESSERA_ROOT/.venv}
TESSERA_PYTHON=$TESSERA_VENV/bin/python3

# need_venv: fails unless deploy/setup.sh has made the environment.
need_venv() {
  [[ -x "$TESSERA_PYTHON" ]] || die "$TESSERA_VENV is missing: run deploy/setup.sh"
}

# venv_install REQUIREMENTS [PIP_ARGS...]: creates .venv from the python3 on PATH when it
# is missing, then installs REQUIREMENTS into it unless the same file (by sha256) was
# installed before.
venv_install() {
  local req=$1 stamp sum
  shift
  if [[ ! -x "$TESSERA_PYTHON" ]]; then
    echo "setup: creating $TESSERA_VENV with $(command -v python3) ($(python3 --version 2>&1))" >&2
    python3 -m venv "$TESSERA_VENV" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
  fi
  sum=$(sha256sum "$req" | cut -d' ' -f1)
  stamp="$TESSERA_VENV/.installed-$(basename "$req" .txt)"
  if [[ -f "$stamp" && $(cat "$stamp") == "$sum" ]]; then
    echo "setup: $req already installed in .venv" >&2
    return
  fi
  echo "setup: installing $req into .venv" >&2
  "$TESSERA_PYTHON" -m pip install --quiet --disable-pip-version-check "$@" -r "$req" ||
    die "pip install -r $req failed"
  echo "$sum" > "$stamp"
}

# pip_fetch DEST SPEC: downloads one package without dependencies (wheel or sdist).
pip_fetch() {
  local dest=$1 spec=$2
  need_venv
  "$TESSERA_PYTHON" -m pip download --quiet --no-deps --disable-pip-version-check -d "$dest" "$spec" ||
    die "pip download $spec failed"
}

# pip_fetch_sdist DEST SPEC: downloads one package's source archive, without dependencies.
# Only that package is held to source (--no-binary NAME): with :all:, pip would also build
# its build tools from source to prepare the metadata (minutes instead of seconds).
pip_fetch_sdist() {
  local dest=$1 spec=$2
  need_venv
  "$TESSERA_PYTHON" -m pip download --quiet --no-deps --no-binary "${spec%%[=<>!~]*}" \
    --disable-pip-version-check -d "$dest" "$spec" || die "pip download $spec failed"
}

# unzip_member ARCHIVE MEMBER DEST: extracts one member of a zip (wheel) to DEST.
unzip_member() {
  need_venv
  "$TESSERA_PYTHON" - "$1" "$2" "$3" <<'PY' || die "cannot extract $2 from $1"
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
}

TESSERA_CACHE=${TESSERA_CACHE:-$HOME/.cache/tessera}
TESSERA_MODELS=${TESSERA_MODELS:-$TESSERA_CACHE/models}
