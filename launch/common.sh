# Shared helpers for the launch scripts: argument checks and dry-run aware execution.
# Sourced, not run. `run` prints the command; it executes it unless DRY_RUN=1.

DRY_RUN=${DRY_RUN:-0}

quote() {
  # Single-quote an argument for display when it holds anything but safe characters.
  case "$1" in
    *[!A-Za-z0-9_./:=@%+,-]* | "") printf "'%s'" "${1//\'/\'\\\'\'}" ;;
    *) printf '%s' "$1" ;;
  esac
}

run() {
  printf '+'
  for arg in "$@"; do printf ' '; quote "$arg"; done
  printf '\n'
  if [ "$DRY_RUN" != 1 ]; then
    "$@"
  fi
}

need() {
  # need NAME VALUE FLAG: fail clearly when a required flag is empty.
  if [ -z "$2" ]; then
    echo "error: $1 is required ($3)" >&2
    exit 2
  fi
}
